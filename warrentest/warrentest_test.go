package warrentest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/celery"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

type Sum struct{ A, B int }

var (
	add  = task.DefineWithResult[Sum, int]("add")
	slow = task.Define[Sum]("slow", task.WithTimeout(50*time.Millisecond))
)

func TestWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("boom")
	var seen *task.Message
	flaky := SendEmail.Handler(func(ctx context.Context, e Email) error {
		seen, _ = task.FromContext(ctx)
		return boom
	})
	addH := add.Handler(func(_ context.Context, s Sum) (int, error) { return s.A + s.B, nil })
	var deadline time.Time
	slowH := slow.Handler(func(ctx context.Context, _ Sum) error {
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return ctx.Err()
	})

	v := warrentest.Work(ctx, t, flaky, SendEmail.New(Email{To: "a"}), warrentest.WithAttempt(2))
	if v.Outcome != outcome.Retry || v.Delay != 2*time.Minute || !errors.Is(v.Err, boom) || seen.Retries != 1 {
		t.Errorf("second attempt: %v, handler saw retries %d; want a retry after the doubled backoff, 2m", v, seen.Retries)
	}
	v = warrentest.Work(ctx, t, flaky, SendEmail.New(Email{To: "a"}), warrentest.WithJitter(0.5))
	if v.Outcome != outcome.Retry || v.Delay != 54*time.Second { // retry.DefaultPolicy's 20% jitter, half drawn
		t.Errorf("jittered: %v, want a retry after 54s", v)
	}
	v = warrentest.Work(ctx, t, flaky, SendEmail.New(Email{To: "a"}), warrentest.WithEnqueueOptions(producer.WithMaxAttempts(1), producer.WithID("id-7")))
	if v.Outcome != outcome.Dead || v.Reason != outcome.ReasonExhausted || seen.ID != "id-7" {
		t.Errorf("enqueued with one attempt: %v, id %q", v, seen.ID)
	}
	v = warrentest.Work(ctx, t, flaky, SendEmail.New(Email{}), warrentest.WithEnqueueOptions(producer.WithDeadline(time.Now().Add(-time.Second))))
	if v.Outcome != outcome.Expired || v.Reason != outcome.ReasonExpired {
		t.Errorf("expired: %v", v)
	}
	v = warrentest.Work(ctx, t, flaky, SendEmail.New(Email{}), warrentest.WithEnqueueOptions(producer.WithDelay(time.Hour)))
	if v.Outcome != outcome.Requeued || v.Delay < 59*time.Minute {
		t.Errorf("early: %v, want it held back for about an hour", v)
	}
	v = warrentest.Work(ctx, t, addH, add.New(Sum{2, 40}))
	if got, err := add.DecodeResult(v.Result); v.Outcome != outcome.Success || err != nil || got != 42 {
		t.Errorf("result: %v, %d (%v)", v, got, err)
	}
	start := time.Now()
	v = warrentest.Work(ctx, t, slowH, slow.New(Sum{}), warrentest.WithRetryPolicy(retry.Policy{MaxAttempts: 1}))
	if v.Outcome != outcome.Dead || !errors.Is(v.Err, context.DeadlineExceeded) || deadline.Sub(start) > 50*time.Millisecond+time.Second {
		t.Errorf("timed out: %v, deadline %v after the start", v, deadline.Sub(start))
	}
	v = warrentest.Work(ctx, t, flaky, add.New(Sum{}))
	if v.Outcome != outcome.Dead || v.Reason != outcome.ReasonUnknownTask {
		t.Errorf("a task the handler does not serve: %v", v)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if v = warrentest.Work(cancelled, t, slowH, slow.New(Sum{})); v.Outcome != outcome.Requeued {
		t.Errorf("run under a cancelled worker context: %v, want requeued", v)
	}
}

// What the producer sent reaches the recorder decoded, delayed tasks at
// once; tasks of another definition wait for their own call.
func TestRecord(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	q := b.Queue("rec")
	p := warrentest.NewProducer(t, producer.Config{
		Conn:     b.Conn(),
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}},
		Routes:   routing.NewTable().SetDefault(routing.ToQueue(q)),
	})
	rec := b.Record(t, q)
	rec.RequireEmpty(t)
	ctx := warrentest.Context(t, 10*time.Second)
	if _, err := producer.Enqueue(ctx, p, SendEmail, Email{To: "later"}, producer.WithDelay(90*time.Second), producer.WithPriority(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := producer.Enqueue(ctx, p, add.Def, Sum{1, 2}, producer.WithHeaders(map[string]any{"tenant": "acme"})); err != nil {
		t.Fatal(err)
	}
	id, err := producer.Enqueue(ctx, p, SendEmail, Email{To: "now"}, producer.WithExpiry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	first := warrentest.RequireEnqueued(t, rec, SendEmail)
	if first.Payload.To != "later" || first.Delay != 90*time.Second || first.Priority != 4 || first.ETA.IsZero() {
		t.Errorf("delayed: %+v delay %v priority %d eta %v", first.Payload, first.Delay, first.Priority, first.ETA)
	}
	second := warrentest.RequireEnqueued(t, rec, SendEmail)
	if second.Payload.To != "now" || second.Delay != 0 || second.ID != id || second.Expires.IsZero() {
		t.Errorf("immediate: %+v delay %v id %s expires %v", second.Payload, second.Delay, second.ID, second.Expires)
	}
	sum := warrentest.RequireEnqueued(t, rec, add.Def)
	if sum.Payload != (Sum{1, 2}) || sum.Headers["tenant"] != "acme" {
		t.Errorf("other task: %+v headers %v", sum.Payload, sum.Headers)
	}
	// A task in Celery's format decodes from its [args, kwargs, embed].
	celeryAdd := celery.Define[Sum]("tasks.add")
	if _, err := producer.Enqueue(ctx, p, celeryAdd, Sum{3, 4}); err != nil {
		t.Fatal(err)
	}
	if got := warrentest.RequireEnqueued(t, rec, celeryAdd); got.Payload != (Sum{3, 4}) || got.Headers["lang"] != "go" {
		t.Errorf("Celery task: %+v headers %v", got.Payload, got.Headers)
	}
	rec.RequireEmpty(t)
}

// failures records what a kit function failed with instead of failing the
// test, to check the kit's own failure messages.
type failures struct {
	testing.TB
	msgs []string
}

func (f *failures) Helper() {}
func (f *failures) Fatalf(format string, args ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func TestRequireEmptyNamesWhatArrived(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	q := b.Queue("left")
	p := warrentest.NewProducer(t, producer.Config{Conn: b.Conn(), Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}})
	rec := b.Record(t, q)
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, SendEmail, Email{}, producer.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	f := &failures{TB: t}
	rec.RequireEmpty(f)
	if len(f.msgs) != 1 || !strings.Contains(f.msgs[0], "send_email "+id) {
		t.Errorf("RequireEmpty failed with %q, want one failure naming send_email %s", f.msgs, id)
	}
}

// A Broker's names are the test's alone and gone when it ends, with the
// worker stopped first.
func TestCleanup(t *testing.T) {
	t.Parallel()
	var q string
	var w *worker.Worker
	ran := make(chan struct{}, 1)
	t.Run("inner", func(t *testing.T) {
		b := warrentest.NewBroker(t)
		q = b.Queue("gone")
		w = warrentest.StartWorker(t, worker.Config{Conn: b.Conn(), Queues: []string{q}},
			SendEmail.Handler(func(context.Context, Email) error { ran <- struct{}{}; return nil }))
		p := warrentest.NewProducer(t, producer.Config{Conn: b.Conn()})
		if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, SendEmail, Email{}, producer.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ran:
		case <-warrentest.Context(t, 10*time.Second).Done():
			t.Fatal("the worker never ran the task")
		}
	})
	raw := brokertest.New(t)
	for _, name := range []string{q, routing.DeadQueue(q)} {
		if n := raw.Ready(name); n != -1 {
			t.Errorf("queue %s still exists after its test ended (%d ready)", name, n)
		}
	}
	if w.Ready() {
		t.Error("the worker still runs after its test ended")
	}
}
