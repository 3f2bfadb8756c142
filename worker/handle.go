package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
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

// Dead-letter reasons (x-warren-reason); bounded, for headers and metrics.
const (
	ReasonUnknownTask = "unknown_task"
	ReasonUndecodable = "undecodable"
	ReasonExhausted   = "exhausted"
	ReasonPermanent   = "permanent"
	ReasonExpired     = "expired"
	ReasonTooLarge    = "too_large" // body or header table over MaxBodyBytes / MaxHeaderBytes
)

// HeaderDroppedHeaders counts the header entries a dead letter left out
// because the table was over MaxHeaderBytes.
const HeaderDroppedHeaders = task.HeaderPrefix + "dropped-headers"

// Size limits on what a worker takes (Config.MaxBodyBytes, MaxHeaderBytes).
const (
	// DefaultMaxBodyBytes is 16 MiB, RabbitMQ 4's own default
	// max_message_size: any body a current broker takes by default runs.
	// A larger one (RabbitMQ 3.x accepts up to 128 MiB) is bulk data that
	// belongs in object storage with its reference in the task; decoding
	// it would hold a handler slot and several times its size in memory.
	DefaultMaxBodyBytes = 16 << 20
	// DefaultMaxHeaderBytes is 64 KiB, half of the 128 KiB AMQP frame that
	// RabbitMQ and amqp091-go use by default. A message's properties must
	// fit in one frame, and every copy warren republishes (retry, ETA
	// deferral, dead letter) carries the producer's headers (what the
	// limit counts, userHeaderSize) plus the protocol's and warren's
	// own, at most about 23 KiB. Celery and warren producers send well
	// under 1 KiB.
	DefaultMaxHeaderBytes = 64 << 10
	// MaxHeaderBytesCeiling is the highest MaxHeaderBytes honoured: with
	// warren's headers and every other property at their largest, a copy
	// still fits in a 128 KiB frame. Past it the broker would close the
	// connection on the copy's publish and the message would come back
	// forever. With a broker whose frame_max is lowered, set
	// MaxHeaderBytes to at most frame_max - 32 KiB.
	MaxHeaderBytesCeiling = 96 << 10
)

// limits returns the size limits of cfg with defaults applied.
func (w *Worker) limits() limits {
	l := limits{MaxBody: w.cfg.MaxBodyBytes, MaxHeaders: w.cfg.MaxHeaderBytes}
	if l.MaxBody == 0 {
		l.MaxBody = DefaultMaxBodyBytes
	}
	switch {
	case l.MaxHeaders == 0:
		l.MaxHeaders = DefaultMaxHeaderBytes
	case l.MaxHeaders < 0, l.MaxHeaders > MaxHeaderBytesCeiling:
		l.MaxHeaders = MaxHeaderBytesCeiling
	}
	return l
}

// maxErrorHeader bounds the error text kept in headers.
const maxErrorHeader = 1024

// handle runs one delivery to exactly one outcome, counted in Stats and
// in warren_tasks_processed_total.
func (w *Worker) handle(ctx context.Context, d *broker.Delivery) {
	w.received.Add(1)
	w.metrics.InFlightAdd(d.Queue, 1)
	defer w.metrics.InFlightAdd(d.Queue, -1)
	m, err := w.message(d)
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
	// Task name and id come from the producer and may be as long as a frame.
	log := newTaskLog(w.log, zap.String("task", truncate(m.Task, maxLogField)), zap.String("id", truncate(m.ID, maxLogField)),
		zap.String("queue", d.Queue), zap.Int("attempt", m.Retries+1))
	outcome := w.run(ctx, d, m, err, label, log)
	w.count(outcome)
	w.metrics.Outcome(label, d.Queue, outcome)
}

// maxLogField bounds the producer's strings written to a log line.
const maxLogField = 256

// unknownTaskLabel stands for every task name no handler serves.
const unknownTaskLabel = "(unknown)"

func (w *Worker) count(outcome string) {
	switch outcome {
	case metrics.OutcomeSuccess:
		w.succeeded.Add(1)
	case metrics.OutcomeRetry:
		w.retried.Add(1)
	case metrics.OutcomeDead:
		w.dead.Add(1)
	case metrics.OutcomeExpired:
		w.expired.Add(1)
	case metrics.OutcomeRequeued:
		w.requeued.Add(1)
	}
}

// run takes the delivery to its outcome; err is a decode error found
// before running.
func (w *Worker) run(ctx context.Context, d *broker.Delivery, m *task.Message, err error, label string, log *taskLog) string {
	if err != nil {
		w.metrics.Start(label, d.Queue, -1)
		return w.deadLetter(d, m, task.Reason(err), err, log)
	}
	settings := w.cfg.Registry.Settings(m.Task)
	now := time.Now()
	if !m.Expires.IsZero() && now.After(m.Expires) {
		w.metrics.Start(label, d.Queue, -1)
		return w.expire(d, m, settings, log)
	}
	if early := m.ETA.Sub(now); early >= time.Second {
		// Arrived before its ETA (a plain producer that set eta, or clock
		// skew): hold it in the delay levels for the rest, unrun.
		w.metrics.Start(label, d.Queue, -1)
		return w.republishDelayed(d, m, early, copyHeaders(d.Headers), "deferred to its eta", log)
	}
	w.metrics.Start(label, d.Queue, waitOf(m, now))

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
	w.notify(d, m, result.Update{State: result.Started, Retries: m.Retries}, false, log)
	start := time.Now()
	res, err := w.cfg.Registry.DispatchResult(rctx, m)
	w.metrics.Ran(label, d.Queue, time.Since(start))
	log = log.with(zap.Duration("duration", time.Since(start)))
	switch {
	case err == nil:
		if err := w.notify(d, m, result.Update{State: result.Success, Result: res, Retries: m.Retries}, true, log); err != nil {
			log.Error("result publish failed; requeued the task", zap.Error(err))
			return w.requeueLater(d, log)
		}
		if !w.ack(d, log) {
			return metrics.OutcomeRequeued // the broker redelivers it
		}
		log.Debug("task succeeded")
		return metrics.OutcomeSuccess
	case ctx.Err() != nil:
		// Hard shutdown cancelled the handler: the task did not finish, so
		// it goes back for another worker rather than to the dead letters.
		log.Warn("task interrupted by shutdown; requeued", zap.Error(err))
		return w.requeue(d, log)
	case errors.Is(err, task.ErrUnknownTask), errors.Is(err, task.ErrNoTaskName), isDecode(err):
		return w.deadLetter(d, m, task.Reason(err), err, log)
	}
	if errors.Is(err, context.DeadlineExceeded) && rctx.Err() != nil {
		err = timeoutError(limit, byConsumerTimeout, err)
	}
	dec := w.policy(m, settings).Decide(m.Retries+1, err, rand.Float64())
	if !dec.Retry {
		return w.deadLetter(d, m, dec.Reason, err, log)
	}
	return w.retry(d, m, dec.Delay, err, log)
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

// message builds the task envelope from a delivery. A body or header table
// over the limits is a *task.TooLargeError; bad headers or an unknown
// content encoding are a *task.DecodeError.
func (w *Worker) message(d *broker.Delivery) (*task.Message, error) {
	m := &task.Message{
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
		return m, tooLarge
	}
	if err != nil {
		return m, err
	}
	switch strings.ToLower(d.Encoding) {
	case "", "utf-8", "utf8", "binary", "identity":
	default:
		return m, &task.DecodeError{Task: m.Task, Err: fmt.Errorf("content_encoding %q is not supported", d.Encoding)}
	}
	return m, nil
}

func (w *Worker) ack(d *broker.Delivery, log *taskLog) bool {
	if err := d.Ack(); err != nil {
		if errors.Is(err, broker.ErrStaleDelivery) {
			w.metrics.StaleAck()
			log.Warn("ack dropped: the delivery's channel died; the broker redelivers the task")
		} else {
			log.Warn("ack failed; the broker redelivers the task", zap.Error(err))
		}
		return false
	}
	return true
}

func (w *Worker) requeue(d *broker.Delivery, log *taskLog) string {
	if err := d.Nack(true); err != nil {
		if errors.Is(err, broker.ErrStaleDelivery) {
			w.metrics.StaleAck()
		} else {
			log.Warn("requeue failed; the broker redelivers the task when the channel closes", zap.Error(err))
		}
	}
	return metrics.OutcomeRequeued
}

// followUpPause is how long a handler slot waits before requeueing a task
// whose follow-up publish failed: the broker's trouble is not the task's,
// and an immediate requeue would spin the same message at full speed.
const followUpPause = time.Second

// requeueLater requeues d after a jittered pause.
func (w *Worker) requeueLater(d *broker.Delivery, log *taskLog) string {
	time.Sleep(followUpPause/2 + rand.N(followUpPause))
	return w.requeue(d, log)
}

// copyHeaders returns d's headers without RabbitMQ's dead-lettering ones,
// with room for more.
func copyHeaders(h map[string]any) map[string]any {
	out := make(map[string]any, len(h)+6)
	for k, v := range h {
		if !task.IsBrokerHeader(k) {
			out[k] = v
		}
	}
	return out
}

// retry publishes a copy with retries+1 into the delay levels, waits for
// its confirm, then acks the original; if the copy is not confirmed, the
// original is requeued. Nothing is lost between a failure and its retry.
func (w *Worker) retry(d *broker.Delivery, m *task.Message, delay time.Duration, cause error, log *taskLog) string {
	h := copyHeaders(d.Headers)
	h[task.HeaderRetries] = int64(m.Retries + 1)
	if _, ok := h[HeaderFirstError]; !ok {
		h[HeaderFirstError] = truncate(cause.Error(), maxErrorHeader)
	}
	h[HeaderError] = truncate(cause.Error(), maxErrorHeader)
	h[HeaderQueue] = d.Queue
	outcome := w.republishDelayed(d, m, delay, h, "retry", log.with(zap.Error(cause)))
	if outcome == metrics.OutcomeRetry {
		w.notify(d, m, result.Update{State: result.Retry, Error: truncate(cause.Error(), maxErrorHeader), Retries: m.Retries + 1}, false, log)
	}
	return outcome
}

// notify sends u to the caller that awaits m's result, if any. Final
// updates (wait) are confirmed before the task is acked; an unroutable one
// means the caller is gone, which is no reason to run the task again.
// STARTED and RETRY are sent without waiting: they are notices.
func (w *Worker) notify(d *broker.Delivery, m *task.Message, u result.Update, wait bool, log *taskLog) error {
	if d.ReplyTo == "" {
		return nil
	}
	u.ID = m.ID
	body, err := u.Encode()
	if err != nil {
		if !wait {
			return nil
		}
		// A result that is not JSON: tell the caller rather than loop.
		body, _ = result.Update{ID: m.ID, State: result.Failure, Kind: result.KindUndecodable, Error: "result: " + err.Error(), Retries: u.Retries}.Encode()
	}
	corr := d.CorrelationID
	if corr == "" {
		corr = m.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ConfirmTimeout)
	defer cancel()
	c, err := w.pub.Publish(ctx, &broker.Publishing{
		Key: d.ReplyTo, MessageID: m.ID, CorrelationID: corr, ContentType: task.ContentTypeJSON,
		Headers: replyHeaders(m.Task), Body: body, Timestamp: time.Now(),
	})
	if err == nil && wait {
		err = c.Wait(ctx)
	}
	if errors.Is(err, broker.ErrUnroutable) {
		log.Info("the caller awaiting this result is gone; dropping it", zap.String("reply_to", d.ReplyTo))
		return nil
	}
	if err != nil && wait {
		w.metrics.PublishError(metrics.PublishErrorReason(err))
		return err
	}
	return nil
}

// republishDelayed sends a copy with headers h (a copy, never d's own) to
// the delay levels, to come back to d's queue after delay, then acks d. eta
// is set to the new due time so that the copy is not deferred again when it
// arrives. It returns OutcomeRetry for a retry, OutcomeRequeued otherwise.
func (w *Worker) republishDelayed(d *broker.Delivery, m *task.Message, delay time.Duration, h map[string]any, what string, log *taskLog) string {
	h[task.HeaderETA] = time.Now().Add(delay).UTC().Format(time.RFC3339Nano)
	err := w.publish(d, &broker.Publishing{Exchange: routing.DelayEntry, Key: routing.DelayKey(delay, d.Queue), Headers: h})
	if err != nil {
		log.Error(what+": publish to the delay levels failed; requeued the task", zap.Duration("delay", delay), zap.NamedError("publish_error", err))
		return w.requeueLater(d, log)
	}
	if !w.ack(d, log) {
		return metrics.OutcomeRequeued
	}
	if what == "retry" {
		log.Warn("task failed; retry scheduled", zap.Duration("delay", delay), zap.Int("next_attempt", m.Retries+2))
		return metrics.OutcomeRetry
	}
	log.Debug("task "+what, zap.Duration("delay", delay))
	return metrics.OutcomeRequeued
}

// expire ends a task past its expiry without running it: dead-lettered
// with reason "expired", or dropped when its definition says so.
func (w *Worker) expire(d *broker.Delivery, m *task.Message, s task.Settings, log *taskLog) string {
	if s.DropExpired {
		if err := w.notify(d, m, result.Update{State: result.Failure, Kind: result.KindExpired, Error: "expired", Retries: m.Retries}, true, log); err != nil {
			return w.requeueLater(d, log)
		}
		if !w.ack(d, log) {
			return metrics.OutcomeRequeued
		}
		log.Info("task expired; dropped", zap.Time("expires", m.Expires))
		return metrics.OutcomeExpired
	}
	return w.deadLetter(d, m, ReasonExpired, fmt.Errorf("expired at %s", m.Expires.UTC().Format(time.RFC3339)), log)
}

// publish sends p (d's body and properties, p's exchange, key and headers)
// and waits for its confirm.
func (w *Worker) publish(d *broker.Delivery, p *broker.Publishing) error {
	p.MessageID = d.MessageID
	p.ContentType = d.ContentType
	p.Encoding = d.Encoding
	p.Body = d.Body
	p.Priority = d.Priority
	p.Timestamp = d.Timestamp
	p.CorrelationID = d.CorrelationID
	p.ReplyTo = d.ReplyTo
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ConfirmTimeout)
	defer cancel()
	c, err := w.pub.Publish(ctx, p)
	if err == nil {
		err = c.Wait(ctx)
	}
	if err != nil {
		w.metrics.PublishError(metrics.PublishErrorReason(err))
	}
	return err
}

// deadLetter publishes a copy to <queue>.dead, waits for its confirm, then
// acks the original. If the copy is not confirmed, the original is
// requeued: a message is never lost between the two.
func (w *Worker) deadLetter(d *broker.Delivery, m *task.Message, reason string, cause error, log *taskLog) string {
	h := w.deadHeaders(d)
	h[HeaderReason] = reason
	h[HeaderError] = truncate(cause.Error(), maxErrorHeader)
	h[HeaderAttempts] = int64(m.Retries + 1)
	h[HeaderQueue] = d.Queue
	h[HeaderDiedAt] = time.Now().UTC().Format(time.RFC3339)
	err := w.publish(d, &broker.Publishing{Key: routing.DeadQueue(d.Queue), Headers: h})
	if errors.Is(err, broker.ErrUnroutable) {
		// <queue>.dead was deleted under the worker: declare it again and
		// try once more rather than requeueing the task in a loop.
		if derr := w.sup.Redeclare(context.Background()); derr == nil {
			err = w.publish(d, &broker.Publishing{Key: routing.DeadQueue(d.Queue), Headers: h})
		}
	}
	if err == nil {
		err = w.notify(d, m, result.Update{State: result.Failure, Kind: reason, Error: truncate(cause.Error(), maxErrorHeader), Retries: m.Retries}, true, log)
	}
	if err != nil {
		log.Error("dead-letter or result publish failed; requeued the task", zap.String("reason", reason), zap.NamedError("cause", cause), zap.Error(err))
		return w.requeueLater(d, log)
	}
	if !w.ack(d, log) {
		return metrics.OutcomeRequeued
	}
	log.Warn("task dead-lettered", zap.String("reason", reason), zap.Error(cause))
	if reason == ReasonExpired {
		return metrics.OutcomeExpired
	}
	return metrics.OutcomeDead
}

// deadHeaders returns the headers a dead letter starts from: d's, or, when
// they are over the limit, a summary that always fits in one frame with
// what deadLetter adds, so that the dead letter can be published.
func (w *Worker) deadHeaders(d *broker.Delivery) map[string]any {
	if !w.limits().headersOver(d.Headers) {
		return copyHeaders(d.Headers)
	}
	h, dropped := summarizeHeaders(d.Headers)
	h[HeaderDroppedHeaders] = int64(dropped)
	return h
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

// maxReplyTaskHeader bounds the task name copied onto a result update: the
// name comes from the message, and an oversized one (already a too_large
// dead letter) must not push the update past the broker's frame size,
// which would close the connection and bring the message back for ever.
const maxReplyTaskHeader = 255

func replyHeaders(taskName string) map[string]any {
	if len(taskName) > maxReplyTaskHeader {
		return nil
	}
	return map[string]any{task.HeaderTask: taskName}
}
