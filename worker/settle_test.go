package worker_test

import (
	"context"
	"errors"
	"math"
	"net/url"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// settled is the number of deliveries that reached an outcome.
func settled(s worker.Stats) uint64 {
	return s.Succeeded + s.Retried + s.Dead + s.Expired + s.Requeued
}

// With fewer handlers than queues, a queue with no messages must not hold a
// handler while it waits: here the two idle queues would take the only one.
func TestIdleQueuesDoNotStarveABusyOne(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	idle1, idle2, busy := b.Queue("idle1"), b.Queue("idle2"), b.Queue("busy")
	def := task.Define[Job]("starve")
	var ran atomic.Int32
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{idle1, busy, idle2}, Concurrency: 1}, def.Handler(func(context.Context, Job) error { ran.Add(1); return nil }))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	for i := range 5 {
		if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: i}, producer.WithQueue(busy)); err != nil {
			t.Fatal(err)
		}
	}
	warrentest.Eventually(t, 15*time.Second, func() bool { return w.Stats().Succeeded == 5 },
		"busy queue starved by idle ones: %d of 5 ran, stats %+v", ran.Load(), w.Stats())
}

// Busy queues share the handlers in turn: one queue's backlog does not run
// to its end before another's starts.
func TestBusyQueuesShareHandlers(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	qa, qb := b.Queue("fair-a"), b.Queue("fair-b")
	def := task.Define[Job]("fair")
	var mu sync.Mutex
	var order []string
	release := make(chan struct{})
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{qa, qb}, Concurrency: 1, Prefetch: 20}, def.Handler(func(ctx context.Context, j Job) error {
		<-release
		time.Sleep(2 * time.Millisecond) // some work: consumers take their next delivery meanwhile
		m, _ := task.FromContext(ctx)
		mu.Lock()
		order = append(order, m.Queue)
		mu.Unlock()
		return nil
	}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	for _, q := range []string{qa, qb} {
		for i := range 20 {
			if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: i}, producer.WithQueue(q)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Both backlogs are in the worker's prefetch windows before the first
	// handler finishes.
	warrentest.Eventually(t, 10*time.Second, func() bool { return b.Ready(qa) == 0 && b.Ready(qb) == 0 }, "backlogs not prefetched")
	close(release)
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 40 }, "stats %+v", w.Stats())
	mu.Lock()
	defer mu.Unlock()
	longest, streak := 0, 0
	for i := range order {
		if i > 0 && order[i] == order[i-1] {
			streak++
		} else {
			streak = 1
		}
		longest = max(longest, streak)
	}
	if longest > 3 {
		t.Errorf("one queue ran %d tasks in a row while the other waited; order %v", longest, order)
	}
}

// The channel of a delivery dies while its handler runs: the broker takes
// the delivery back and redelivers it, so the failed run must publish
// nothing for it. Had it published its dead letter, the task would both be
// in <queue>.dead and run again (and succeed) from the redelivery. Meanwhile,
// with its only handler busy, the worker must notice the dead channel and
// subscribe again, so that readiness tells the truth.
func TestNoFollowUpForADeadChannel(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	q := b.Queue("dead-channel")
	def := task.Define[Job]("dead_channel")
	started := make(chan struct{})
	release := make(chan struct{})
	var runs atomic.Int32
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: brokertest.WithHost(b.URL, px.Addr())}, Queues: []string{q},
		Concurrency: 1, Prefetch: 4}, def.Handler(func(ctx context.Context, j Job) error {
		if j.N == 0 && runs.Add(1) == 1 {
			close(started)
			<-release
			return retry.Permanent(errors.New("bad account")) // would be dead-lettered
		}
		return nil
	}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	for i := range 2 { // 0 blocks the only handler; 1 waits in the consumer
		if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: i}, producer.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	px.Cut()
	ch := b.Channel()
	consumers := func() int {
		qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return qi.Consumers
	}
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Ready() && consumers() == 1 },
		"with its handler busy, the worker did not subscribe again after the cut: ready %v, consumers %d", w.Ready(), consumers())
	close(release)
	// The first run is settled (requeued: its channel died) and both tasks
	// succeed from their redeliveries.
	warrentest.Eventually(t, 20*time.Second, func() bool { s := w.Stats(); return s.Succeeded == 2 && settled(s) == 3 }, "stats %+v", w.Stats())
	s := w.Stats()
	if s.ChannelLost != 1 || s.Requeued != 1 || s.Dead != 0 {
		t.Errorf("stats %+v: want the failed run requeued for its lost channel, nothing dead", s)
	}
	if n := b.Ready(routing.DeadQueue(q)); n != 0 {
		t.Errorf("%d dead letters for a task that succeeded: the run of a dead channel published its follow-up", n)
	}
}

// A handler that ends its goroutine with runtime.Goexit has not returned:
// its run is a failure like a panic, and its delivery is settled (here
// retried, and the retry succeeds) rather than left unacked.
func TestHandlerGoexitIsAFailure(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("goexit-retry")
	def := task.Define[Job]("goexit_retry")
	var runs atomic.Int32
	h := def.Handler(func(ctx context.Context, j Job) error {
		if runs.Add(1) == 1 {
			runtime.Goexit()
		}
		return nil
	})
	w := startRetryWorker(t, b, q, fast, h)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 1 },
		"a task whose handler called Goexit was never settled: %d runs, stats %+v", runs.Load(), w.Stats())
	if s := w.Stats(); s.Retried != 1 {
		t.Errorf("stats %+v: want the Goexit run retried once", s)
	}
}

// Sum is the payload of the result tests.
type Sum struct{ A, B int }

// awaitFailure enqueues def's task on q for a result and returns the
// failure that Get ends with; the test fails if it ends otherwise.
func awaitFailure[R any](t *testing.T, b *brokertest.Broker, q string, def *task.ResultDef[Sum, R]) *result.TaskError {
	t.Helper()
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	h, err := producer.EnqueueResult(warrentest.Context(t, 10*time.Second), p, def, Sum{}, producer.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Get(warrentest.Context(t, 20*time.Second))
	var te *result.TaskError
	if !errors.As(err, &te) {
		t.Fatalf("Get: %v, want a *result.TaskError", err)
	}
	return te
}

// A result that can never be encoded is the result's failure, not the
// handler's: the task is dead-lettered as permanent after one run instead
// of running again through its retries.
func TestUnencodableResultIsPermanent(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("nan")
	def := task.DefineWithResult[Sum, float64]("nan_result")
	var runs atomic.Int32
	w := startRetryWorker(t, b, q, fast, def.Handler(func(context.Context, Sum) (float64, error) {
		runs.Add(1)
		return math.NaN(), nil
	}))
	if te := awaitFailure(t, b, q, def); te.Kind != outcome.ReasonPermanent || !strings.Contains(te.Message, "NaN") {
		t.Fatalf("Get: %v, want a permanent TaskError about NaN", te)
	}
	dl := deadLetters(t, b, q, 1)
	if r := dl[0].Headers[worker.HeaderReason]; r != string(outcome.ReasonPermanent) {
		t.Errorf("dead letter reason %v, want permanent", r)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs, want 1: an unencodable result was retried", n)
	}
	// The caller hears before the worker acks and counts.
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Dead == 1 }, "stats %+v", w.Stats())
	if s := w.Stats(); s.Retried != 0 {
		t.Errorf("stats %+v: retried", s)
	}
}

// A result over MaxResultBytes is not sent (the broker would refuse it):
// the caller gets a too_large failure, and the task, which succeeded, runs
// once.
func TestResultOverTheLimit(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("big-result")
	def := task.DefineWithResult[Sum, string]("big_result")
	var runs atomic.Int32
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, MaxResultBytes: 1024}, def.Handler(func(context.Context, Sum) (string, error) {
		runs.Add(1)
		return strings.Repeat("x", 4096), nil
	}))
	if te := awaitFailure(t, b, q, def); te.Kind != outcome.ReasonTooLarge || !strings.Contains(te.Message, "MaxResultBytes") {
		t.Fatalf("Get: %v, want a too_large TaskError naming the limit", te)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "stats %+v", w.Stats())
	if s := w.Stats(); runs.Load() != 1 || s.ResultsDropped != 1 || settled(s) != 1 {
		t.Errorf("%d runs, stats %+v: want one successful run and its result dropped", runs.Load(), s)
	}
}

// A reply queue that refuses every message (full, with reject-publish):
// the final result is nacked for good. That is the caller's loss; the task
// succeeded and must be acked, not requeued to run again and again.
func TestRefusedResultIsTheCallersLoss(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, reply := b.Queue("refused-result"), b.Queue("full-reply")
	if _, err := b.Channel().QueueDeclare(reply, false, false, false, false,
		amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	def := task.DefineWithResult[Sum, int]("refused_result")
	var runs atomic.Int32
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}}, def.Handler(func(_ context.Context, s Sum) (int, error) {
		runs.Add(1)
		return s.A + s.B, nil
	}))
	b.Publish("", q, amqp.Publishing{
		MessageId: "refused-1", ContentType: "application/json", ReplyTo: reply, CorrelationId: "refused-1",
		Headers: amqp.Table{"task": "refused_result", "id": "refused-1"}, Body: []byte(`{"A":2,"B":3}`),
	})
	warrentest.Eventually(t, 15*time.Second, func() bool { return w.Stats().Succeeded == 1 },
		"a task whose result the broker refuses never settled: %d runs, stats %+v", runs.Load(), w.Stats())
	if s := w.Stats(); runs.Load() != 1 || s.ResultsDropped != 1 || s.Requeued != 0 {
		t.Errorf("%d runs, stats %+v: want one run, its result dropped", runs.Load(), s)
	}
}

// vhost creates a virtual host of this test's own on the local broker (with
// rabbitmqctl), deleted at cleanup, and returns its URL: for a test that
// deletes warren's shared topology, such as the delay levels, which tests
// running in parallel use.
func vhost(t *testing.T) string {
	t.Helper()
	name := "warren-test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctl := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
	}
	ctl("add_vhost", name)
	t.Cleanup(func() { ctl("delete_vhost", name) })
	ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
	return strings.TrimSuffix(brokertest.URL(t), "/") + "/" + url.PathEscape(name)
}

// A retry copy that comes back unroutable because the delay levels were
// deleted under the worker: the worker declares its topology again and
// sends the copy once more, rather than requeueing the task for ever.
func TestRetryRedeclaresDeletedDelayLevels(t *testing.T) {
	t.Parallel()
	u := vhost(t)
	const q = "redeclare"
	def := task.Define[Job]("redeclare_delay")
	rec := newRecorder(errors.New("flaky"))
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: u}, Queues: []string{q}, Retry: fast}, def.Handler(rec.handle))
	ac, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ch, err := ac.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The producer declares the delay levels when it connects too: delete
	// after that. The first retry waits 1 s: level 0 holds it.
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: u}})
	warrentest.Eventually(t, 10*time.Second, p.Connected, "producer not connected")
	if _, err := ch.QueueDelete(routing.DelayLevelName(0), false, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 1 },
		"the retry never came back: %d runs, stats %+v", len(rec.snapshot()), w.Stats())
	if s := w.Stats(); s.Retried != 1 || s.Requeued != 0 {
		t.Errorf("stats %+v: want one retry, sent after the delay levels were declared again", s)
	}
}

// A queue whose name leaves no room for its delay routing key could never
// have a retry published: the worker refuses it at start, rather than
// requeueing each failed task of it for ever.
func TestQueueNameTooLongForItsRetries(t *testing.T) {
	reg := task.NewRegistry()
	_, err := worker.New(worker.Config{Queues: []string{strings.Repeat("q", routing.MaxQueueName+1)}, Registry: reg})
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("New with a %d-byte queue name: %v, want an error saying it is too long", routing.MaxQueueName+1, err)
	}
	if _, err := worker.New(worker.Config{Queues: []string{strings.Repeat("q", routing.MaxQueueName)}, Registry: reg}); err != nil {
		t.Fatalf("New with a %d-byte queue name: %v", routing.MaxQueueName, err)
	}
}

// A result over the limit whose FAILURE notice cannot be delivered either
// (the caller's reply queue is gone) is one dropped result, not two.
func TestOversizedResultForAGoneCallerCountsOnce(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("big-gone")
	def := task.DefineWithResult[Sum, string]("big_gone")
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, MaxResultBytes: 1024}, def.Handler(func(context.Context, Sum) (string, error) { return strings.Repeat("x", 4096), nil }))
	b.Publish("", q, amqp.Publishing{
		MessageId: "gone-1", ContentType: "application/json", ReplyTo: b.Queue("no-such-reply"), CorrelationId: "gone-1",
		Headers: amqp.Table{"task": "big_gone", "id": "gone-1"}, Body: []byte(`{}`),
	})
	warrentest.Eventually(t, 15*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "stats %+v", w.Stats())
	if s := w.Stats(); s.ResultsDropped != 1 {
		t.Errorf("stats %+v: want one dropped result", s)
	}
}
