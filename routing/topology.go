package routing

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is an exchange type.
type Kind string

// Exchange kinds a route table may name.
const (
	Direct Kind = "direct"
	Topic  Kind = "topic"
	Fanout Kind = "fanout"
)

// DeadSuffix ends the name of every work queue's dead-letter queue.
const DeadSuffix = ".dead"

// DeadQueue returns the name of queue's dead-letter queue.
func DeadQueue(queue string) string { return queue + DeadSuffix }

// Exchange is a durable exchange warren declares.
type Exchange struct {
	Name string
	Kind Kind // defaults to Direct
	// Args are the exchange's x-arguments, e.g. alternate-exchange.
	Args map[string]any
}

// DefaultDeliveryLimit is a quorum work queue's delivery limit when its
// DeliveryLimit is 0: RabbitMQ 4's own default, so that a queue behaves the
// same on 3.x, where quorum queues have no limit unless given one.
const DefaultDeliveryLimit = 20

// MaxPriorityArg is the queue argument that makes a classic queue a
// priority queue: its value is the highest priority the queue tells apart.
const MaxPriorityArg = "x-max-priority"

// MaxPriority caps Queue.MaxPriority. Each level is a sub-queue inside the
// broker, with its own memory and CPU cost; RabbitMQ recommends 2 to 4
// levels and at most 10. A queue that needs more can still set
// MaxPriorityArg in Args, where warren does not check it.
const MaxPriority = 10

// Queue is a durable work queue. With no Quorum and no Args it is declared
// exactly as a plain client would declare it (durable, no arguments), so
// Kombu's Queue('video', Exchange('media','direct'), routing_key='video')
// and warren agree and neither fails with PRECONDITION_FAILED.
type Queue struct {
	Name string
	// Quorum declares a quorum queue (x-queue-type=quorum) instead of a
	// classic one: replicated over a cluster's nodes, and with a delivery
	// limit, so that a task that kills its worker process every time is
	// dead-lettered after DeliveryLimit deliveries instead of crashing
	// workers for ever. Unless NoDeadLetters, the broker dead-letters such
	// a task into the queue's <name>.dead, at least once
	// (x-dead-letter-strategy at-least-once, which needs x-overflow
	// reject-publish). The recommended setting for production; it costs
	// publish throughput (docs/performance.md). Defaults to false: a
	// classic queue, as plain clients declare one. An existing queue's type
	// cannot change: docs/cluster.md says how to move to a new queue.
	Quorum bool
	// DeliveryLimit is a quorum queue's x-delivery-limit: how many times
	// the broker delivers a message that comes back unsettled (its
	// worker or channel died, or it was requeued at shutdown) before it
	// dead-letters it. warren's own retries are new messages and do not
	// count. 0 means DefaultDeliveryLimit; negative, no limit. Ignored for
	// classic queues.
	DeliveryLimit int
	// MaxPriority declares a classic priority queue (x-max-priority): a
	// ready task with a higher priority (producer.WithPriority,
	// task.WithPriority) is delivered before lower ones, and a priority
	// above MaxPriority counts as MaxPriority. 0, the default, declares no
	// priorities: every task is first in, first out, whatever its
	// priority. At most the constant MaxPriority (10). Quorum queues on
	// RabbitMQ 3.x have no priorities, so Validate refuses it with Quorum
	// (docs/protocol.md, "Priorities", says what RabbitMQ 4 offers). A
	// queue's priorities cannot change once declared; its .dead queue has
	// none.
	MaxPriority uint8
	// Args are extra x-arguments; they must match any existing declaration.
	Args map[string]any
	// DefaultTask names the task run for a message that arrives on this
	// queue without a "task" header, so plain AMQP producers need not know
	// warren's headers.
	DefaultTask string
	// NoDeadLetters declares the queue without a <name>.dead queue beside
	// it: warren's own delay queues have none.
	NoDeadLetters bool
	// KeepExisting uses a queue of this name that exists already with
	// other arguments as it is, where the declaration would fail: for
	// warren's own queues whose declaration changed between versions.
	KeepExisting bool
	// Exclusive declares a queue that belongs to the connection declaring
	// it: not durable, usable by that connection alone, placed on the node
	// it is connected to, and deleted by the broker when it closes. For a
	// process's own queues (a worker's command queue, a watcher's): they
	// then never wait for a home node that is down, and leave nothing
	// behind. Not auto-delete: the queue lives as long as its connection,
	// whatever happens to its consumer's channel. Validate refuses it with
	// Quorum (RabbitMQ has no exclusive quorum queues) or KeepExisting,
	// and without NoDeadLetters (a durable .dead queue would outlive it).
	Exclusive bool
}

// Arguments returns the x-arguments the queue is declared with, or nil.
// Args given in q.Args win over the ones Quorum and MaxPriority imply, but
// for the type.
func (q Queue) Arguments() map[string]any {
	if !q.Quorum && q.MaxPriority == 0 && len(q.Args) == 0 {
		return nil
	}
	args := make(map[string]any, len(q.Args)+7)
	if q.MaxPriority > 0 {
		args[MaxPriorityArg] = int64(q.MaxPriority)
	}
	if q.Quorum {
		args["x-queue-type"] = "quorum"
		if !q.NoDeadLetters {
			limit := q.DeliveryLimit
			if limit == 0 {
				limit = DefaultDeliveryLimit
			}
			if limit > 0 {
				args["x-delivery-limit"] = int64(limit)
			}
			args["x-dead-letter-exchange"] = ""
			args["x-dead-letter-routing-key"] = DeadQueue(q.Name)
			args["x-dead-letter-strategy"] = "at-least-once"
			args["x-overflow"] = "reject-publish"
		}
	}
	for k, v := range q.Args {
		args[k] = v
	}
	if q.Quorum {
		args["x-queue-type"] = "quorum" // Quorum means it, whatever Args say
	}
	return args
}

// errQuorumPriority is why Validate refuses a quorum queue with a
// MaxPriority: RabbitMQ 3.x refuses the argument on a quorum queue with
// PRECONDITION_FAILED, and 4.0 to 4.2 as well, since there every quorum
// queue has its two levels without it.
var errQuorumPriority = errors.New("quorum queues take no x-max-priority on RabbitMQ 3.x; " +
	"RabbitMQ 4 gives every quorum queue two levels without it (priority 5 and above is high, " +
	"delivered two to one with the rest): leave MaxPriority 0, or use a classic queue")

// validatePriority checks MaxPriority alone and against Quorum and Args.
func (q Queue) validatePriority() error {
	switch {
	case q.MaxPriority == 0:
		return nil
	case q.Quorum:
		return fmt.Errorf("routing: queue %q: MaxPriority with Quorum: %w", q.Name, errQuorumPriority)
	case q.MaxPriority > MaxPriority:
		return fmt.Errorf("routing: queue %q: MaxPriority %d is above %d: each level costs the broker memory and CPU (set %s in Args to go past it knowingly)", q.Name, q.MaxPriority, MaxPriority, MaxPriorityArg)
	}
	if v, ok := q.Args[MaxPriorityArg]; ok {
		if n, ok := argInt(v); !ok || n != int64(q.MaxPriority) {
			return fmt.Errorf("routing: queue %q: MaxPriority %d and Args[%q] = %v disagree; set one", q.Name, q.MaxPriority, MaxPriorityArg, v)
		}
	}
	return nil
}

// validateExclusive checks Exclusive against the settings it excludes.
func (q Queue) validateExclusive() error {
	switch {
	case !q.Exclusive:
		return nil
	case q.Quorum:
		return fmt.Errorf("routing: queue %q: Exclusive with Quorum: RabbitMQ has no exclusive quorum queues", q.Name)
	case q.KeepExisting:
		return fmt.Errorf("routing: queue %q: Exclusive with KeepExisting: an exclusive queue is declared anew on each connection", q.Name)
	case !q.NoDeadLetters:
		return fmt.Errorf("routing: queue %q: Exclusive without NoDeadLetters: its durable .dead queue would outlive it", q.Name)
	}
	return nil
}

// argInt reads an integer queue argument of any Go integer type.
func argInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// Binding routes messages with Key from Exchange to Queue.
type Binding struct {
	Exchange string
	Queue    string
	Key      string
}

// Topology is everything warren declares for a program. Declaring is
// idempotent, so producers and workers may both apply the same Topology.
type Topology struct {
	Exchanges        []Exchange
	Queues           []Queue
	Bindings         []Binding
	ExchangeBindings []ExchangeBinding
	// Shards names logical queues spread over shard queues (Shards), so
	// that a worker told a logical name consumes every shard (Expand). The
	// shard queues and bindings themselves are in Queues and Bindings:
	// Shards.Topology puts them there.
	Shards []Shards
}

// Queue returns the queue called name.
func (t Topology) Queue(name string) (Queue, bool) {
	for _, q := range t.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return Queue{}, false
}

// Merge returns t with o's entities appended, dropping exact repeats.
func (t Topology) Merge(o Topology) Topology {
	var out Topology
	seenX := map[string]bool{} // by name: an Exchange with Args is not comparable
	for _, x := range append(append([]Exchange{}, t.Exchanges...), o.Exchanges...) {
		if !seenX[x.Name] {
			seenX[x.Name] = true
			out.Exchanges = append(out.Exchanges, x)
		}
	}
	seenQ := map[string]bool{}
	for _, q := range append(append([]Queue{}, t.Queues...), o.Queues...) {
		if !seenQ[q.Name] {
			seenQ[q.Name] = true
			out.Queues = append(out.Queues, q)
		}
	}
	seenB := map[Binding]bool{}
	for _, b := range append(append([]Binding{}, t.Bindings...), o.Bindings...) {
		if !seenB[b] {
			seenB[b] = true
			out.Bindings = append(out.Bindings, b)
		}
	}
	seenEB := map[ExchangeBinding]bool{}
	for _, b := range append(append([]ExchangeBinding{}, t.ExchangeBindings...), o.ExchangeBindings...) {
		if !seenEB[b] {
			seenEB[b] = true
			out.ExchangeBindings = append(out.ExchangeBindings, b)
		}
	}
	seenS := map[string]bool{}
	for _, sh := range append(append([]Shards{}, t.Shards...), o.Shards...) {
		if !seenS[sh.Queue] {
			seenS[sh.Queue] = true
			out.Shards = append(out.Shards, sh)
		}
	}
	return out
}

// Validate reports entities without names, exchanges of unknown kinds,
// bindings to undeclared exchanges or queues, and queue names that would
// collide with warren's own (a work queue may not itself end in ".dead"),
// and shards that are invalid or whose shard queues are missing.
func (t Topology) Validate() error {
	var errs []error
	xs := map[string]bool{}
	for _, x := range t.Exchanges {
		switch {
		case x.Name == "":
			errs = append(errs, errors.New("routing: exchange without a name"))
		case x.Kind != "" && x.Kind != Direct && x.Kind != Topic && x.Kind != Fanout:
			errs = append(errs, fmt.Errorf("routing: exchange %q: unknown kind %q", x.Name, x.Kind))
		}
		xs[x.Name] = true
	}
	qs := map[string]bool{}
	for _, q := range t.Queues {
		switch {
		case q.Name == "":
			errs = append(errs, errors.New("routing: queue without a name"))
		case len(q.Name) > len(DeadSuffix) && q.Name[len(q.Name)-len(DeadSuffix):] == DeadSuffix:
			errs = append(errs, fmt.Errorf("routing: queue %q: names ending in %q are warren's dead-letter queues", q.Name, DeadSuffix))
		case len(q.Name) > MaxQueueName:
			errs = append(errs, fmt.Errorf("routing: queue %q: names longer than %d bytes leave no room for delay routing keys", q.Name, MaxQueueName))
		case strings.ContainsAny(q.Name, "*#"):
			errs = append(errs, fmt.Errorf("routing: queue %q: '*' and '#' are topic wildcards and would break delayed delivery", q.Name))
		}
		if err := q.validatePriority(); err != nil {
			errs = append(errs, err)
		}
		if err := q.validateExclusive(); err != nil {
			errs = append(errs, err)
		}
		qs[q.Name] = true
	}
	for _, b := range t.ExchangeBindings {
		if !xs[b.Source] || !xs[b.Destination] {
			errs = append(errs, fmt.Errorf("routing: exchange binding %s->%s: both exchanges must be in the topology", b.Source, b.Destination))
		}
	}
	for _, b := range t.Bindings {
		if !xs[b.Exchange] {
			errs = append(errs, fmt.Errorf("routing: binding %s->%s: exchange %q is not in the topology", b.Exchange, b.Queue, b.Exchange))
		}
		if !qs[b.Queue] {
			errs = append(errs, fmt.Errorf("routing: binding %s->%s: queue %q is not in the topology", b.Exchange, b.Queue, b.Queue))
		}
	}
	for _, sh := range t.Shards {
		if err := sh.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if qs[sh.Queue] {
			errs = append(errs, fmt.Errorf("routing: shards of %q: a queue has the logical name too; a worker told that name would consume only the shards", sh.Queue))
		}
		for _, name := range sh.Names() {
			if !qs[name] {
				errs = append(errs, fmt.Errorf("routing: shards of %q: shard queue %q is not in the topology (merge Shards.Topology)", sh.Queue, name))
			}
		}
	}
	return errors.Join(errs...)
}
