package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/verdict"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// A delivery is settled in one place, settle, from the verdict its run
// reached: decide says what should happen, settle checks that the delivery
// is still live, publishes the follow-up and waits for its confirm, sends
// the caller's final result, acks, and returns the one outcome to count.

// settle carries out t's verdict and returns its outcome. A delivery whose
// channel has died is left to the broker, which has already taken it back:
// publishing its retry copy or dead letter then would fork the task into
// two lineages. A follow-up that is not confirmed requeues the delivery, so
// nothing is lost between the two; a final result the broker refuses is
// the caller's loss, not a reason to run the task again.
func (w *Worker) settle(t *delivery) outcome.Outcome {
	d, v, log := t.d, t.v, &t.log
	if v.Cause != nil {
		log = log.with(zap.Error(v.Cause))
		t.why = truncate(v.Cause.Error(), maxErrorHeader)
	}
	if !d.Live() {
		return w.lost(t, log, false)
	}
	if v.Act == verdict.Requeue {
		if v.Interrupted {
			// Expected during a stop past the shutdown timeout; the worker
			// already warned once that it is cancelling handlers.
			log.Info("task interrupted by shutdown; requeued")
		}
		return w.requeue(d, log)
	}
	copied, nextSent := false, false
	if t.celery != nil {
		var unsent, err error
		nextSent, unsent, err = w.sendCelery(t)
		switch {
		case errors.Is(err, broker.ErrStaleDelivery):
			return w.lost(t, log, nextSent)
		case err != nil:
			// The next tasks already confirmed go again with the rerun:
			// at least once.
			log.Error("sending the next task of its workflow failed; requeued the task", zap.NamedError("publish_error", err))
			return w.requeueLater(d, log)
		case unsent != nil && v.Act == verdict.Ack:
			// Requeueing would run the task again and meet the same
			// answer for ever (a missing queue, a name over AMQP's
			// limits from the sender's options): its dead letter keeps
			// it, and a replay once the cause is mended sends the step
			// (and again any that were sent now).
			t.v = verdict.DeadFor(outcome.ReasonPermanent, fmt.Errorf("%w: %w", errNextUnsent, unsent))
			v, t.why = t.v, truncate(t.v.Cause.Error(), maxErrorHeader)
			log = t.log.with(zap.Error(v.Cause))
		case unsent != nil:
			log.Warn("an errback of the failed task cannot be sent; the dead letter still records the failure", zap.NamedError("publish_error", unsent))
		}
	}
	if p := w.followUp(t); p != nil {
		err := w.publishFollowUp(d, p)
		if errors.Is(err, broker.ErrStaleDelivery) {
			return w.lost(t, log, nextSent)
		}
		if err != nil {
			log.Error(v.Act.String()+": publish failed; requeued the task", zap.NamedError("publish_error", err))
			return w.requeueLater(d, log)
		}
		copied = true
	}
	err := w.sendResult(t)
	switch {
	case errors.Is(err, broker.ErrStaleDelivery):
		if !copied {
			return w.lost(t, log, nextSent)
		}
	case err != nil && copied:
		// The task's dead letter is confirmed in the broker: requeueing
		// it now would publish it twice. The result is the caller's loss.
		w.resultDropped(t, metrics.ResultPublishFailed)
		log.Error("the task's result could not be sent after its dead letter was confirmed; the caller will not get it", zap.NamedError("publish_error", err))
	case err != nil:
		// A Celery workflow's next tasks, if sent, go again with the
		// rerun: they are at least once, the result is not optional.
		log.Error("result publish failed; requeued the task", zap.NamedError("publish_error", err))
		return w.requeueLater(d, log)
	}
	if !w.ack(d, log) {
		if copied || nextSent {
			// The copy is confirmed and the broker redelivers the
			// original: what the copy stands for happens twice.
			log.Warn("the channel died between the follow-up's confirm and the ack: the broker redelivers this delivery too", zap.Stringer("verdict", v.Act))
		}
		return outcome.Requeued
	}
	switch v.Act {
	case verdict.Ack:
		log.Debug("task succeeded")
	case verdict.Retry:
		w.notice(t, result.Update{State: result.Retry, Error: t.why, Retries: t.m.Retries + 1})
		// Info, not Warn: a retry is the policy working as meant, and
		// loggers such as zap.NewDevelopment attach a stack trace to every
		// Warn. A dead letter stays a Warn: someone has to look at it.
		log.Info("task failed; retry scheduled", zap.Duration("delay", v.Delay), zap.Int("next_attempt", t.m.Retries+2))
	case verdict.Defer:
		log.Debug("task deferred to its eta", zap.Duration("delay", v.Delay))
	case verdict.Dead:
		log.Warn("task dead-lettered", zap.String("reason", string(v.Reason)))
	case verdict.Drop:
		log.Info("task expired; dropped", zap.Time("expires", t.m.Expires))
	}
	return v.Outcome()
}

// lost settles a delivery whose channel died before it was settled: the
// broker has it back and redelivers it, and nothing more is published for
// it. nextSent says the next tasks of its Celery workflow were sent
// already; its next run sends them again.
func (w *Worker) lost(t *delivery, log *taskLog, nextSent bool) outcome.Outcome {
	w.channelLost.Add(1)
	msg := "the delivery's channel died before it was settled: the broker redelivers the task; nothing was published for this run"
	if nextSent {
		msg = "the delivery's channel died before it was settled: the broker redelivers the task, and its next run sends again the next tasks of its workflow that this one sent"
	}
	log.Warn(msg, zap.Stringer("verdict", t.v.Act))
	return outcome.Requeued
}

// followUp returns the copy that t's verdict publishes before the ack, or
// nil: a retry or an early task goes to the delay levels, a dead letter to
// <queue>.dead. Its headers are a copy, never the delivery's own.
func (w *Worker) followUp(t *delivery) *broker.Publishing {
	d, m, v := t.d, t.m, t.v
	switch v.Act {
	case verdict.Retry:
		h := copyHeaders(d.Headers)
		h[task.HeaderRetries] = int64(m.Retries + 1)
		if _, ok := h[HeaderFirstError]; !ok {
			h[HeaderFirstError] = t.why
		}
		h[HeaderError] = t.why
		h[HeaderQueue] = d.Queue
		return delayed(d, v.Delay, h)
	case verdict.Defer:
		return delayed(d, v.Delay, copyHeaders(d.Headers))
	case verdict.Dead:
		h := w.deadHeaders(d)
		h[HeaderReason] = string(v.Reason)
		h[HeaderError] = t.why
		h[HeaderAttempts] = int64(m.Retries + 1)
		h[HeaderQueue] = d.Queue
		h[HeaderDiedAt] = time.Now().UTC().Format(time.RFC3339)
		return &broker.Publishing{Key: routing.DeadQueue(d.Queue), Headers: h}
	}
	return nil
}

// delayed is a copy with headers h for the delay levels, to come back to
// d's queue after delay. eta is set to the new due time so that the copy
// is not deferred again when it arrives.
func delayed(d *broker.Delivery, delay time.Duration, h map[string]any) *broker.Publishing {
	h[task.HeaderETA] = time.Now().Add(delay).UTC().Format(time.RFC3339Nano)
	return &broker.Publishing{Exchange: routing.DelayEntry, Key: routing.DelayKey(delay, d.Queue), Headers: h}
}

// publishFollowUp publishes p and waits for its confirm. An unroutable
// copy means warren's own topology was deleted under the worker (the delay
// levels, or <queue>.dead): it is declared again and the copy sent once
// more, rather than the task requeued in a loop. Like every publish on a
// delivery's behalf it is written only while the delivery is live
// (ErrStaleDelivery otherwise).
func (w *Worker) publishFollowUp(d *broker.Delivery, p *broker.Publishing) error {
	err := w.publish(d, p)
	if errors.Is(err, broker.ErrUnroutable) {
		if derr := w.sup.Redeclare(context.Background()); derr == nil {
			err = w.publish(d, p)
		}
	}
	return err
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
	p.Live = d.Live
	return w.confirmed(p)
}

// confirmed publishes p and waits for its confirm, at most ConfirmTimeout.
func (w *Worker) confirmed(p *broker.Publishing) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ConfirmTimeout)
	defer cancel()
	c, err := w.pub.Publish(ctx, p)
	if err == nil {
		err = c.Wait(ctx)
	}
	if err != nil && !errors.Is(err, broker.ErrStaleDelivery) {
		w.metrics.PublishError(metrics.PublishErrorReason(err))
	}
	return err
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

func (w *Worker) requeue(d *broker.Delivery, log *taskLog) outcome.Outcome {
	if err := d.Nack(true); err != nil {
		if errors.Is(err, broker.ErrStaleDelivery) {
			w.metrics.StaleAck()
		} else {
			log.Warn("requeue failed; the broker redelivers the task when the channel closes", zap.Error(err))
		}
	}
	return outcome.Requeued
}

// followUpPause is how long a handler slot waits before requeueing a task
// whose follow-up publish failed: the broker's trouble is not the task's,
// and an immediate requeue would spin the same message at full speed.
const followUpPause = time.Second

// requeueLater requeues d after a jittered pause.
func (w *Worker) requeueLater(d *broker.Delivery, log *taskLog) outcome.Outcome {
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

// deadHeaders returns the headers a dead letter starts from: d's, or, when
// they are over the limit, a summary that always fits in one frame with
// what followUp adds, so that the dead letter can be published.
func (w *Worker) deadHeaders(d *broker.Delivery) map[string]any {
	if !w.limits().headersOver(d.Headers) {
		return copyHeaders(d.Headers)
	}
	h, dropped := summarizeHeaders(d.Headers)
	h[HeaderDroppedHeaders] = int64(dropped)
	return h
}
