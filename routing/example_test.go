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
