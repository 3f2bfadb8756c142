package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/task"
)

// Headers warren adds to the copies it republishes (see task for each).
const (
	HeaderReason     = task.HeaderReason
	HeaderError      = task.HeaderError
	HeaderFirstError = task.HeaderFirstError
	HeaderAttempts   = task.HeaderAttempts
	HeaderQueue      = task.HeaderQueue
	HeaderDiedAt     = task.HeaderDiedAt
)

// HeaderDroppedHeaders counts the header entries a dead letter left out
// because the table was over MaxHeaderBytes.
const HeaderDroppedHeaders = task.HeaderPrefix + "dropped-headers"

// maxErrorHeader bounds the error text kept in headers.
const maxErrorHeader = 1024

// maxLogField bounds the producer's strings written to a log line.
const maxLogField = 256

// unknownTaskLabel stands for every task name no handler serves.
const unknownTaskLabel = "(unknown)"

// errGoexit is the failure of a handler that ended its goroutine with
// runtime.Goexit (as t.FailNow does) instead of returning.
var errGoexit = errors.New("handler called runtime.Goexit instead of returning")

// delivery is one delivery on its way through the worker: what was read
// from it, and the verdict its run reached.
type delivery struct {
	d       *broker.Delivery
	m       *task.Message // &msg
	msg     task.Message  // kept here so that a delivery costs one allocation
	label   string        // task label for metrics: the name, or unknownTaskLabel
	log     taskLog
	decided bool    // v is set; false only while the handler runs
	v       verdict // what settle does
	why     string  // v.cause's text, cut to maxErrorHeader, for headers and the caller
}

// handle takes one delivery to exactly one outcome, counted in Stats and
// in warren_tasks_processed_total: decide says what should happen, settle
// makes it so. Settling is deferred, so that a handler that ends its
// goroutine with runtime.Goexit still has its delivery settled, as a
// failure, rather than left unacked for good.
func (w *Worker) handle(ctx context.Context, d *broker.Delivery) {
	w.received.Add(1)
	w.metrics.InFlightAdd(d.Queue, 1)
	defer w.metrics.InFlightAdd(d.Queue, -1)
	t := w.read(d)
	defer func() {
		if !t.decided {
			// The handler called runtime.Goexit (its run is missing from
			// the duration histogram): a failure like a panic, unless hard
			// shutdown had cancelled it, as for any other failure then.
			if ctx.Err() != nil {
				t.v = verdict{act: actRequeue, cause: errGoexit, interrupted: true}
			} else {
				t.v = w.failed(t, w.cfg.Registry.Settings(t.m.Task), errGoexit, 0, false)
			}
		}
		o := w.settle(t)
		w.count(o)
		w.metrics.Outcome(t.label, d.Queue, o)
	}()
	t.v = w.decide(ctx, t)
	t.decided = true
}

// read builds the task envelope of d and what handle needs to log and
// label it. A message that cannot run is decided here.
func (w *Worker) read(d *broker.Delivery) *delivery {
	t := &delivery{d: d}
	t.m = &t.msg
	m := t.m
	err := w.message(m, d)
	label := m.Task
	if err == nil && !w.cfg.Registry.Has(m.Task) {
		err = fmt.Errorf("%w: %q", task.ErrUnknownTask, truncate(m.Task, maxLogField))
		if m.Task == "" {
			err = task.ErrNoTaskName
		}
	}
	if !w.cfg.Registry.Has(label) {
		label = unknownTaskLabel // label values stay bounded whatever producers send
	}
	t.label, t.log = label, newTaskLog(w.log, m.Task, m.ID, d.Queue, m.Retries+1)
	if err != nil {
		t.v, t.decided = deadVerdict(task.Reason(err), err), true
	}
	return t
}

func (w *Worker) count(o outcome.Outcome) {
	switch o {
	case outcome.Success:
		w.succeeded.Add(1)
	case outcome.Retry:
		w.retried.Add(1)
	case outcome.Dead:
		w.dead.Add(1)
	case outcome.Expired:
		w.expired.Add(1)
	case outcome.Requeued:
		w.requeued.Add(1)
	}
}

// decide runs the task, unless it cannot or should not run now, and says
// how its delivery should be settled.
func (w *Worker) decide(ctx context.Context, t *delivery) verdict {
	d, m := t.d, t.m
	if t.decided { // it cannot run: read decided
		w.metrics.Start(t.label, d.Queue, -1)
		return t.v
	}
	if !d.Live() {
		// Its channel died while it waited for a handler: the broker has
		// it back and redelivers it. Running it would run it twice.
		w.metrics.Start(t.label, d.Queue, -1)
		return verdict{act: actRequeue}
	}
	settings := w.cfg.Registry.Settings(m.Task)
	now := time.Now()
	if !m.Expires.IsZero() && now.After(m.Expires) {
		w.metrics.Start(t.label, d.Queue, -1)
		cause := fmt.Errorf("expired at %s", m.Expires.UTC().Format(time.RFC3339))
		if settings.DropExpired {
			return verdict{act: actDrop, reason: outcome.ReasonExpired, cause: cause}
		}
		return deadVerdict(outcome.ReasonExpired, cause)
	}
	if early := m.ETA.Sub(now); early >= time.Second {
		// Arrived before its ETA (a plain producer that set eta, or clock
		// skew): hold it in the delay levels for the rest, unrun.
		w.metrics.Start(t.label, d.Queue, -1)
		return verdict{act: actDefer, delay: early}
	}
	w.metrics.Start(t.label, d.Queue, waitOf(m, now))

	rctx := ctx
	limit, byConsumerTimeout := w.runLimit(settings.Timeout) // see consumertimeout.go
	if limit > 0 {
		// The broker's clock runs from delivery, not from the handler's
		// start: time spent waiting for a free handler counts against it.
		deadline := time.Now().Add(limit)
		if byConsumerTimeout && !d.Received.IsZero() {
			deadline = d.Received.Add(limit)
		}
		var cancel context.CancelFunc
		rctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	w.notice(t, result.Update{State: result.Started, Retries: m.Retries})
	start := time.Now()
	res, err := w.cfg.Registry.DispatchResult(rctx, m)
	took := time.Since(start)
	w.metrics.Ran(t.label, d.Queue, took)
	t.log.took(took)
	var re *task.ResultError
	switch {
	case err == nil:
		return verdict{act: actAck, result: res}
	case ctx.Err() != nil:
		// Hard shutdown cancelled the handler: the task did not finish, so
		// it goes back for another worker rather than to the dead letters.
		return verdict{act: actRequeue, cause: err, interrupted: true}
	case errors.Is(err, task.ErrUnknownTask), errors.Is(err, task.ErrNoTaskName), isDecode(err):
		return deadVerdict(task.Reason(err), err)
	case errors.As(err, &re):
		// The handler succeeded; another run would redo its work and fail
		// to encode again.
		return deadVerdict(outcome.ReasonPermanent, err)
	}
	return w.failed(t, settings, err, limit, byConsumerTimeout && errors.Is(err, context.DeadlineExceeded) && rctx.Err() != nil)
}

// failed is the verdict on a run that failed with err: the retry policy
// decides between another attempt and the dead letters. cut says the run
// was cut before the broker's consumer_timeout.
func (w *Worker) failed(t *delivery, s task.Settings, err error, limit time.Duration, cut bool) verdict {
	if errors.Is(err, context.DeadlineExceeded) && limit > 0 {
		err = timeoutError(limit, cut, err)
	}
	dec := w.policy(t.m, s).Decide(t.m.Retries+1, err, rand.Float64())
	if !dec.Retry {
		return deadVerdict(dec.Reason, err)
	}
	return verdict{act: actRetry, delay: dec.Delay, cause: err}
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

// policy merges the worker's default, the task's settings and the
// enqueue's override, most specific last.
func (w *Worker) policy(m *task.Message, s task.Settings) retry.Policy {
	p := w.cfg.Retry
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

// message fills m, the task envelope, from a delivery. A body or header table
// over the limits is a *task.TooLargeError; bad headers or an unknown
// content encoding are a *task.DecodeError.
func (w *Worker) message(m *task.Message, d *broker.Delivery) error {
	*m = task.Message{
		ID:          d.MessageID,
		ContentType: d.ContentType,
		Body:        d.Body,
		Timestamp:   d.Timestamp,
		Priority:    d.Priority,
		Queue:       d.Queue,
		ReplyTo:     d.ReplyTo,
		Redelivered: d.Redelivered,
	}
	tooLarge := w.limits().check(d.Body, d.Headers)
	err := m.ParseHeaders(d.Headers)
	if m.Task == "" {
		m.Task = w.defaults[d.Queue]
	}
	if tooLarge != nil {
		// Checked first but reported with the task name, if one was read.
		tooLarge.(*task.TooLargeError).Task = m.Task
		return tooLarge
	}
	if err != nil {
		return err
	}
	switch strings.ToLower(d.Encoding) {
	case "", "utf-8", "utf8", "binary", "identity":
	default:
		return &task.DecodeError{Task: m.Task, Err: fmt.Errorf("content_encoding %q is not supported", d.Encoding)}
	}
	return nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
