package routing_test

import (
	"errors"
	"fmt"

	"github.com/warrenq/warren/routing"
)

// The media example: process_media goes to queue "video" through direct
// exchange "media"; every other task falls back to a queue of its own.
func ExampleTable_Lookup() {
	routes := routing.NewTable().
		Add("process_media", routing.Route{Exchange: "media", Key: "video"}).
		Add("process_audio", routing.Route{Exchange: "media", Key: "audio"})

	for _, name := range []string{"process_media", "process_audio", "send_email"} {
		r, err := routes.Lookup(name)
		if err != nil {
			fmt.Println(err, errors.Is(err, routing.ErrNoRoute))
			continue
		}
		fmt.Printf("%s -> exchange %q, key %q\n", name, r.Exchange, r.Key)
	}

	routes.SetDefault(routing.ToQueue("misc"))
	r, _ := routes.Lookup("send_email")
	fmt.Printf("send_email -> exchange %q, key %q\n", r.Exchange, r.Key)
	// Output:
	// process_media -> exchange "media", key "video"
	// process_audio -> exchange "media", key "audio"
	// routing: no route for task "send_email" true
	// send_email -> exchange "", key "misc"
}

// Validate catches mistakes before anything is declared: here a binding to a
// misspelt queue and a work queue named like a dead-letter queue.
func ExampleTopology_Validate() {
	media := routing.Topology{
		Exchanges: []routing.Exchange{{Name: "media", Kind: routing.Direct}},
		Queues: []routing.Queue{
			{Name: "video", DefaultTask: "process_media"},
			{Name: "video.hd"},
		},
		Bindings: []routing.Binding{
			{Exchange: "media", Queue: "video", Key: "video"},
			{Exchange: "media", Queue: "video.hd", Key: "video.hd"},
		},
	}
	fmt.Println("valid:", media.Validate() == nil)

	// A plain classic queue declares no arguments, as Kombu's Queue('video')
	// does, so the two never disagree.
	q, _ := media.Queue("video")
	fmt.Println("video arguments:", q.Arguments(), "dead letters in", routing.DeadQueue(q.Name))

	broken := media
	broken.Queues = append(broken.Queues, routing.Queue{Name: "audio.dead"})
	broken.Bindings = append(broken.Bindings, routing.Binding{Exchange: "media", Queue: "vidoe", Key: "video"})
	fmt.Println(broken.Validate())
	// Output:
	// valid: true
	// video arguments: map[] dead letters in video.dead
	// routing: queue "audio.dead": names ending in ".dead" are warren's dead-letter queues
	// routing: binding media->vidoe: queue "vidoe" is not in the topology
}

// A bulk task spread over 4 queues of direct exchange "imports": the
// producer routes each task to the shard its id hashes to, and a worker
// told "bulk" consumes bulk.0 to bulk.3, each with its own dead-letter
// queue. ClassicV2 opts the shard queues into classic queues version 2.
func ExampleShards() {
	bulk := routing.Shards{Queue: "bulk", Count: 4, Exchange: "imports", Args: routing.ClassicV2()}
	topo := bulk.Topology()
	routes := routing.NewTable().AddShards("import_row", bulk)

	fmt.Println("queues:", bulk.Names(), "valid:", topo.Validate() == nil)
	fmt.Println("a worker told [bulk audit] consumes", topo.Expand([]string{"bulk", "audit"}))
	fmt.Println("arguments:", topo.Queues[0].Arguments())
	for _, id := range []string{"0190a6e0-5f1c-7b3a-9d2e-1a2b3c4d5e6f", "0190a6e0-5f1c-7b3a-9d2e-1a2b3c4d5e70"} {
		r, _ := routes.RouteFor("import_row", id)
		fmt.Printf("task %s -> exchange %q, key %q\n", id, r.Exchange, r.Key)
	}
	// Output:
	// queues: [bulk.0 bulk.1 bulk.2 bulk.3] valid: true
	// a worker told [bulk audit] consumes [bulk.0 bulk.1 bulk.2 bulk.3 audit]
	// arguments: map[x-queue-version:2]
	// task 0190a6e0-5f1c-7b3a-9d2e-1a2b3c4d5e6f -> exchange "imports", key "bulk.3"
	// task 0190a6e0-5f1c-7b3a-9d2e-1a2b3c4d5e70 -> exchange "imports", key "bulk.0"
}
