// Package verdict decides how one run of a task ends: whether it may run
// now, the deadline its handler gets, and, from what the handler returned,
// success, retry after a delay, dead with a reason, drop or requeue. It
// needs no broker, so that the worker (which settles the verdict on the
// broker) and warrentest (which reports it to a test) share one decision
// rather than two that drift apart. Step 5 of a task's trip in
// docs/architecture.md.
package verdict

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/task"
)

// Action is what settling a delivery does.
type Action int

// The actions a verdict can ask for.
const (
	Ack     Action = iota // success: send the result, ack
	Retry                 // publish a copy for the next attempt after Delay, ack
	Defer                 // early for its eta: publish the same attempt to come back after Delay, ack
	Dead                  // publish to <queue>.dead with Reason, tell the caller, ack
	Drop                  // expired, dropped by its definition: tell the caller, ack
	Requeue               // give it back to the queue now, unfinished
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case Ack:
		return "success"
	case Retry:
		return "retry"
	case Defer:
		return "defer to its eta"
	case Dead:
		return "dead-letter"
	case Drop:
		return "drop"
	}
	return "requeue"
}

// Verdict is how a delivery should be settled.
type Verdict struct {
	Act         Action
	Reason      outcome.Reason // Dead, Drop
	Delay       time.Duration  // Retry, Defer
	Cause       error          // why it failed or will not run; nil for a success
	Result      []byte         // Ack: the encoded result, for a caller that awaits it
	Interrupted bool           // Requeue: hard shutdown cancelled the run
}

// DeadFor is the verdict on a task that will not run again for reason r.
func DeadFor(r outcome.Reason, cause error) Verdict {
	return Verdict{Act: Dead, Reason: r, Cause: cause}
}

// Outcome is the outcome of a delivery settled as v says.
func (v Verdict) Outcome() outcome.Outcome {
	switch v.Act {
	case Ack:
		return outcome.Success
	case Retry:
		return outcome.Retry
	case Dead:
		return v.Reason.Outcome()
	case Drop:
		return outcome.Expired
	}
	return outcome.Requeued
}

// Observer hears the steps of one run, for metrics and logs. Exactly one
// of Skipped and Started is called.
type Observer interface {
	// Skipped: the task does not run now (expired or early).
	Skipped()
	// Started: the handler is about to run; wait is how long the task
	// waited for it since its enqueue or due time, negative if unknown.
	Started(wait time.Duration)
	// Ran: the handler returned after took.
	Ran(took time.Duration)
}

// Judge decides verdicts for one worker's settings. Its zero value but for
// Registry judges as a worker with default settings does.
type Judge struct {
	// Registry runs the handlers.
	Registry *task.Registry
	// Retry is the policy of tasks that set none (worker.Config.Retry).
	Retry retry.Policy
	// Limit returns how long one run of a task with timeout taskTimeout
	// (0: none) may take (0: no limit), and whether the broker's
	// consumer_timeout set it. Nil: the task's own timeout.
	Limit func(taskTimeout time.Duration) (limit time.Duration, byConsumerTimeout bool)
	// Rand drives the retry policy's jitter, in [0, 1). Nil: rand.Float64.
	Rand func() float64
}

// Decide runs m, unless it cannot or should not run now, and says how its
// delivery should be settled. ctx is cancelled on hard shutdown only; the
// run gets its own deadline. received is when the worker took the
// delivery (zero if unknown): the broker's consumer_timeout runs from it.
func (j *Judge) Decide(ctx context.Context, m *task.Message, received time.Time, o Observer) Verdict {
	settings := j.Registry.Settings(m.Task)
	now := time.Now()
	if !m.Expires.IsZero() && now.After(m.Expires) {
		o.Skipped()
		cause := fmt.Errorf("expired at %s", m.Expires.UTC().Format(time.RFC3339))
		if settings.DropExpired {
			return Verdict{Act: Drop, Reason: outcome.ReasonExpired, Cause: cause}
		}
		return DeadFor(outcome.ReasonExpired, cause)
	}
	if early := m.ETA.Sub(now); early >= time.Second {
		// Arrived before its ETA (a plain producer that set eta, or clock
		// skew): hold it in the delay levels for the rest, unrun.
		o.Skipped()
		return Verdict{Act: Defer, Delay: early}
	}

	rctx := ctx
	timeout := settings.Timeout
	if m.TimeLimit > 0 {
		timeout = m.TimeLimit // the message's own (Celery's timelimit) wins, as in Celery
	}
	limit, byConsumerTimeout := timeout, false
	if j.Limit != nil {
		limit, byConsumerTimeout = j.Limit(timeout)
	}
	if limit > 0 {
		// The broker's clock runs from delivery, not from the handler's
		// start: time spent waiting for a free handler counts against it.
		deadline := time.Now().Add(limit)
		if byConsumerTimeout && !received.IsZero() {
			deadline = received.Add(limit)
		}
		var cancel context.CancelFunc
		rctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	o.Started(waitOf(m, now))
	start := time.Now()
	res, err := j.Registry.DispatchResult(rctx, m)
	o.Ran(time.Since(start))
	var re *task.ResultError
	switch {
	case err == nil:
		return Verdict{Act: Ack, Result: res}
	case ctx.Err() != nil:
		// Hard shutdown cancelled the handler: the task did not finish, so
		// it goes back for another worker rather than to the dead letters.
		return Verdict{Act: Requeue, Cause: err, Interrupted: true}
	case errors.Is(err, task.ErrUnknownTask), errors.Is(err, task.ErrNoTaskName), isDecode(err):
		return DeadFor(task.Reason(err), err)
	case errors.As(err, &re):
		// The handler succeeded; another run would redo its work and fail
		// to encode again.
		return DeadFor(outcome.ReasonPermanent, err)
	}
	return j.Failed(m, err, limit, byConsumerTimeout && errors.Is(err, context.DeadlineExceeded) && rctx.Err() != nil)
}

// Failed is the verdict on a run of m that failed with err: the retry
// policy decides between another attempt and the dead letters. limit is
// the run's time limit (0: none); cut says the run was cut before the
// broker's consumer_timeout.
func (j *Judge) Failed(m *task.Message, err error, limit time.Duration, cut bool) Verdict {
	if errors.Is(err, context.DeadlineExceeded) && limit > 0 {
		err = timeoutError(limit, cut, err)
	}
	r := rand.Float64
	if j.Rand != nil {
		r = j.Rand
	}
	dec := j.Policy(m).Decide(m.Retries+1, err, r())
	if !dec.Retry {
		return DeadFor(dec.Reason, err)
	}
	return Verdict{Act: Retry, Delay: dec.Delay, Cause: err}
}

// Policy merges the worker's default, the task's settings and the
// enqueue's override, most specific last.
func (j *Judge) Policy(m *task.Message) retry.Policy {
	p := j.Retry
	s := j.Registry.Settings(m.Task)
	if s.MaxAttempts > 0 {
		p.MaxAttempts = s.MaxAttempts
	}
	if s.BackoffBase > 0 {
		p.Backoff.Base = s.BackoffBase
	}
	if s.BackoffMax > 0 {
		p.Backoff.Max = s.BackoffMax
	}
	if m.MaxAttempts > 0 {
		p.MaxAttempts = m.MaxAttempts
	}
	return p
}

// timeoutError says why a run's deadline passed.
func timeoutError(limit time.Duration, byConsumerTimeout bool, err error) error {
	if byConsumerTimeout {
		return fmt.Errorf("cut after %v, before the broker's consumer_timeout would close its channel and redeliver it: %w", limit, err)
	}
	return fmt.Errorf("timed out after %v: %w", limit, err)
}

// waitOf is how long m waited for a handler: from its enqueue, or from its
// due time if it was delayed; negative when unknown.
func waitOf(m *task.Message, now time.Time) time.Duration {
	from := m.EnqueuedAt
	if m.ETA.After(from) {
		from = m.ETA
	}
	if from.IsZero() {
		return -1
	}
	return max(now.Sub(from), 0)
}

func isDecode(err error) bool {
	var de *task.DecodeError
	return errors.As(err, &de)
}
