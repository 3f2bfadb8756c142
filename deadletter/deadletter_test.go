package deadletter_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

type Order struct {
	N int `json:"n"`
}

var charge = task.Define[Order]("charge")

// setup runs a worker whose charge handler fails permanently while broken
// is set, enqueues n orders and waits until all are dead letters.
func setup(t *testing.T, n int) (b *brokertest.Broker, q string, dl *deadletter.Client, broken *atomic.Bool, w *worker.Worker) {
	t.Helper()
	b = brokertest.New(t)
	q = b.Queue("orders")
	broken = &atomic.Bool{}
	broken.Store(true)
	w = warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}},
		charge.Handler(func(ctx context.Context, o Order) error {
			if broken.Load() {
				return retry.Permanent(errors.New("card processor misconfigured"))
			}
			return nil
		}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	ctx := warrentest.Context(t, 10*time.Second)
	for i := 0; i < n; i++ {
		if _, err := producer.Enqueue(ctx, p, charge, Order{N: i}, producer.WithMaxAttempts(3)); err != nil {
			t.Fatal(err)
		}
	}
	dq := routing.DeadQueue(q)
	warrentest.Eventually(t, 15*time.Second, func() bool { return b.Ready(dq) == n }, "dead letters %d, want %d", b.Ready(dq), n)
	dl, err := deadletter.New(deadletter.Config{Conn: conn.Config{URL: b.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	return b, q, dl, broken, w
}

func TestListDoesNotRemove(t *testing.T) {
	t.Parallel()
	b, q, dl, _, _ := setup(t, 5)
	ls, err := dl.List(warrentest.Context(t, 10*time.Second), q, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 {
		t.Fatalf("listed %d, want 3", len(ls))
	}
	for _, l := range ls {
		if l.Task != "charge" || l.Queue != q || l.Reason != "permanent" || l.Attempts != 1 ||
			!strings.Contains(l.Error, "misconfigured") || l.DiedAt.IsZero() || l.ID == "" {
			t.Errorf("letter %+v", l)
		}
	}
	if n, err := dl.Count(warrentest.Context(t, 10*time.Second), q); err != nil || n != 5 {
		t.Errorf("after List: Count = %d, %v; want all 5 still there", n, err)
	}
	if r := b.Ready(routing.DeadQueue(q)); r != 5 {
		t.Errorf("dead queue holds %d, want 5", r)
	}
}

func TestReplayRunsThemAgain(t *testing.T) {
	t.Parallel()
	b, q, dl, broken, w := setup(t, 4)
	broken.Store(false) // the bug is fixed
	ls, _ := dl.List(warrentest.Context(t, 10*time.Second), q, 10)
	skip := ls[0].ID
	n, err := dl.Replay(warrentest.Context(t, 10*time.Second), q, 10, func(l deadletter.Letter) bool { return l.ID != skip })
	if err != nil || n != 3 {
		t.Fatalf("Replay = %d, %v; want 3", n, err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 3 }, "replayed tasks did not run: %+v", w.Stats())
	left, _ := dl.List(warrentest.Context(t, 10*time.Second), q, 10)
	if len(left) != 1 || left[0].ID != skip {
		t.Errorf("left %+v, want only the skipped one", left)
	}
	if _, err := dl.Replay(warrentest.Context(t, 10*time.Second), q, 1, nil); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 4 }, "last replay did not run")
	if r := b.Ready(routing.DeadQueue(q)); r != 0 {
		t.Errorf("%d dead letters left", r)
	}
}

func TestReplayResetsAttempts(t *testing.T) {
	t.Parallel()
	b, q, dl, _, _ := setup(t, 1)
	// Stop nothing: move the letter to a queue no worker consumes, to read
	// exactly what a replay publishes.
	other := b.Queue("inspect")
	b.DeclareQueue(other)
	b.DeclareQueue(routing.DeadQueue(other))
	d, ok := b.Get(routing.DeadQueue(q))
	if !ok {
		t.Fatal("no dead letter")
	}
	d.Headers[task.HeaderQueue] = other
	d.Headers["retries"] = int64(4)
	b.Publish("", routing.DeadQueue(other), amqp.Publishing{MessageId: d.MessageId, Headers: d.Headers, ContentType: d.ContentType, Body: d.Body})
	if n, err := dl.Replay(warrentest.Context(t, 10*time.Second), other, 1, nil); err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	r, ok := b.Get(other)
	if !ok {
		t.Fatal("replayed copy not in the original queue")
	}
	if r.MessageId != d.MessageId || string(r.Body) != string(d.Body) || r.Headers["task"] != "charge" {
		t.Errorf("copy changed: id %q body %s headers %v", r.MessageId, r.Body, r.Headers)
	}
	for k := range r.Headers {
		if k == "retries" || (strings.HasPrefix(k, "x-warren-") && k != "x-warren-max-attempts" && k != "x-warren-replayed-at" && k != "x-warren-publish-seq") {
			t.Errorf("replayed copy kept %s=%v", k, r.Headers[k])
		}
	}
	if r.Headers["x-warren-max-attempts"] != int64(3) {
		t.Errorf("per-enqueue max attempts lost: %v", r.Headers["x-warren-max-attempts"])
	}
}

func TestReplayToAMissingQueueLosesNothing(t *testing.T) {
	t.Parallel()
	b, q, dl, broken, w := setup(t, 2)
	broken.Store(false)
	// The original queue is gone (deleted by an operator): the copy is
	// returned unroutable, so the dead letter must stay.
	gone := b.Queue("gone")
	d, _ := b.Get(routing.DeadQueue(q))
	d.Headers[task.HeaderQueue] = gone
	b.Publish("", routing.DeadQueue(q), amqp.Publishing{MessageId: d.MessageId, Headers: d.Headers, Body: d.Body})
	n, err := dl.Replay(warrentest.Context(t, 10*time.Second), q, 10, nil)
	if !errors.Is(err, producer.ErrUnroutable) {
		t.Errorf("Replay err = %v, want ErrUnroutable", err)
	}
	if n > 1 {
		t.Errorf("moved %d", n)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == uint64(n) }, "moved task not run")
	if r := b.Ready(routing.DeadQueue(q)); r+n != 2 {
		t.Errorf("dead letters %d + moved %d != 2: one was lost", r, n)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	_, q, dl, _, _ := setup(t, 3)
	n, err := dl.Purge(warrentest.Context(t, 10*time.Second), q)
	if err != nil || n != 3 {
		t.Fatalf("Purge = %d, %v; want 3", n, err)
	}
	if c, _ := dl.Count(warrentest.Context(t, 10*time.Second), q); c != 0 {
		t.Errorf("Count after Purge = %d", c)
	}
	if _, err := dl.Count(warrentest.Context(t, 10*time.Second), "no-such-queue-"+q); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Count of a missing queue: %v", err)
	}
}

// A task whose runs end with their worker every time, on a quorum queue:
// past its delivery limit the broker dead-letters it into <queue>.dead,
// without warren's headers, and List reads why from the broker's own.
func TestBrokerDeadLettersPastTheDeliveryLimit(t *testing.T) {
	const limit = 2
	b := brokertest.New(t)
	q := b.Queue("crashy")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q, Quorum: true, DeliveryLimit: limit}}}
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, charge, Order{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	dq := routing.DeadQueue(q)
	deliveries := 0
	for b.Ready(dq) == 0 {
		if deliveries > limit+1 {
			t.Fatalf("still not dead-lettered after %d deliveries with x-delivery-limit %d", deliveries, limit)
		}
		// A worker that takes the task and dies: its channel closes with
		// the delivery unacked, and the broker counts a delivery.
		ch := b.Channel()
		if err := ch.Qos(1, 0, false); err != nil {
			t.Fatal(err)
		}
		ds, err := ch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ds:
			deliveries++
		case <-time.After(10 * time.Second):
			if b.Ready(dq) == 0 {
				t.Fatalf("no delivery and no dead letter after %d deliveries", deliveries)
			}
		}
		_ = ch.Close()
		warrentest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q)+b.Ready(dq) == 1 }, "the task is neither ready nor dead")
	}
	if deliveries != limit+1 {
		t.Errorf("dead-lettered after %d deliveries, want %d (the first and %d redeliveries)", deliveries, limit+1, limit)
	}

	dl, err := deadletter.New(deadletter.Config{Conn: conn.Config{URL: b.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	letters, err := dl.List(warrentest.Context(t, 10*time.Second), q, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 {
		t.Fatalf("%d letters, want 1", len(letters))
	}
	l := letters[0]
	if l.ID != id || l.Task != charge.Name() || l.Queue != q || l.Reason != outcome.ReasonDeliveryLimit || l.Error == "" {
		t.Errorf("letter = id %q task %q queue %q reason %q error %q; want %q %q %q %q and an explanation",
			l.ID, l.Task, l.Queue, l.Reason, l.Error, id, charge.Name(), q, outcome.ReasonDeliveryLimit)
	}
}
