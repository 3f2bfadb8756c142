package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/verdict"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/task"
)

// finalUpdate is the final state t's verdict sends to a caller that awaits
// its result, if it sends one: SUCCESS with the result, or FAILURE with
// the reason it will not run again.
func finalUpdate(t *delivery) (result.Update, bool) {
	v := t.v
	switch v.Act {
	case verdict.Ack:
		return result.Update{State: result.Success, Result: v.Result, Retries: t.m.Retries}, true
	case verdict.Dead, verdict.Drop:
		return result.Update{State: result.Failure, Kind: v.Reason, Error: t.why, Retries: t.m.Retries}, true
	}
	return result.Update{}, false
}

// sendResult sends t's final state to the caller that awaits it, if any,
// and waits for the broker's confirm, so that the task is acked only once
// its result is safe. A result the broker will never take is the caller's
// loss, not a reason to run the task again: one over MaxResultBytes is
// replaced by a FAILURE saying so; one the broker refuses (a nack, an
// invalid message, a reply queue that is gone) is logged, counted and
// dropped. An error means the result may be sent again later: the
// connection or the confirm failed, or ErrStaleDelivery, the delivery's
// channel died before the result was written.
func (w *Worker) sendResult(t *delivery) error {
	u, final := finalUpdate(t)
	if !final || !t.awaited() {
		return nil
	}
	body, tooLarge := w.encodeResult(t, u)
	err := w.confirmed(w.reply(t, body))
	switch {
	case err == nil:
		if tooLarge {
			w.resultDropped(t, metrics.ResultTooLarge)
		}
		return nil
	case errors.Is(err, broker.ErrUnroutable):
		w.resultDropped(t, metrics.ResultCallerGone)
		t.log.Info("the caller awaiting this result is gone; dropping it", zap.String("reply_to", t.d.ReplyTo))
		return nil
	case refused(err):
		w.resultDropped(t, metrics.ResultRefused)
		t.log.Error("the broker refused the task's result; the caller will not get it, and the task is not run again for it",
			zap.String("reply_to", t.d.ReplyTo), zap.NamedError("publish_error", err))
		return nil
	}
	return err
}

// refused reports whether a publish error is the broker's final answer
// about that message, which sending it again would not change.
func refused(err error) bool {
	return errors.Is(err, broker.ErrNacked) || errors.Is(err, broker.ErrInvalid)
}

// encodeResult returns u's wire form, or, when that is over the result
// limit (tooLarge) or cannot be encoded, a FAILURE update that says why: a
// caller must hear how its task ended even when its result cannot reach
// it.
func (w *Worker) encodeResult(t *delivery, u result.Update) (body []byte, tooLarge bool) {
	u.ID = t.m.ID
	body, err := t.encode(u)
	if err != nil {
		body, _ = t.encode(result.Update{ID: t.m.ID, State: result.Failure, Kind: outcome.ReasonPermanent, Error: "result: " + err.Error(), Retries: u.Retries})
		return body, false
	}
	if limit := w.maxResult(); limit > 0 && len(body) > limit {
		msg := fmt.Sprintf("the task succeeded but its result, %d bytes encoded, is over the worker's limit of %d (worker.Config.MaxResultBytes)", len(body), limit)
		t.log.Error("result too large; the caller gets a failure instead", zap.Int("bytes", len(body)), zap.Int("limit", limit))
		body, _ = t.encode(result.Update{ID: t.m.ID, State: result.Failure, Kind: outcome.ReasonTooLarge, Error: msg, Retries: u.Retries})
		return body, true
	}
	return body, false
}

// maxResult is MaxResultBytes with its default; 0 means no limit.
func (w *Worker) maxResult() int {
	switch n := w.cfg.MaxResultBytes; {
	case n == 0:
		return DefaultMaxResultBytes
	case n < 0:
		return 0
	default:
		return n
	}
}

func (w *Worker) resultDropped(t *delivery, why string) {
	w.resultsDropped.Add(1)
	w.metrics.ResultDropped(t.label, why)
}

// notice sends u (STARTED, RETRY) to the caller that awaits t's result,
// without waiting for a confirm: notices are best effort.
func (w *Worker) notice(t *delivery, u result.Update) {
	if !t.awaited() {
		return
	}
	u.ID = t.m.ID
	body, err := t.encode(u)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ConfirmTimeout)
	defer cancel()
	_, _ = w.pub.Publish(ctx, w.reply(t, body))
}

// reply is a result update for t's caller, sent only while t's delivery is
// live: the broker redelivers a delivery whose channel died, and its next
// run reports for it.
func (w *Worker) reply(t *delivery, body []byte) *broker.Publishing {
	corr := t.d.CorrelationID
	if corr == "" {
		corr = t.m.ID
	}
	return &broker.Publishing{
		Key: t.d.ReplyTo, MessageID: t.m.ID, CorrelationID: corr, ContentType: task.ContentTypeJSON,
		Headers: replyHeaders(t.m.Task), Body: body, Timestamp: time.Now(),
		Live: t.d.Live, // a run whose delivery the broker took back reports nothing
	}
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
