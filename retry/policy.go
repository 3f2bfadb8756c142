package retry

import (
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren/outcome"
)

// Policy decides whether a failed task runs again and after how long.
//
// The zero value is DefaultPolicy: 5 attempts in all, 10s doubling to a 1h
// cap, 20% jitter. Five runs spread over about two and a half minutes ride
// out a dependency's restart or a short network outage, while a task that
// can never succeed reaches the dead letters within minutes instead of
// clogging its queue for a day; the jitter keeps a burst of failures from
// retrying in lockstep (a retry storm).
type Policy struct {
	// MaxAttempts counts runs in all, the first included: 1 means never
	// retry. Defaults to 5.
	MaxAttempts int
	// Backoff spaces the retries. Its zero fields default to
	// DefaultBackoff's: Base 10s, Max 1h, Multiplier 2, Jitter 0.2.
	Backoff Backoff
}

// DefaultPolicy is the policy a task gets unless it names its own.
var DefaultPolicy = Policy{MaxAttempts: 5, Backoff: DefaultBackoff}

// MaxDelay is the longest delay the delay infrastructure can hold; longer
// ones (from a policy or from After) are capped to it.
const MaxDelay = (1<<22 - 1) * time.Second // about 48.5 days

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultPolicy.MaxAttempts
	}
	return p // Backoff.Delay fills in the backoff's own defaults
}

// Decision is what a Policy says about one failure.
type Decision struct {
	Retry bool          // run again after Delay
	Delay time.Duration // whole seconds, at least 1s when Retry
	// Reason says why not, when Retry is false:
	// outcome.ReasonPermanent or outcome.ReasonExhausted.
	Reason outcome.Reason
}

// Decide judges the failure err of run number attempt (1 for the first
// run). r in [0, 1) drives the jitter. A Permanent error never retries; an
// After error retries after its own delay but still counts as an attempt,
// so that a handler returning After forever still ends in the dead letters.
func (p Policy) Decide(attempt int, err error, r float64) Decision {
	p = p.withDefaults()
	if IsPermanent(err) {
		return Decision{Reason: outcome.ReasonPermanent}
	}
	if attempt >= p.MaxAttempts {
		return Decision{Reason: outcome.ReasonExhausted}
	}
	d := p.Backoff.Delay(attempt, r)
	var ae *AfterError
	if errors.As(err, &ae) {
		d = ae.Delay
	}
	return Decision{Retry: true, Delay: roundDelay(d)}
}

// roundDelay rounds up to whole seconds, the delay infrastructure's
// resolution, within [1s, MaxDelay].
func roundDelay(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	if d > MaxDelay {
		return MaxDelay
	}
	if rem := d % time.Second; rem != 0 {
		d += time.Second - rem
	}
	return d
}

// PermanentError marks a failure that retrying cannot fix (bad input, a
// missing record): the task goes straight to the dead letters.
type PermanentError struct{ Err error }

// Permanent wraps err so that the task is not retried. A nil err stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Error returns the wrapped error's text unchanged. The mark is control
// flow, not news: the reason travels beside the text (outcome.Reason in
// x-warren-reason, result.TaskError.Kind, the log's reason field), so a
// prefix here would only be said twice ("failed (permanent): permanent:").
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is, or wraps, a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// AfterError asks for the next attempt after Delay instead of the policy's
// backoff, e.g. when a rate-limited API says when to come back.
type AfterError struct {
	Delay time.Duration
	Err   error
}

// After wraps err so that the task is retried after d. It still counts as
// an attempt: MaxAttempts caps it like any failure.
func After(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &AfterError{Delay: d, Err: err}
}

// Error says when the retry was asked for.
func (e *AfterError) Error() string {
	return fmt.Sprintf("retry after %v: %v", e.Delay, e.Err)
}

// Unwrap returns the wrapped error.
func (e *AfterError) Unwrap() error { return e.Err }
