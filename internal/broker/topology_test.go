package broker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
)

// A queue that an earlier version declared with other arguments fails the
// declaration, unless the topology says to keep it; then the rest of the
// topology is still declared.
func TestDeclareKeepsAnExistingQueueWhenTold(t *testing.T) {
	b := brokertest.New(t)
	q, after := b.Queue("old"), b.Queue("after")
	b.DeclareQueue(q) // classic, no arguments, as an earlier version did
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b.Track(after)

	quorum := routing.Queue{Name: q, Quorum: true, NoDeadLetters: true}
	err = broker.Declare(conn, routing.Topology{Queues: []routing.Queue{quorum}})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("declaring it quorum over the classic one: %v, want PRECONDITION_FAILED", err)
	}
	if !strings.Contains(err.Error(), "cannot change a queue's type") {
		t.Errorf("the refusal does not say what to do: %v", err)
	}

	quorum.KeepExisting = true
	topo := routing.Topology{Queues: []routing.Queue{quorum, {Name: after, NoDeadLetters: true}}}
	if err := broker.Declare(conn, topo); err != nil {
		t.Fatalf("with KeepExisting: %v", err)
	}
	if b.Ready(after) != 0 {
		t.Errorf("the queue after the kept one was not declared")
	}
	// Still the classic queue: a quorum one would refuse a classic
	// redeclaration, as it refused the opposite above.
	b.DeclareQueue(q)
}

// A priority queue is what another client gets declaring x-max-priority
// with the same value, whatever its integer type (Kombu sends a 32-bit
// one); its .dead queue has no priorities.
func TestDeclarePriorityQueue(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("prio")
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b.Track(routing.DeadQueue(q))
	if err := broker.Declare(conn, routing.Topology{Queues: []routing.Queue{{Name: q, MaxPriority: 5}}}); err != nil {
		t.Fatal(err)
	}
	if !b.DeclaredWith(q, map[string]any{routing.MaxPriorityArg: int32(5)}) {
		t.Errorf("%s does not match a plain declaration with x-max-priority 5", q)
	}
	if b.DeclaredWith(q, nil) {
		t.Errorf("%s matches a declaration without priorities", q)
	}
	if !b.DeclaredWith(routing.DeadQueue(q), nil) {
		t.Errorf("%s is not a plain queue", routing.DeadQueue(q))
	}
}

// An Exclusive queue is its connection's: another connection cannot use
// it (RESOURCE_LOCKED), and it is gone once its connection closes.
func TestDeclareExclusiveQueue(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("own") // not tracked: it goes with its connection
	own, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	topo := routing.Topology{Queues: []routing.Queue{{Name: q, Exclusive: true, NoDeadLetters: true,
		Args: map[string]any{"x-message-ttl": int64(10000)}}}}
	if err := broker.Declare(own, topo); err != nil {
		t.Fatal(err)
	}
	if err := broker.Declare(own, topo); err != nil {
		t.Fatalf("declaring it again on its connection: %v", err)
	}
	other := b.Channel()
	_, err = other.QueueDeclarePassive(q, false, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.ResourceLocked {
		t.Fatalf("another connection's passive declare: %v, want RESOURCE_LOCKED", err)
	}
	if err := own.Close(); err != nil {
		t.Fatal(err)
	}
	// The broker deletes it just after the connection closed.
	brokertest.Eventually(t, 5*time.Second, func() bool {
		_, err = b.Channel().QueueDeclarePassive(q, false, false, false, false, nil)
		return errors.As(err, &ae) && ae.Code == amqp.NotFound
	}, "after its connection closed: %v, want NOT_FOUND", err)
}
