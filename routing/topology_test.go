package routing

import (
	"maps"
	"reflect"
	"strings"
	"testing"
)

// maxQueueName is the longest work queue name Validate accepts: delayed
// messages carry it after DelayLevels one-byte bits and their dots in a
// routing key of at most 255 bytes.
const maxQueueName = 255 - 2*DelayLevels

// mediaTopology is the media example's topology plus a few more queues: a
// direct exchange, queues with dots in their names, a quorum queue.
func mediaTopology() Topology {
	return Topology{
		Exchanges: []Exchange{{Name: "media"}, {Name: "events", Kind: Topic}, {Name: "broadcast", Kind: Fanout}, {Name: "jobs", Kind: Direct}},
		Queues: []Queue{
			{Name: "video", DefaultTask: "process_media"},
			{Name: "video.hd"},
			{Name: "audio", Quorum: true},
			{Name: "events.all"},
			{Name: strings.Repeat("q", maxQueueName)},
		},
		Bindings: []Binding{
			{Exchange: "media", Queue: "video", Key: "video"},
			{Exchange: "media", Queue: "video.hd", Key: "video.hd"},
			{Exchange: "media", Queue: "audio", Key: "audio"},
			{Exchange: "events", Queue: "events.all", Key: "#"},
			{Exchange: "broadcast", Queue: "video"},
		},
		ExchangeBindings: []ExchangeBinding{{Source: "events", Destination: "broadcast", Key: "media.#"}},
	}
}

func TestValidateAcceptsMediaTopology(t *testing.T) {
	if err := mediaTopology().Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	prio := Topology{Queues: []Queue{
		{Name: "a", MaxPriority: 1},
		{Name: "b", MaxPriority: MaxPriority, Args: map[string]any{MaxPriorityArg: int32(MaxPriority)}}, // agree
		{Name: "c", Args: map[string]any{MaxPriorityArg: 200}},                                          // Args: unchecked
		{Name: "d", Quorum: true, Args: map[string]any{MaxPriorityArg: 31}},                             // the broker judges
	}}
	if err := prio.Validate(); err != nil {
		t.Fatalf("priority queues: Validate = %v", err)
	}
	if err := (Topology{}).Validate(); err != nil {
		t.Fatalf("empty topology: Validate = %v", err)
	}
	own := Topology{Queues: []Queue{{Name: "warren.worker.x", Exclusive: true, NoDeadLetters: true, MaxPriority: 2}}}
	if err := own.Validate(); err != nil {
		t.Fatalf("exclusive queue: Validate = %v", err)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Topology)
		want   []string // substrings the error must hold
	}{
		{
			name:   "exchange without a name",
			change: func(t *Topology) { t.Exchanges = append(t.Exchanges, Exchange{Kind: Topic}) },
			want:   []string{"exchange without a name"},
		},
		{
			name:   "unknown exchange kind",
			change: func(t *Topology) { t.Exchanges = append(t.Exchanges, Exchange{Name: "h", Kind: "headers"}) },
			want:   []string{`exchange "h"`, `"headers"`},
		},
		{
			name:   "exchange kind is case sensitive",
			change: func(t *Topology) { t.Exchanges[0].Kind = "Direct" },
			want:   []string{`exchange "media"`, `"Direct"`},
		},
		{
			name:   "queue without a name",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Quorum: true}) },
			want:   []string{"queue without a name"},
		},
		{
			name:   "queue named like a dead-letter queue",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Name: "video.dead"}) },
			want:   []string{`queue "video.dead"`, `".dead"`},
		},
		{
			name:   "queue name too long for delay routing keys",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Name: strings.Repeat("q", maxQueueName+1)}) },
			want:   []string{"leave no room"},
		},
		{
			name:   "queue name with a topic wildcard *",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Name: "video.*"}) },
			want:   []string{`queue "video.*"`, "wildcard"},
		},
		{
			name:   "queue name with a topic wildcard #",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Name: "#"}) },
			want:   []string{`queue "#"`, "wildcard"},
		},
		{
			name:   "priorities on a quorum queue",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Name: "urgent", Quorum: true, MaxPriority: 5}) },
			want:   []string{`queue "urgent"`, "MaxPriority with Quorum", "RabbitMQ 4", "priority 5 and above is high"},
		},
		{
			name:   "more priorities than recommended",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Name: "urgent", MaxPriority: MaxPriority + 1}) },
			want:   []string{`queue "urgent"`, "MaxPriority 11 is above 10", "x-max-priority"},
		},
		{
			name: "an exclusive quorum queue",
			change: func(t *Topology) {
				t.Queues = append(t.Queues, Queue{Name: "own", Quorum: true, Exclusive: true, NoDeadLetters: true})
			},
			want: []string{`queue "own"`, "Exclusive with Quorum"},
		},
		{
			name: "an exclusive queue kept as it exists",
			change: func(t *Topology) {
				t.Queues = append(t.Queues, Queue{Name: "own", KeepExisting: true, Exclusive: true, NoDeadLetters: true})
			},
			want: []string{`queue "own"`, "Exclusive with KeepExisting"},
		},
		{
			name:   "an exclusive queue with a dead-letter queue",
			change: func(t *Topology) { t.Queues = append(t.Queues, Queue{Name: "own", Exclusive: true}) },
			want:   []string{`queue "own"`, "Exclusive without NoDeadLetters", "outlive"},
		},
		{
			name: "MaxPriority and Args disagree",
			change: func(t *Topology) {
				t.Queues = append(t.Queues, Queue{Name: "urgent", MaxPriority: 3, Args: map[string]any{MaxPriorityArg: int32(4)}})
			},
			want: []string{`queue "urgent"`, "disagree"},
		},
		{
			name: "exchange binding from an undeclared exchange",
			change: func(t *Topology) {
				t.ExchangeBindings = append(t.ExchangeBindings, ExchangeBinding{Source: "nope", Destination: "media", Key: "#"})
			},
			want: []string{"exchange binding nope->media"},
		},
		{
			name: "exchange binding to an undeclared exchange",
			change: func(t *Topology) {
				t.ExchangeBindings = append(t.ExchangeBindings, ExchangeBinding{Source: "events", Destination: "nope", Key: "#"})
			},
			want: []string{"exchange binding events->nope"},
		},
		{
			name: "binding to an undeclared exchange",
			change: func(t *Topology) {
				t.Bindings = append(t.Bindings, Binding{Exchange: "mediaa", Queue: "video", Key: "video"})
			},
			want: []string{`exchange "mediaa" is not in the topology`},
		},
		{
			name:   "binding to the default exchange",
			change: func(t *Topology) { t.Bindings = append(t.Bindings, Binding{Queue: "video", Key: "video"}) },
			want:   []string{`exchange "" is not in the topology`},
		},
		{
			name: "binding to an undeclared queue",
			change: func(t *Topology) {
				t.Bindings = append(t.Bindings, Binding{Exchange: "media", Queue: "vidoe", Key: "video"})
			},
			want: []string{`queue "vidoe" is not in the topology`},
		},
		{
			name: "every mistake reported at once",
			change: func(t *Topology) {
				t.Queues = append(t.Queues, Queue{Name: "audio.dead"})
				t.Bindings = append(t.Bindings, Binding{Exchange: "nope", Queue: "gone"})
			},
			want: []string{`queue "audio.dead"`, `exchange "nope"`, `queue "gone"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := mediaTopology()
			tc.change(&topo)
			err := topo.Validate()
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestQueueArguments(t *testing.T) {
	tests := []struct {
		name string
		q    Queue
		want map[string]any
	}{
		{name: "plain queue declares no arguments", q: Queue{Name: "video", DefaultTask: "process_media"}, want: nil},
		{name: "empty Args map", q: Queue{Name: "video", Args: map[string]any{}}, want: nil},
		{name: "quorum", q: Queue{Name: "video", Quorum: true}, want: quorumArgs("video", DefaultDeliveryLimit)},
		{name: "quorum with a limit", q: Queue{Name: "video", Quorum: true, DeliveryLimit: 3}, want: quorumArgs("video", 3)},
		{name: "quorum without a limit", q: Queue{Name: "video", Quorum: true, DeliveryLimit: -1}, want: func() map[string]any {
			a := quorumArgs("video", 1)
			delete(a, "x-delivery-limit")
			return a
		}()},
		{
			name: "quorum without dead letters (warren's delay levels)", q: Queue{Name: "video", Quorum: true, NoDeadLetters: true},
			want: map[string]any{"x-queue-type": "quorum"},
		},
		{
			name: "args",
			q:    Queue{Name: "video", Args: map[string]any{"x-max-priority": int32(10)}},
			want: map[string]any{"x-max-priority": int32(10)},
		},
		{
			name: "max priority",
			q:    Queue{Name: "video", MaxPriority: 5},
			want: map[string]any{"x-max-priority": int64(5)},
		},
		{
			name: "max priority with other args",
			q:    Queue{Name: "video", MaxPriority: 2, Args: ClassicV2()},
			want: map[string]any{"x-max-priority": int64(2), QueueVersionArg: 2},
		},
		{
			name: "quorum with args",
			q:    Queue{Name: "video", Quorum: true, Args: map[string]any{"x-delivery-limit": int32(5)}},
			want: func() map[string]any {
				a := quorumArgs("video", 1)
				a["x-delivery-limit"] = int32(5) // Args win
				return a
			}(),
		},
		{
			name: "Quorum wins over an x-queue-type arg",
			q:    Queue{Name: "video", Quorum: true, NoDeadLetters: true, Args: map[string]any{"x-queue-type": "classic"}},
			want: map[string]any{"x-queue-type": "quorum"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.q.Arguments()
			if tc.want == nil {
				if got != nil {
					t.Fatalf("Arguments() = %#v, want nil so that a plain client's declaration matches", got)
				}
				return
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("Arguments() = %v, want %v", got, tc.want)
			}
		})
	}
}

// quorumArgs is what a quorum work queue with dead letters declares.
func quorumArgs(name string, limit int64) map[string]any {
	return map[string]any{
		"x-queue-type":              "quorum",
		"x-delivery-limit":          limit,
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": name + ".dead",
		"x-dead-letter-strategy":    "at-least-once",
		"x-overflow":                "reject-publish",
	}
}

func TestQueueArgumentsCopies(t *testing.T) {
	q := Queue{Name: "video", Args: map[string]any{"x-max-priority": int32(10)}}
	args := q.Arguments()
	args["x-max-priority"] = int32(1)
	args["x-extra"] = true
	if q.Args["x-max-priority"] != int32(10) || len(q.Args) != 1 {
		t.Errorf("changing Arguments() changed Queue.Args: %v", q.Args)
	}
	q.Args["x-message-ttl"] = int32(1000)
	if _, ok := args["x-message-ttl"]; ok {
		t.Error("Arguments() aliases Queue.Args")
	}
}

func TestMerge(t *testing.T) {
	a := Topology{
		Exchanges:        []Exchange{{Name: "media"}},
		Queues:           []Queue{{Name: "video"}},
		Bindings:         []Binding{{Exchange: "media", Queue: "video", Key: "video"}},
		ExchangeBindings: []ExchangeBinding{{Source: "events", Destination: "media", Key: "media.*"}},
	}
	b := Topology{
		Exchanges: []Exchange{{Name: "media"}, {Name: "events", Kind: Topic}},
		Queues:    []Queue{{Name: "video"}, {Name: "audio", Quorum: true}},
		Bindings: []Binding{
			{Exchange: "media", Queue: "video", Key: "video"},
			{Exchange: "media", Queue: "video", Key: "video.hd"},
			{Exchange: "media", Queue: "audio", Key: "audio"},
		},
		ExchangeBindings: []ExchangeBinding{
			{Source: "events", Destination: "media", Key: "media.*"},
			{Source: "events", Destination: "media", Key: "media.#"},
		},
	}
	want := Topology{
		Exchanges: []Exchange{{Name: "media"}, {Name: "events", Kind: Topic}},
		Queues:    []Queue{{Name: "video"}, {Name: "audio", Quorum: true}},
		Bindings: []Binding{
			{Exchange: "media", Queue: "video", Key: "video"},
			{Exchange: "media", Queue: "video", Key: "video.hd"},
			{Exchange: "media", Queue: "audio", Key: "audio"},
		},
		ExchangeBindings: []ExchangeBinding{
			{Source: "events", Destination: "media", Key: "media.*"},
			{Source: "events", Destination: "media", Key: "media.#"},
		},
	}
	got := a.Merge(b)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge =\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("merged topology: Validate = %v", err)
	}
	if again := got.Merge(got); !reflect.DeepEqual(again, want) {
		t.Errorf("Merge with itself =\n%+v\nwant\n%+v", again, want)
	}
	if len(a.Exchanges) != 1 || len(a.Queues) != 1 || len(a.Bindings) != 1 || len(a.ExchangeBindings) != 1 {
		t.Errorf("Merge changed its receiver: %+v", a)
	}
	if empty := (Topology{}).Merge(Topology{}); !reflect.DeepEqual(empty, Topology{}) {
		t.Errorf("Merge of empty topologies = %+v", empty)
	}
}

// Merge must not share backing arrays with its inputs: appending to the
// result must not write into the receiver's spare capacity.
func TestMergeDoesNotAlias(t *testing.T) {
	a := Topology{Queues: make([]Queue, 1, 4)}
	a.Queues[0] = Queue{Name: "video"}
	got := a.Merge(Topology{})
	got.Queues = append(got.Queues, Queue{Name: "audio"})
	got.Queues[0].Name = "changed"
	if a.Queues[0].Name != "video" || a.Queues[:2][1].Name != "" {
		t.Errorf("Merge result aliases the receiver: %+v", a.Queues[:2])
	}
}

func TestTopologyQueue(t *testing.T) {
	topo := mediaTopology()
	q, ok := topo.Queue("video")
	if !ok || q.DefaultTask != "process_media" {
		t.Errorf("Queue(video) = %+v, %v", q, ok)
	}
	if q, ok := topo.Queue("video.dead"); ok {
		t.Errorf("Queue(video.dead) = %+v, true; dead-letter queues are not part of the topology", q)
	}
}

func TestDeadQueue(t *testing.T) {
	for queue, want := range map[string]string{"video": "video.dead", "video.hd": "video.hd.dead"} {
		if got := DeadQueue(queue); got != want {
			t.Errorf("DeadQueue(%q) = %q, want %q", queue, got, want)
		}
	}
	if err := (Topology{Queues: []Queue{{Name: DeadQueue("video")}}}).Validate(); err == nil {
		t.Error("a queue named DeadQueue(video) passes Validate")
	}
}
