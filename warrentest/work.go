package warrentest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/verdict"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/task"
)

// Verdict is how a worker would settle one run of a task: the outcome it
// would count and what it would do next.
type Verdict struct {
	// Outcome: Success, Retry, Dead, Expired, or Requeued (hard shutdown
	// cancelled the run, or the task is early for its eta).
	Outcome outcome.Outcome
	// Delay: for Retry, the wait before the next attempt; for an early
	// task, the wait until its eta.
	Delay time.Duration
	// Reason says why a Dead or Expired task will not run again.
	Reason outcome.Reason
	// Err is the run's failure, or why the task did not run; nil after a
	// success.
	Err error
	// Result is a successful ResultDef handler's result, JSON as a caller
	// receives it: decode it with the definition's DecodeResult.
	Result []byte
}

// String says the verdict in a few words, for failure messages.
func (v Verdict) String() string {
	switch {
	case v.Outcome == outcome.Retry:
		return fmt.Sprintf("retry after %v: %v", v.Delay, v.Err)
	case v.Reason != "":
		return fmt.Sprintf("%s (%s): %v", v.Outcome, v.Reason, v.Err)
	case v.Err != nil:
		return fmt.Sprintf("%s: %v", v.Outcome, v.Err)
	case v.Delay > 0:
		return fmt.Sprintf("%s for %v", v.Outcome, v.Delay)
	}
	return string(v.Outcome)
}

// WorkOption changes one Work call.
type WorkOption func(*work)

type work struct {
	attempt int
	policy  retry.Policy
	enqueue []producer.Option
	jitter  float64
	codecs  []task.Codec
}

// WithAttempt makes the run attempt n (1, the default, is the first run),
// as if n-1 runs had failed before: the handler sees Retries = n-1 in its
// message, and the retry policy counts from there.
func WithAttempt(n int) WorkOption { return func(w *work) { w.attempt = n } }

// WithRetryPolicy is the worker's default policy, worker.Config.Retry, for
// tasks whose definition sets none. Defaults to retry.DefaultPolicy.
func WithRetryPolicy(p retry.Policy) WorkOption { return func(w *work) { w.policy = p } }

// WithEnqueueOptions runs the task as enqueued with opts (an expiry, an
// eta, a max-attempts override, headers, an id).
func WithEnqueueOptions(opts ...producer.Option) WorkOption {
	return func(w *work) { w.enqueue = append(w.enqueue, opts...) }
}

// WithJitter sets the value in [0, 1) that drives the retry policy's
// jitter. Defaults to 0: the policy's full delay, so that a test can
// compare it; a worker draws it at random and waits up to Jitter less.
func WithJitter(r float64) WorkOption { return func(w *work) { w.jitter = r } }

// WithCodecs lets the run decode payloads of content types other than
// JSON, as a worker whose registry has these codecs does.
func WithCodecs(cs ...task.Codec) WorkOption {
	return func(w *work) { w.codecs = append(w.codecs, cs...) }
}

// Work runs h on tk as a worker would, with no broker, and returns the
// verdict the worker would reach: the handler gets the context a worker
// gives it (the task's timeout as its deadline, the message in
// task.FromContext), and its error is judged by the same code the worker
// uses: the retry policy merged from the worker's default, the task's
// definition and the enqueue's options, retry.Permanent and retry.After,
// expiry and eta. ctx stands for the worker's shutdown: a run it cancels is
// Requeued. t fails if tk cannot be encoded.
//
//	v := warrentest.Work(ctx, t, SendEmail.Handler(send), SendEmail.New(Email{To: "x"}), warrentest.WithAttempt(5))
//	if v.Outcome != outcome.Dead || v.Reason != outcome.ReasonExhausted { t.Errorf("got %v", v) }
func Work(ctx context.Context, t testing.TB, h task.Handler, tk task.Task, opts ...WorkOption) Verdict {
	t.Helper()
	w := work{attempt: 1}
	for _, o := range opts {
		o(&w)
	}
	sent, err := producer.NewMessage(tk, w.enqueue...)
	if err != nil {
		t.Fatalf("warrentest: %v", err)
	}
	// The message as a worker reads it back from the wire, with the
	// attempts made so far.
	m := &task.Message{ID: sent.ID, ContentType: sent.ContentType, Body: sent.Body, Timestamp: sent.Timestamp,
		Priority: sent.Priority, ReplyTo: sent.ReplyTo}
	headers := make(map[string]any, len(sent.Headers)+1)
	for k, v := range sent.Headers {
		headers[k] = v
	}
	if w.attempt > 1 {
		headers[task.HeaderRetries] = int64(w.attempt - 1)
	}
	if err := m.ParseHeaders(headers); err != nil {
		t.Fatalf("warrentest: %v", err)
	}
	reg := task.NewRegistry()
	for _, c := range w.codecs {
		reg.AddCodec(c)
	}
	if err := reg.Register(h); err != nil {
		t.Fatalf("warrentest: %v", err)
	}
	j := verdict.Judge{Registry: reg, Retry: w.policy, Rand: func() float64 { return w.jitter }}
	v := j.Decide(ctx, m, time.Now(), unobserved{})
	return Verdict{Outcome: v.Outcome(), Delay: v.Delay, Reason: v.Reason, Err: v.Cause, Result: v.Result}
}

// unobserved is a run nobody counts.
type unobserved struct{}

func (unobserved) Skipped()              {}
func (unobserved) Started(time.Duration) {}
func (unobserved) Ran(time.Duration)     {}
