package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warrenq/warren/celery"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/verdict"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/result"
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
	w       *Worker
	d       *broker.Delivery
	m       *task.Message // &msg
	msg     task.Message  // kept here so that a delivery costs one allocation
	label   string        // task label for metrics: the name, or unknownTaskLabel
	log     taskLog
	started time.Time           // when a handler took it
	shown   inspect.RunningTask // what heartbeats read: set before the slot is stored, never written after
	decided bool                // v is set; false only while the handler runs
	v       verdict.Verdict     // what settle does
	why     string              // v.Cause's text, cut to maxErrorHeader, for headers and the caller
	celery  *celery.Envelope    // the body of a task shared with Celery, read; nil for others
	speaks  speaks              // the shape its caller reads results in
}

// handle takes one delivery to exactly one outcome, counted in Stats and
// in warren_tasks_processed_total: decide says what should happen, settle
// makes it so. Settling is deferred, so that a handler that ends its
// goroutine with runtime.Goexit still has its delivery settled, as a
// failure, rather than left unacked for good.
func (w *Worker) handle(ctx context.Context, d *broker.Delivery, running *slot) {
	w.received.Add(1)
	w.metrics.InFlightAdd(d.Queue, 1)
	defer w.metrics.InFlightAdd(d.Queue, -1)
	t := w.read(d)
	t.started = time.Now()
	// A copy for heartbeats, which run beside the handler: the handler
	// may write to t.m (task.FromContext).
	t.shown = inspect.RunningTask{ID: t.m.ID, Task: t.m.Task, Queue: d.Queue, Attempt: t.m.Retries + 1, Started: t.started}
	running.Store(t) // for heartbeats: t.shown is set
	defer func() {
		if !t.decided {
			// The handler called runtime.Goexit (its run is missing from
			// the duration histogram): a failure like a panic, unless hard
			// shutdown had cancelled it, as for any other failure then.
			if ctx.Err() != nil {
				t.v = verdict.Verdict{Act: verdict.Requeue, Cause: errGoexit, Interrupted: true}
			} else {
				t.v = w.judge.Failed(t.m, errGoexit, 0, false)
			}
		}
		o := w.settle(t)
		if t.m.Unique != "" && releases(o) {
			w.release(t)
		}
		w.count(o)
		w.metrics.Outcome(t.label, d.Queue, o)
		running.Store(nil)
		if d.Settled != nil {
			d.Settled()
		}
	}()
	t.v = w.decide(ctx, t)
	t.decided = true
}

// read builds the task envelope of d and what handle needs to log and
// label it. A message that cannot run is decided here.
func (w *Worker) read(d *broker.Delivery) *delivery {
	t := &delivery{w: w, d: d}
	t.m = &t.msg
	m := t.m
	err := w.message(m, d)
	label := m.Task
	if err == nil && !w.cfg.Registry.Has(m.Task) {
		err = fmt.Errorf("%w: %q", task.ErrUnknownTask, truncate(m.Task, maxLogField))
		if m.Task == "" {
			err = task.ErrNoTaskName
			if celery.LooksLikeV1(d.ContentType, d.Body) {
				err = &task.DecodeError{Err: celery.ErrProtocolV1}
			}
		}
	}
	format := w.cfg.Registry.Format(m.Task)
	t.speaks = speaksOf(m, format, w.cfg.Registry.Has(m.Task))
	if err == nil && celery.Is(format) {
		t.celery, err = readCelery(m)
	}
	if !w.cfg.Registry.Has(label) {
		label = unknownTaskLabel // label values stay bounded whatever producers send
	}
	t.label, t.log = label, newTaskLog(w.log, m.Task, m.ID, d.Queue, m.Retries+1)
	if err != nil {
		t.v, t.decided = verdict.DeadFor(task.Reason(err), err), true
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
// how its delivery should be settled: the judge decides (package verdict,
// shared with warrentest); what is left here is the delivery's own.
func (w *Worker) decide(ctx context.Context, t *delivery) verdict.Verdict {
	if t.decided { // it cannot run: read decided
		t.Skipped()
		return t.v
	}
	if !t.d.Live() {
		// Its channel died while it waited for a handler: the broker has
		// it back and redelivers it. Running it would run it twice.
		t.Skipped()
		return verdict.Verdict{Act: verdict.Requeue}
	}
	return w.judge.Decide(ctx, t.m, t.d.Received, t)
}

// Skipped counts a delivery that does not run (verdict.Observer).
func (t *delivery) Skipped() { t.w.metrics.Start(t.label, t.d.Queue, -1) }

// Started counts the run's start and tells a caller that awaits the
// result (verdict.Observer).
func (t *delivery) Started(wait time.Duration) {
	t.w.metrics.Start(t.label, t.d.Queue, wait)
	t.w.checkFireClock(t.m, t.d.Received)
	if t.speaks != speaksCelery { // Celery sends STARTED only with task_track_started
		t.w.notice(t, result.Update{State: result.Started, Retries: t.m.Retries})
	}
}

// Ran records the run's duration (verdict.Observer).
func (t *delivery) Ran(took time.Duration) {
	t.w.metrics.Ran(t.label, t.d.Queue, took)
	t.log.took(took)
}

// message fills m, the task envelope, from a delivery. A body or header table
// over the limits is a *task.TooLargeError; bad headers or an unknown
// content encoding are a *task.DecodeError.
func (w *Worker) message(m *task.Message, d *broker.Delivery) error {
	d.Message(m)
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
