package routing

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
)

// MaxShards caps Shards.Count: past a few queues per broker core the
// broker, not the queue, is the limit (docs/performance.md).
const MaxShards = 64

// QueueVersionArg is the queue argument that picks a classic queue's
// storage version on RabbitMQ 3.10 and later. Version 2 takes about twice
// the persistent publishes of version 1 once spread over 4 to 8 queues
// (docs/performance.md); warren never sets it unasked, because a plain
// client declaring the same queue without it would fail with
// PRECONDITION_FAILED.
const QueueVersionArg = "x-queue-version"

// ClassicV2 returns the arguments of a version 2 classic queue, for
// Queue.Args or Shards.Args.
func ClassicV2() map[string]any { return map[string]any{QueueVersionArg: 2} }

// Shards spreads one logical queue over Count queues, to get past the
// rate one RabbitMQ queue takes (its single broker process): shard i is
// the queue "<Queue>.<i>", bound to Exchange with the same name as key.
// Every shard is an ordinary work queue with its own dead-letter queue and
// delay binding, and a message on it is an ordinary warren message. The
// producer picks a task's shard from a hash of its id (Shard), so it needs
// no plugin and no shared state, and an enqueue repeated WithID lands on
// the same shard; a worker given the logical name consumes every shard.
type Shards struct {
	// Queue is the logical name; the shard queues are named after it.
	Queue string
	// Count is the number of shard queues, 1 to MaxShards. Changing it
	// moves ids to other shards; the old shards must be drained by a
	// worker that still names them.
	Count int
	// Exchange is the direct exchange the shards are bound to. Empty means
	// the default exchange, which routes by queue name and needs no
	// binding.
	Exchange string
	// Args are the shard queues' x-arguments, e.g. ClassicV2(). Defaults
	// to none.
	Args map[string]any
	// DefaultTask names the task run for a message without a "task"
	// header, on every shard (Queue.DefaultTask).
	DefaultTask string
	// Quorum declares every shard a quorum queue, as Queue.Quorum does:
	// the setting for a cluster, where shards spread a task's work over
	// the nodes as well as over queues.
	Quorum bool
	// DeliveryLimit is each quorum shard's delivery limit
	// (Queue.DeliveryLimit): 0 means DefaultDeliveryLimit.
	DeliveryLimit int
	// MaxPriority makes every shard a classic priority queue
	// (Queue.MaxPriority). A task's priority orders it within its own
	// shard only: a high-priority task jumps the tasks of its shard, not
	// those of the others, which the worker takes in turn. Not with Quorum.
	MaxPriority uint8
}

// Name returns the name of shard i, which is also its routing key.
func (s Shards) Name(i int) string { return s.Queue + "." + strconv.Itoa(i) }

// Names returns the shard queues' names, shard 0 first; none when Count
// is below 1.
func (s Shards) Names() []string {
	if s.Count < 1 {
		return nil
	}
	out := make([]string, s.Count)
	for i := range out {
		out[i] = s.Name(i)
	}
	return out
}

// Shard returns the shard a task id goes to: FNV-1a of the id, modulo
// Count. warren's ids are version 7 UUIDs whose random bits spread them
// evenly; the same id always gets the same shard.
func (s Shards) Shard(id string) int {
	if s.Count <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(s.Count))
}

// Route returns where the task with id is published: its shard's key on
// Exchange.
func (s Shards) Route(id string) Route {
	return Route{Exchange: s.Exchange, Key: s.Name(s.Shard(id))}
}

// Topology returns what the shards need declared: the exchange (unless it
// is the default one), the shard queues and their bindings, and s itself,
// so that a worker can expand the logical name. Merge it into a program's
// topology.
func (s Shards) Topology() Topology {
	t := Topology{Shards: []Shards{s}}
	if s.Exchange != "" {
		t.Exchanges = []Exchange{{Name: s.Exchange, Kind: Direct}}
	}
	for _, name := range s.Names() {
		t.Queues = append(t.Queues, Queue{Name: name, Args: s.Args, DefaultTask: s.DefaultTask, Quorum: s.Quorum, DeliveryLimit: s.DeliveryLimit, MaxPriority: s.MaxPriority})
		if s.Exchange != "" {
			t.Bindings = append(t.Bindings, Binding{Exchange: s.Exchange, Queue: name, Key: name})
		}
	}
	return t
}

// Validate reports a logical queue without a name, a Count out of range,
// or shard names too long for the delay levels.
func (s Shards) Validate() error {
	switch {
	case s.Queue == "":
		return errors.New("routing: shards without a queue name")
	case s.Count < 1 || s.Count > MaxShards:
		return fmt.Errorf("routing: shards of %q: count %d is not between 1 and %d", s.Queue, s.Count, MaxShards)
	case len(s.Name(s.Count-1)) > MaxQueueName:
		return fmt.Errorf("routing: shards of %q: shard names longer than %d bytes leave no room for delay routing keys", s.Queue, MaxQueueName)
	}
	return nil
}

// Expand returns queues with every logical name of t.Shards replaced by
// its shard queues, in order; other names stay as they are.
func (t Topology) Expand(queues []string) []string {
	var out []string
	for _, q := range queues {
		if s, ok := t.shards(q); ok {
			out = append(out, s.Names()...)
			continue
		}
		out = append(out, q)
	}
	return out
}

func (t Topology) shards(queue string) (Shards, bool) {
	for _, s := range t.Shards {
		if s.Queue == queue {
			return s, true
		}
	}
	return Shards{}, false
}
