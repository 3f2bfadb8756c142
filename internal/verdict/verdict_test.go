package verdict

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/task"
)

type job struct{ N int }

// counts records what an Observer heard.
type counts struct {
	skipped, started, ran int
}

func (c *counts) Skipped()              { c.skipped++ }
func (c *counts) Started(time.Duration) { c.started++ }
func (c *counts) Ran(time.Duration)     { c.ran++ }

func TestDecide(t *testing.T) {
	boom := errors.New("boom")
	plain := task.Define[job]("plain")
	capped := task.Define[job]("capped", task.WithMaxAttempts(2), task.WithBackoff(3*time.Second, time.Minute))
	dropped := task.Define[job]("dropped", task.WithDropExpired())
	slow := task.Define[job]("slow", task.WithTimeout(20*time.Millisecond))
	unencodable := task.DefineWithResult[job, func()]("unencodable")
	var fail error
	reg := task.NewRegistry()
	reg.MustRegister(
		plain.Handler(func(context.Context, job) error { return fail }),
		capped.Handler(func(context.Context, job) error { return fail }),
		dropped.Handler(func(context.Context, job) error { return nil }),
		slow.Handler(func(ctx context.Context, _ job) error { <-ctx.Done(); return ctx.Err() }),
		unencodable.Handler(func(context.Context, job) (func(), error) { return func() {}, nil }),
	)
	j := Judge{Registry: reg, Retry: retry.Policy{MaxAttempts: 4, Backoff: retry.Backoff{Base: 10 * time.Second}}, Rand: func() float64 { return 0 }}
	msg := func(name string, retries int) *task.Message {
		return &task.Message{ID: "id", Task: name, ContentType: task.ContentTypeJSON, Body: []byte(`{"N":1}`), Retries: retries}
	}
	tests := []struct {
		name    string
		m       *task.Message
		fail    error
		act     Action
		reason  outcome.Reason
		delay   time.Duration
		skipped bool
	}{
		{"success", msg("plain", 0), nil, Ack, "", 0, false},
		{"first failure retries after the worker's base", msg("plain", 0), boom, Retry, "", 10 * time.Second, false},
		{"second failure doubles it", msg("plain", 1), boom, Retry, "", 20 * time.Second, false},
		{"the last attempt is exhausted", msg("plain", 3), boom, Dead, outcome.ReasonExhausted, 0, false},
		{"permanent never retries", msg("plain", 0), retry.Permanent(boom), Dead, outcome.ReasonPermanent, 0, false},
		{"After sets the delay", msg("plain", 0), retry.After(90*time.Second, boom), Retry, "", 90 * time.Second, false},
		{"the task's settings beat the worker's", msg("capped", 0), boom, Retry, "", 3 * time.Second, false},
		{"the task's max attempts", msg("capped", 1), boom, Dead, outcome.ReasonExhausted, 0, false},
		{"the enqueue's max attempts beat the task's", func() *task.Message { m := msg("capped", 0); m.MaxAttempts = 1; return m }(), boom, Dead, outcome.ReasonExhausted, 0, false},
		{"unknown task", msg("nobody", 0), nil, Dead, outcome.ReasonUnknownTask, 0, false},
		{"undecodable", func() *task.Message { m := msg("plain", 0); m.Body = []byte("{"); return m }(), nil, Dead, outcome.ReasonUndecodable, 0, false},
		{"a result that cannot be encoded", msg("unencodable", 0), nil, Dead, outcome.ReasonPermanent, 0, false},
		{"expired", func() *task.Message { m := msg("plain", 0); m.Expires = time.Now().Add(-time.Minute); return m }(), nil, Dead, outcome.ReasonExpired, 0, true},
		{"expired and dropped", func() *task.Message { m := msg("dropped", 0); m.Expires = time.Now().Add(-time.Minute); return m }(), nil, Drop, outcome.ReasonExpired, 0, true},
		{"early for its eta", func() *task.Message { m := msg("plain", 0); m.ETA = time.Now().Add(time.Hour); return m }(), nil, Defer, "", time.Hour, true},
		{"timed out", msg("slow", 0), nil, Retry, "", 10 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fail = tc.fail
			var c counts
			v := j.Decide(context.Background(), tc.m, time.Time{}, &c)
			if v.Act != tc.act || v.Reason != tc.reason {
				t.Fatalf("verdict %v %q (%v), want %v %q", v.Act, v.Reason, v.Cause, tc.act, tc.reason)
			}
			if tc.act == Defer && (v.Delay <= tc.delay-time.Second || v.Delay > tc.delay) {
				t.Errorf("deferred %v, want about %v", v.Delay, tc.delay)
			} else if tc.act != Defer && v.Delay != tc.delay {
				t.Errorf("delay %v, want %v", v.Delay, tc.delay)
			}
			if tc.skipped != (c.skipped == 1) || c.skipped+c.started != 1 || c.ran != c.started {
				t.Errorf("observer heard %+v", c)
			}
		})
	}
}

// A run cancelled by hard shutdown is requeued, not judged a failure.
func TestDecideInterrupted(t *testing.T) {
	def := task.Define[job]("waits")
	reg := task.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	reg.MustRegister(def.Handler(func(ctx context.Context, _ job) error { cancel(); <-ctx.Done(); return ctx.Err() }))
	j := Judge{Registry: reg}
	v := j.Decide(ctx, &task.Message{Task: "waits", ContentType: task.ContentTypeJSON, Body: []byte(`{}`)}, time.Time{}, &counts{})
	if v.Act != Requeue || !v.Interrupted || v.Outcome() != outcome.Requeued {
		t.Errorf("verdict %+v, want an interrupted requeue", v)
	}
}

func TestTimeoutErrorSaysWhy(t *testing.T) {
	cut := timeoutError(2700*time.Millisecond, true, context.DeadlineExceeded)
	if !strings.Contains(cut.Error(), "consumer_timeout") || !errors.Is(cut, context.DeadlineExceeded) {
		t.Errorf("cut run error %q", cut)
	}
	own := timeoutError(time.Minute, false, context.DeadlineExceeded)
	if own.Error() != "timed out after 1m0s: context deadline exceeded" {
		t.Errorf("task timeout error %q", own)
	}
}
