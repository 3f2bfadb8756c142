package deadletter_test

import (
	"context"
	"errors"
	"math"
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
	b.Publish("", routing.DeadQueue(other), amqp.Publishing{MessageId: d.MessageId, Headers: d.Headers, ContentType: d.ContentType, Body: d.Body, Priority: 3})
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
	if r.Priority != 3 {
		t.Errorf("priority %d, want the dead letter's 3", r.Priority)
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

// ids lists the IDs of queue's dead letters, oldest first.
func ids(t *testing.T, dl *deadletter.Client, q string) []string {
	t.Helper()
	ls, err := dl.List(warrentest.Context(t, 10*time.Second), q, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func TestDeleteOne(t *testing.T) {
	t.Parallel()
	_, q, dl, _, _ := setup(t, 4)
	before := ids(t, dl, q)
	victim := before[2]
	n, err := dl.Delete(warrentest.Context(t, 10*time.Second), q, 1, func(l deadletter.Letter) bool { return l.ID == victim })
	if err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v; want 1", n, err)
	}
	want := []string{before[0], before[1], before[3]}
	if got := ids(t, dl, q); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("left %v, want %v (the others, in order)", got, want)
	}
}

func TestDeleteSelection(t *testing.T) {
	t.Parallel()
	_, q, dl, _, _ := setup(t, 5)
	before := ids(t, dl, q)
	chosen := map[string]bool{before[0]: true, before[3]: true, "no-such-id": true}
	n, err := dl.Delete(warrentest.Context(t, 10*time.Second), q, len(chosen), func(l deadletter.Letter) bool { return chosen[l.ID] })
	if err != nil || n != 2 {
		t.Fatalf("Delete = %d, %v; want the 2 that exist", n, err)
	}
	want := []string{before[1], before[2], before[4]}
	if got := ids(t, dl, q); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("left %v, want %v", got, want)
	}
}

func TestDeleteFirstNThenAll(t *testing.T) {
	t.Parallel()
	b, q, dl, _, _ := setup(t, 5)
	before := ids(t, dl, q)
	n, err := dl.Delete(warrentest.Context(t, 10*time.Second), q, 2, nil)
	if err != nil || n != 2 {
		t.Fatalf("Delete(2, nil) = %d, %v; want 2", n, err)
	}
	if got := ids(t, dl, q); strings.Join(got, ",") != strings.Join(before[2:], ",") {
		t.Errorf("left %v, want the newest 3 %v", got, before[2:])
	}
	n, err = dl.Delete(warrentest.Context(t, 10*time.Second), q, math.MaxInt, nil)
	if err != nil || n != 3 {
		t.Fatalf("Delete(all) = %d, %v; want 3", n, err)
	}
	if r := b.Ready(routing.DeadQueue(q)); r != 0 {
		t.Errorf("%d dead letters left", r)
	}
	if _, err := dl.Delete(warrentest.Context(t, 10*time.Second), "no-such-queue-"+q, 1, nil); !errors.Is(err, conn.ErrNotFound) {
		t.Errorf("Delete in a missing queue: %v, want ErrNotFound", err)
	}
}

// A task that failed once and then for good: the letter carries both
// errors, first and last.
func TestFirstError(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("orders")
	var runs atomic.Int32
	warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}},
		charge.Handler(func(ctx context.Context, o Order) error {
			if runs.Add(1) == 1 {
				return retry.After(time.Second, errors.New("bank timed out"))
			}
			return retry.Permanent(errors.New("card declined"))
		}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, charge, Order{N: 1}); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 20*time.Second, func() bool { return b.Ready(routing.DeadQueue(q)) == 1 }, "no dead letter")
	dl, err := deadletter.New(deadletter.Config{Conn: conn.Config{URL: b.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	ls, err := dl.List(warrentest.Context(t, 10*time.Second), q, 1)
	if err != nil || len(ls) != 1 {
		t.Fatalf("List = %v, %v", ls, err)
	}
	if l := ls[0]; !strings.Contains(l.FirstError, "bank timed out") || l.Error != "card declined" || l.Attempts != 2 {
		t.Errorf("first error %q, last %q, attempts %d; want bank timed out, card declined, 2", l.FirstError, l.Error, l.Attempts)
	}
}
