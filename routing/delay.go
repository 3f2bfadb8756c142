package routing

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The delay infrastructure holds messages for a while and then delivers
// them to a work queue: retry backoff, countdowns and ETAs all use it. It is
// one fixed set shared by every work queue, on plain RabbitMQ (no plugin):
//
//   - DelayLevels levels; level L is a topic exchange "warren.delay.L" and a
//     queue of the same name whose per-queue TTL is 2^L seconds and which
//     dead-letters expired messages into level L-1 (level 0: into the
//     delivery exchange "warren.delay.deliver").
//   - A message's routing key spells its delay in binary, highest level
//     first, then the target queue: "0.0. ... .1.0.1.video" waits 5s. At
//     each level's exchange a message whose bit is 1 goes into the level's
//     queue and waits 2^L seconds; one whose bit is 0 passes straight on to
//     the next level's exchange.
//   - Every message in a level's queue has the same TTL, so the head always
//     expires first: a 1s delay never waits behind a 1h one.
//   - The delivery exchange routes by the whole key with DelayLevels
//     single-word wildcards before the queue name, so queue "video" does
//     not also receive "other.video"'s messages.
//
// Bindings from the delivery exchange grow with the work queues; exchanges
// and queues do not.
const (
	// DelayLevels is the number of levels: delays up to 2^22-1 seconds
	// (about 48.5 days).
	DelayLevels = 22
	// DelayPrefix starts every name of the delay infrastructure.
	DelayPrefix = "warren.delay."
	// DelayDeliver is the exchange that hands delayed messages to their
	// work queue.
	DelayDeliver = DelayPrefix + "deliver"
	// DelayUnroutable is the alternate exchange of DelayDeliver and the
	// queue bound to it: a delayed message whose work queue has no
	// delivery binding lands there instead of being dropped by the broker.
	DelayUnroutable = DelayPrefix + "unroutable"
	// MaxDelay is the longest delay the levels can hold.
	MaxDelay = (1<<DelayLevels - 1) * time.Second
)

// ReplyPrefix starts the name of every reply queue (package result).
const ReplyPrefix = "warren.reply."

// Worker presence (docs/protocol.md): workers publish their heartbeats to
// PresenceExchange and take commands, such as a ping, from
// ControlExchange through a queue of their own; whoever watches them
// (package inspect) binds a queue of its own to PresenceExchange.
const (
	// PresenceExchange is the fanout exchange of worker heartbeats.
	PresenceExchange = "warren.presence"
	// ControlExchange is the fanout exchange of commands to every worker.
	ControlExchange = "warren.control"
	// WorkerQueuePrefix starts the name of a worker's command queue.
	WorkerQueuePrefix = "warren.worker."
	// WatchQueuePrefix starts the name of a watcher's heartbeat queue.
	WatchQueuePrefix = "warren.watch."
)

// LimitPrefix starts the names of the permit queues of a fleet-wide
// concurrency limit (PermitQueue).
const LimitPrefix = "warren.limit."

// PermitQueue names permit queue i of a fleet-wide concurrency limit on
// queue: a single-active-consumer queue whose token lets the one consumer
// holding it run one of queue's tasks.
func PermitQueue(queue string, i int) string {
	return LimitPrefix + queue + "." + strconv.Itoa(i)
}

// RateQueue names the bucket of a fleet-wide rate limit on queue: a queue
// of at most the burst's tokens, one taken per task run.
func RateQueue(queue string) string { return LimitPrefix + queue + ".rate" }

// MinterQueue names the election of a rate limit's minter: a
// single-active-consumer queue whose token lets its holder put tokens in
// RateQueue.
func MinterQueue(queue string) string { return LimitPrefix + queue + ".minter" }

// DelayLevelName returns the exchange and queue name of level l.
func DelayLevelName(l int) string { return DelayPrefix + strconv.Itoa(l) }

// DelayEntry is the exchange a delayed message is published to: the top
// level.
var DelayEntry = DelayLevelName(DelayLevels - 1)

// ExchangeBinding routes messages with a key matching Key from exchange
// Source to exchange Destination.
type ExchangeBinding struct {
	Source      string
	Destination string
	Key         string
}

// DelayTopology returns the levels' exchanges, queues and bindings.
func DelayTopology() Topology {
	var t Topology
	t.Exchanges = append(t.Exchanges,
		Exchange{Name: DelayUnroutable, Kind: Fanout},
		Exchange{Name: DelayDeliver, Kind: Topic, Args: map[string]any{"alternate-exchange": DelayUnroutable}})
	// Quorum, like the levels: a classic queue lives on one node of a
	// cluster, and while that node is down no client could declare the
	// topology on another. Earlier versions declared it classic; such a
	// queue is kept (delete it, empty, to have it re-declared quorum).
	t.Queues = append(t.Queues, Queue{Name: DelayUnroutable, Quorum: true, NoDeadLetters: true, KeepExisting: true})
	t.Bindings = append(t.Bindings, Binding{Exchange: DelayUnroutable, Queue: DelayUnroutable})
	for l := DelayLevels - 1; l >= 0; l-- {
		name := DelayLevelName(l)
		next := DelayDeliver
		if l > 0 {
			next = DelayLevelName(l - 1)
		}
		t.Exchanges = append(t.Exchanges, Exchange{Name: name, Kind: Topic})
		t.Queues = append(t.Queues, Queue{
			Name: name,
			// Quorum, with at-least-once dead-lettering (RabbitMQ 3.10+):
			// the broker moves an expired message on to the next level
			// with an internal confirm, so a crash mid-move duplicates it
			// at worst. Classic queues dead-letter at most once.
			Quorum: true,
			Args: map[string]any{
				"x-message-ttl":          int64(1000) << l,
				"x-dead-letter-exchange": next,
				"x-dead-letter-strategy": "at-least-once",
				"x-overflow":             "reject-publish",
			},
			NoDeadLetters: true,
		})
		t.Bindings = append(t.Bindings, Binding{Exchange: name, Queue: name, Key: bitPattern(l, "1")})
		t.ExchangeBindings = append(t.ExchangeBindings, ExchangeBinding{Source: name, Destination: next, Key: bitPattern(l, "0")})
	}
	return t
}

// bitPattern matches keys whose bit for level l is bit: one "*" per
// higher level, the bit, then "#" for the lower bits and the queue name.
func bitPattern(l int, bit string) string {
	return strings.Repeat("*.", DelayLevels-1-l) + bit + ".#"
}

// DelayBinding binds the delivery exchange to queue, so that delayed
// messages addressed to queue arrive there. Work queues that receive
// retries or delayed tasks need it.
func DelayBinding(queue string) Binding {
	return Binding{Exchange: DelayDeliver, Queue: queue, Key: strings.Repeat("*.", DelayLevels) + queue}
}

// MaxName is the longest name AMQP carries, in bytes (a short string):
// exchange and queue names, routing keys, and task ids too.
const MaxName = 255

// MaxQueueName is the longest name a work queue may have: its delay routing
// key (DelayLevels bits, each with a dot, then the name) and its
// dead-letter queue's name must fit in an AMQP short string of MaxName
// bytes, or no retry, deferral or dead letter of it could ever be
// published.
const MaxQueueName = MaxName - 2*DelayLevels

// DelayKey returns the routing key that holds a message for d (rounded up
// to whole seconds, at least 1s, at most MaxDelay) and then delivers it to
// queue.
func DelayKey(d time.Duration, queue string) string {
	secs := int64((d + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	secs = min(secs, int64(MaxDelay/time.Second))
	var b strings.Builder
	b.Grow(2*DelayLevels + len(queue))
	for l := DelayLevels - 1; l >= 0; l-- {
		if secs&(1<<l) != 0 {
			b.WriteString("1.")
		} else {
			b.WriteString("0.")
		}
	}
	b.WriteString(queue)
	return b.String()
}

// ParseDelayKey is the inverse of DelayKey, for tools and tests.
func ParseDelayKey(key string) (time.Duration, string, error) {
	parts := strings.SplitN(key, ".", DelayLevels+1)
	if len(parts) != DelayLevels+1 || parts[DelayLevels] == "" {
		return 0, "", fmt.Errorf("routing: %q is not a delay key", key)
	}
	var secs int64
	for i, p := range parts[:DelayLevels] {
		switch p {
		case "1":
			secs |= 1 << (DelayLevels - 1 - i)
		case "0":
		default:
			return 0, "", fmt.Errorf("routing: %q is not a delay key", key)
		}
	}
	return time.Duration(secs) * time.Second, parts[DelayLevels], nil
}
