package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// run records one handler run.
type runRec struct {
	at      time.Time
	retries int
	headers map[string]any
}

// recorder is a handler whose result for run i (0-based) is results[i]
// (nil past the end), and which records every run.
type recorder struct {
	mu      sync.Mutex
	runs    []runRec
	results []error
	panicAt int // run index that panics; -1 for none
}

func newRecorder(results ...error) *recorder { return &recorder{results: results, panicAt: -1} }

func (r *recorder) handle(ctx context.Context, j Job) error {
	m, _ := task.FromContext(ctx)
	r.mu.Lock()
	i := len(r.runs)
	r.runs = append(r.runs, runRec{at: time.Now(), retries: m.Retries, headers: m.Headers})
	r.mu.Unlock()
	if i == r.panicAt {
		panic("handler bug")
	}
	if i < len(r.results) {
		return r.results[i]
	}
	return nil
}

func (r *recorder) snapshot() []runRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runRec(nil), r.runs...)
}

// fast is a policy with whole-second, jitter-free delays for tests.
var fast = retry.Policy{MaxAttempts: 5, Backoff: retry.Backoff{Base: time.Second, Max: 4 * time.Second, Jitter: -1}}

func startRetryWorker(t *testing.T, b *brokertest.Broker, q string, policy retry.Policy, hs ...task.Handler) *worker.Worker {
	t.Helper()
	return warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Retry: policy}, hs...)
}

func gapsOf(runs []runRec) []time.Duration {
	var gaps []time.Duration
	for i := 1; i < len(runs); i++ {
		gaps = append(gaps, runs[i].at.Sub(runs[i-1].at))
	}
	return gaps
}

// within reports whether got is in [want, want+1s]: the delay levels have
// one-second resolution and never deliver early.
func within(got, want time.Duration) bool {
	return got >= want-50*time.Millisecond && got <= want+time.Second+200*time.Millisecond
}

func TestRetryTwiceThenSucceed(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("retry")
	def := task.Define[Job]("flaky")
	rec := newRecorder(errors.New("db down"), errors.New("db still down"))
	w := startRetryWorker(t, b, q, fast, def.Handler(rec.handle))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: 1}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "never succeeded: %+v", w.Stats())
	runs := rec.snapshot()
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runs))
	}
	gaps := gapsOf(runs)
	t.Logf("gaps between runs: %v (policy: 1s, 2s)", gaps)
	if !within(gaps[0], time.Second) || !within(gaps[1], 2*time.Second) {
		t.Errorf("gaps %v, want about 1s then 2s", gaps)
	}
	for i, r := range runs {
		if r.retries != i {
			t.Errorf("run %d saw retries=%d", i, r.retries)
		}
	}
	if fe := runs[2].headers[worker.HeaderFirstError]; fe != "db down" {
		t.Errorf("first-error header %v, want the first failure's text", fe)
	}
	if s := w.Stats(); s.Retried != 2 || s.Dead != 0 {
		t.Errorf("stats %+v: want 2 retried", s)
	}
}

// An expected retry logs at Info, so that a logger attaching stack traces
// to warnings (zap.NewDevelopment's policy) prints none for it, and its
// delay is a duration, not a bare number.
func TestRetryLogsAtInfoWithoutStack(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("retrylog")
	def := task.Define[Job]("flaky_logged")
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core, zap.AddStacktrace(zapcore.WarnLevel))
	rec := newRecorder(errors.New("db down"))
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL, Logger: log}, Queues: []string{q}, Retry: fast}, def.Handler(rec.handle))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: 1}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "never succeeded: %+v", w.Stats())
	retries := logs.FilterMessage("task failed; retry scheduled").AllUntimed()
	if len(retries) != 1 {
		t.Fatalf("%d retry lines, want 1; all lines: %v", len(retries), logs.AllUntimed())
	}
	if e := retries[0]; e.Level != zapcore.InfoLevel || e.Stack != "" {
		t.Errorf("retry logged at %s with stack %q, want info and no stack", e.Level, e.Stack)
	}
	if d, ok := retries[0].ContextMap()["delay"].(time.Duration); !ok || d != time.Second {
		t.Errorf("delay field %#v, want the time.Duration 1s", retries[0].ContextMap()["delay"])
	}
	for _, e := range logs.AllUntimed() {
		if e.Level >= zapcore.WarnLevel {
			t.Errorf("a retry then a success logged %s %q", e.Level, e.Message)
		}
	}
}

func deadLetters(t *testing.T, b *brokertest.Broker, q string, n int) []amqp.Delivery {
	t.Helper()
	dq := routing.DeadQueue(q)
	warrentest.Eventually(t, 30*time.Second, func() bool { return b.Ready(dq) >= n }, "dead letters in %s: %d, want %d", dq, b.Ready(dq), n)
	var out []amqp.Delivery
	for {
		d, ok := b.Get(dq)
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func TestExhaustedEndsInDeadLetters(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("exhaust")
	def := task.Define[Job]("hopeless", task.WithMaxAttempts(3), task.WithBackoff(time.Second, time.Second))
	rec := newRecorder(errors.New("fail 1"), errors.New("fail 2"), errors.New("fail 3"), errors.New("never reached"))
	w := startRetryWorker(t, b, q, retry.Policy{}, def.Handler(rec.handle))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: 1}, producer.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	dead := deadLetters(t, b, q, 1)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	h := dead[0].Headers
	checks := map[string]any{
		worker.HeaderReason: "exhausted", worker.HeaderAttempts: int64(3), worker.HeaderError: "fail 3",
		worker.HeaderFirstError: "fail 1", worker.HeaderQueue: q, "retries": int64(2), "id": id,
	}
	for k, want := range checks {
		if h[k] != want {
			t.Errorf("dead letter header %s = %v, want %v", k, h[k], want)
		}
	}
	for k := range h {
		if task.IsBrokerHeader(k) {
			t.Errorf("dead letter kept broker header %s", k)
		}
	}
	if n := len(rec.snapshot()); n != 3 {
		t.Errorf("%d runs, want 3 (MaxAttempts)", n)
	}
	// The counter moves after the dead letter's confirm, so it may trail it.
	warrentest.Eventually(t, 5*time.Second, func() bool { return w.Stats().Dead == 1 }, "dead letter never counted: %+v", w.Stats())
	if s := w.Stats(); s.Retried != 2 || s.Dead != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestPermanentErrorSkipsRetries(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("perm")
	def := task.Define[Job]("perm")
	rec := newRecorder(retry.Permanent(errors.New("no such user")))
	startRetryWorker(t, b, q, fast, def.Handler(rec.handle))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	dead := deadLetters(t, b, q, 1)
	if r := dead[0].Headers[worker.HeaderReason]; r != "permanent" {
		t.Errorf("reason %v, want permanent", r)
	}
	if n := len(rec.snapshot()); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("after")
	def := task.Define[Job]("ratelimited")
	rec := newRecorder(retry.After(3*time.Second, errors.New("429")))
	w := startRetryWorker(t, b, q, fast, def.Handler(rec.handle))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "stats %+v", w.Stats())
	gaps := gapsOf(rec.snapshot())
	if len(gaps) != 1 || !within(gaps[0], 3*time.Second) {
		t.Errorf("gaps %v, want one of about 3s (After overrides the 1s backoff)", gaps)
	}
}

func TestPanicAndTimeoutAreOrdinaryFailures(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("panic")
	panicky := task.Define[Job]("panicky")
	rec := newRecorder()
	rec.panicAt = 0
	slow := task.Define[Job]("slow_to", task.WithTimeout(200*time.Millisecond), task.WithMaxAttempts(2), task.WithBackoff(time.Second, time.Second))
	var slowRuns sync.WaitGroup
	slowRuns.Add(2)
	w := startRetryWorker(t, b, q, fast, panicky.Handler(rec.handle), slow.Handler(func(ctx context.Context, j Job) error {
		defer slowRuns.Done()
		<-ctx.Done() // honours its deadline
		return ctx.Err()
	}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, panicky, Job{}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, slow, Job{}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	// The panic is retried, and the second run succeeds; the worker lives on.
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "stats %+v", w.Stats())
	dead := deadLetters(t, b, q, 1)
	h := dead[0].Headers
	if h[worker.HeaderReason] != "exhausted" || !strings.Contains(fmt.Sprint(h[worker.HeaderError]), "timed out after 200ms") {
		t.Errorf("timed-out task: reason %v error %v", h[worker.HeaderReason], h[worker.HeaderError])
	}
	if fe := fmt.Sprint(rec.snapshot()[1].headers[worker.HeaderFirstError]); !strings.Contains(fe, "handler panicked: handler bug") {
		t.Errorf("first-error after a panic: %q", fe)
	}
}

func TestExpiredTasksAreNotRun(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("expire")
	keep := task.Define[Job]("keep_expired")
	drop := task.Define[Job]("drop_expired", task.WithDropExpired())
	rec := newRecorder()
	w := startRetryWorker(t, b, q, fast, keep.Handler(rec.handle), drop.Handler(rec.handle))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	ctx := warrentest.Context(t, 10*time.Second)
	past := producer.WithDeadline(time.Now().Add(-time.Minute))
	if _, err := producer.Enqueue(ctx, p, keep, Job{N: 1}, producer.WithQueue(q), past); err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Enqueue(ctx, p, drop, Job{N: 2}, producer.WithQueue(q), past); err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Enqueue(ctx, p, keep, Job{N: 3}, producer.WithQueue(q), producer.WithExpiry(time.Hour)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { s := w.Stats(); return s.Expired == 2 && s.Succeeded == 1 }, "stats %+v", w.Stats())
	dead := deadLetters(t, b, q, 1)
	if len(dead) != 1 || dead[0].Headers[worker.HeaderReason] != "expired" {
		t.Fatalf("dead letters %d, reason %v; want one expired (the other is dropped)", len(dead), dead[0].Headers[worker.HeaderReason])
	}
	if runs := rec.snapshot(); len(runs) != 1 {
		t.Errorf("%d runs, want 1 (only the unexpired task)", len(runs))
	}
}

func TestETA(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("eta")
	def := task.Define[Job]("eta")
	got := make(chan time.Time, 4)
	startRetryWorker(t, b, q, fast, def.Handler(func(ctx context.Context, j Job) error { got <- time.Now(); return nil }))
	// A plain producer sets eta itself, without the delay levels: a past
	// one runs at once, a future one is held back until due.
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	b.Publish("", q, amqp.Publishing{Headers: amqp.Table{"task": "eta", "eta": past}, ContentType: "application/json", Body: []byte(`{}`)})
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("a task with a past eta did not run at once")
	}
	due := time.Now().Add(3 * time.Second)
	b.Publish("", q, amqp.Publishing{Headers: amqp.Table{"task": "eta", "eta": due.UTC().Format(time.RFC3339Nano)}, ContentType: "application/json", Body: []byte(`{}`)})
	select {
	case at := <-got:
		if early := due.Sub(at); early > 50*time.Millisecond {
			t.Errorf("ran %v before its eta", early)
		} else if late := at.Sub(due); late > 2*time.Second {
			t.Errorf("ran %v after its eta", late)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a task with a future eta never ran")
	}
}
