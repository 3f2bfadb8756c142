package result_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

type Sum struct{ A, B int }
type Total struct{ N int }

// startWorker starts the worker of these tests: many handlers, and retries
// a second apart.
func startWorker(t *testing.T, url, q string, hs ...task.Handler) *worker.Worker {
	t.Helper()
	return warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: url}, Queues: []string{q}, Concurrency: 16, Prefetch: 256,
		Retry: retry.Policy{MaxAttempts: 5, Backoff: retry.Backoff{Base: time.Second, Max: time.Second, Jitter: -1}}}, hs...)
}

// producerTo returns a producer that sends every task to q.
func producerTo(t *testing.T, url, q string) *producer.Producer {
	t.Helper()
	return warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: url}, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
}

var add = task.DefineWithResult[Sum, Total]("add")

func addHandler(ctx context.Context, s Sum) (Total, error) { return Total{s.A + s.B}, nil }

func TestResultRoundTrip(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("results")
	startWorker(t, b.URL, q, add.Handler(addHandler))
	p := producerTo(t, b.URL, q)
	h, err := producer.EnqueueResult(warrentest.Context(t, 10*time.Second), p, add, Sum{2, 40})
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.Get(warrentest.Context(t, 10*time.Second))
	if err != nil || got.N != 42 {
		t.Fatalf("Get = %+v, %v; want 42", got, err)
	}
	if h.State() != result.Success {
		t.Errorf("state %s, want SUCCESS", h.State())
	}
}

func TestFailuresCarryTextAndKind(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("fail")
	perm := task.DefineWithResult[Sum, Total]("perm")
	hopeless := task.DefineWithResult[Sum, Total]("hopeless", task.WithMaxAttempts(2), task.WithBackoff(time.Second, time.Second))
	late := task.DefineWithResult[Sum, Total]("late")
	startWorker(t, b.URL, q,
		perm.Handler(func(context.Context, Sum) (Total, error) {
			return Total{}, retry.Permanent(errors.New("no such account"))
		}),
		hopeless.Handler(func(context.Context, Sum) (Total, error) { return Total{}, errors.New("db down") }),
		late.Handler(addHandler))
	p := producerTo(t, b.URL, q)
	ctx := warrentest.Context(t, 20*time.Second)
	hp, err := producer.EnqueueResult(ctx, p, perm, Sum{})
	if err != nil {
		t.Fatal(err)
	}
	he, err := producer.EnqueueResult(ctx, p, hopeless, Sum{})
	if err != nil {
		t.Fatal(err)
	}
	hl, err := producer.EnqueueResult(ctx, p, late, Sum{}, producer.WithDeadline(time.Now().Add(-time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		h        *result.Handle[Total]
		kind     outcome.Reason
		text     string
		attempts int
	}{{hp, outcome.ReasonPermanent, "no such account", 0}, {he, outcome.ReasonExhausted, "db down", 1}, {hl, outcome.ReasonExpired, "expired", 0}} {
		_, err := c.h.Get(ctx)
		var te *result.TaskError
		if !errors.As(err, &te) {
			t.Errorf("Get: err = %v, want *TaskError", err)
			continue
		}
		if te.Kind != c.kind || !strings.Contains(te.Message, c.text) || te.Retries != c.attempts || te.ID != c.h.ID() {
			t.Errorf("TaskError %+v, want kind %s, text %q, retries %d", te, c.kind, c.text, c.attempts)
		}
		if c.kind == outcome.ReasonPermanent {
			if want := "task " + c.h.ID() + " failed (permanent): no such account"; te.Error() != want {
				t.Errorf("TaskError text %q, want %q", te.Error(), want)
			}
		}
		if c.h.State() != result.Failure {
			t.Errorf("state %s, want FAILURE", c.h.State())
		}
	}
}

func TestRetryThenSuccessIsSeen(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("states")
	flaky := task.DefineWithResult[Sum, Total]("flaky")
	startWorker(t, b.URL, q, flaky.Handler(func(ctx context.Context, s Sum) (Total, error) {
		if m, _ := task.FromContext(ctx); m.Retries < 2 {
			return Total{}, fmt.Errorf("attempt %d fails", m.Retries+1)
		}
		return Total{s.A}, nil
	}))
	p := producerTo(t, b.URL, q)
	h, err := producer.EnqueueResult(warrentest.Context(t, 10*time.Second), p, flaky, Sum{A: 7})
	if err != nil {
		t.Fatal(err)
	}
	var seen []result.State
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s := h.State()
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		if s.Final() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, err := h.Get(warrentest.Context(t, 5*time.Second))
	if err != nil || got.N != 7 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	ri, si := -1, -1
	for i, s := range seen {
		if s == result.Retry && ri < 0 {
			ri = i
		}
		if s == result.Success {
			si = i
		}
	}
	t.Logf("states seen: %v", seen)
	if ri < 0 || si < ri {
		t.Errorf("states seen %v: want RETRY, then SUCCESS", seen)
	}
}

// The reply queue is declared in the background; the first EnqueueResult
// of a producer must not publish before it exists, or the worker's updates
// come back unroutable and the result is dropped as nobody's. When it
// returns, the queue is there, on every fresh producer.
func TestFirstEnqueueResultFindsItsReplyQueue(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("first")
	b.DeclareQueue(q)
	for i := range 10 {
		p := producerTo(t, b.URL, q)
		if _, err := producer.EnqueueResult(warrentest.Context(t, 10*time.Second), p, add, Sum{i, 1}); err != nil {
			t.Fatal(err)
		}
		d, ok := b.Get(q)
		if !ok {
			t.Fatalf("producer %d: task not in %s", i, q)
		}
		reply := d.ReplyTo
		b.Track(reply)
		ch := b.Channel()
		if _, err := ch.QueueDeclarePassive(reply, true, false, false, false, nil); err != nil {
			t.Fatalf("producer %d: reply queue %s missing after its first EnqueueResult returned: %v", i, reply, err)
		}
	}
}

func TestGetHonoursItsContext(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("slow")
	slow := task.DefineWithResult[Sum, Total]("slow")
	release := make(chan struct{})
	startWorker(t, b.URL, q, slow.Handler(func(ctx context.Context, s Sum) (Total, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Total{1}, nil
	}))
	defer close(release)
	p := producerTo(t, b.URL, q)
	h, err := producer.EnqueueResult(warrentest.Context(t, 10*time.Second), p, slow, Sum{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = h.Get(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 2*time.Second {
		t.Errorf("Get = %v after %v, want a deadline error after ~200ms", err, time.Since(t0))
	}
	warrentest.Eventually(t, 5*time.Second, func() bool { return h.State() == result.Started }, "state %s, want STARTED while running", h.State())
}

// A caller that gives up can Forget a handle: Get says so, and the result
// that arrives later is dropped rather than kept for a waiter that is gone.
func TestForgetStopsFollowing(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("forget")
	def := task.DefineWithResult[Sum, Total]("forget")
	release := make(chan struct{})
	w := startWorker(t, b.URL, q, def.Handler(func(ctx context.Context, s Sum) (Total, error) {
		if s.A == 0 {
			<-release
		}
		return Total{s.A + 7}, nil
	}))
	p := producerTo(t, b.URL, q)
	ctx := warrentest.Context(t, 20*time.Second)
	h, err := producer.EnqueueResult(ctx, p, def, Sum{})
	if err != nil {
		t.Fatal(err)
	}
	h.Forget()
	close(release)
	// The worker counts the success once the broker has confirmed its
	// result in the reply queue.
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "the task never succeeded")
	// The reply queue hands updates to the one consumer in order: when a
	// later task's result has arrived, the forgotten one's has been handled.
	later, err := producer.EnqueueResult(ctx, p, def, Sum{A: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := later.Get(ctx); err != nil || got.N != 8 {
		t.Fatalf("later task: Get = %+v, %v", got, err)
	}
	if _, err := h.Get(ctx); !errors.Is(err, result.ErrForgotten) {
		t.Errorf("Get after Forget = %v, want ErrForgotten", err)
	}
	if st := h.State(); st != result.Pending && st != result.Started {
		t.Errorf("state %s after Forget, want the final update dropped", st)
	}
}

func TestTenThousandConcurrentAwaits(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("many")
	startWorker(t, b.URL, q, add.Handler(addHandler))
	p := producerTo(t, b.URL, q)
	const n = 10000
	ctx := warrentest.Context(t, 2*time.Minute)
	handles := make([]*result.Handle[Total], n)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 100 {
				h, err := producer.EnqueueResult(ctx, p, add, Sum{i, 1})
				if err != nil {
					failed.Add(1)
					return
				}
				handles[i] = h
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d enqueues failed", failed.Load())
	}
	var wrong atomic.Int32
	for i := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := handles[i].Get(ctx)
			if err != nil || got.N != i+1 {
				wrong.Add(1)
			}
		}()
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Errorf("%d of %d awaits returned a wrong value or an error", wrong.Load(), n)
	}
}

// The producer's path to the broker is cut while results are in flight:
// each Get returns its value (the updates waited in the reply queue) or an
// error, and none hangs.
func TestReplyPathSurvivesACut(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("cut")
	gate := make(chan struct{})
	gated := task.DefineWithResult[Sum, Total]("gated")
	var started atomic.Int32
	w := startWorker(t, b.URL, q, gated.Handler(func(ctx context.Context, s Sum) (Total, error) {
		started.Add(1)
		<-gate
		return Total{s.A * 2}, nil
	}))
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	p := producerTo(t, brokertest.WithHost(b.URL, px.Addr()), q)
	ctx := warrentest.Context(t, 60*time.Second)
	var hs []*result.Handle[Total]
	for i := 0; i < 10; i++ {
		h, err := producer.EnqueueResult(ctx, p, gated, Sum{A: i})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return started.Load() == 10 }, "tasks not started")
	px.SetRefuse(true)
	px.Cut()
	warrentest.Eventually(t, 10*time.Second, func() bool { return !p.Connected() }, "the producer did not notice the cut")
	close(gate)
	// Every result is confirmed in the reply queue while the producer is
	// disconnected (the worker has its own connection).
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 10 }, "results not all published during the cut")
	px.SetRefuse(false)
	arrived := 0
	for i, h := range hs {
		got, err := h.Get(ctx)
		switch {
		case err == nil && got.N == 2*i:
			arrived++
		case err == nil:
			t.Errorf("task %d: wrong value %d", i, got.N)
		case errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("task %d: Get hung until the test's deadline", i)
		default:
			t.Logf("task %d: %v", i, err)
		}
	}
	t.Logf("%d of 10 results arrived after the cut", arrived)
	if arrived != 10 {
		t.Errorf("%d of 10 arrived; the reply queue should have kept them across the cut", arrived)
	}
}

// A backend made by the caller serves several producers, and closing one
// of them leaves it to the others: it is the caller's to close.
func TestSharedAMQPBackend(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("shared")
	startWorker(t, b.URL, q, add.Handler(addHandler))
	backend, err := result.NewAMQP(conn.Config{URL: b.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	open := func() *producer.Producer {
		return warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Results: backend, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	}
	sum := func(p *producer.Producer, s Sum) {
		t.Helper()
		h, err := producer.EnqueueResult(warrentest.Context(t, 10*time.Second), p, add, s)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := h.Get(warrentest.Context(t, 10*time.Second)); err != nil || got.N != s.A+s.B {
			t.Fatalf("Get = %+v, %v; want %d", got, err, s.A+s.B)
		}
	}
	first, second := open(), open()
	sum(first, Sum{1, 1})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	sum(second, Sum{2, 3}) // after the first producer closed
	if err := backend.Close(); err != nil {
		t.Fatal(err)
	}
	late := backend.Subscribe("late")
	select {
	case <-late.Done():
	default:
		t.Error("a subscription after Close is still open, want it lost")
	}
}
