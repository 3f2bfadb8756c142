package worker

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/celery"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/verdict"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// speaks is the shape a task's caller reads its results in.
type speaks uint8

const (
	speaksWarren speaks = iota // result.Update's own JSON
	speaksCelery               // Celery's RPC result backend (result.Update.EncodeCelery)
)

// speaksOf says how m's caller reads results: as Celery does when m is a
// task shared with Celery (its handler's format f), or, when no handler
// serves it (has is false), when Celery sent it (a lang header, which
// Celery's protocol 2 always carries and warren's does not).
func speaksOf(m *task.Message, f task.Format, has bool) speaks {
	if celery.Is(f) {
		return speaksCelery
	}
	if _, ok := m.Headers[celery.HeaderLang]; ok && !has {
		return speaksCelery
	}
	return speaksWarren
}

// readCelery reads the body of a task shared with Celery before it runs,
// so that a body warren cannot honour (a serializer other than JSON, a
// chord) is dead-lettered unrun with a reason, and so that its workflow
// is at hand when the run ends.
func readCelery(m *task.Message) (*celery.Envelope, error) {
	if m.ContentType != "" && !isJSON(m.ContentType) {
		return nil, &task.DecodeError{Task: m.Task, Err: celery.UnsupportedSerializer(m.ContentType)}
	}
	if c, ok := m.Headers[celery.HeaderCompression]; ok && c != nil && c != "" {
		return nil, &task.DecodeError{Task: m.Task, Err: celery.UnsupportedCompression(fmt.Sprint(c))}
	}
	e, err := celery.ParseBody(m.Body)
	if err != nil {
		return nil, &task.DecodeError{Task: m.Task, Err: err}
	}
	return e, nil
}

func isJSON(contentType string) bool {
	var cs task.Codecs
	c, err := cs.Lookup(contentType)
	return err == nil && c.ContentType() == task.ContentTypeJSON
}

// awaited reports whether t's caller awaits updates: it named a reply
// queue and, for Celery, did not ask to ignore the result.
func (t *delivery) awaited() bool {
	if t.d.ReplyTo == "" {
		return false
	}
	ignore, _ := t.m.Headers[celery.HeaderIgnoreResult].(bool)
	return !(t.speaks == speaksCelery && ignore)
}

// encode writes u in the shape t's caller reads.
func (t *delivery) encode(u result.Update) ([]byte, error) {
	if t.speaks == speaksCelery {
		return u.EncodeCelery()
	}
	return u.Encode()
}

// sendCelery publishes what a Celery task's workflow asks for once its
// run ended: on success the chain's next step and the callbacks, on a
// final failure the errbacks (not for an expired task, which Celery
// reports as revoked and sends no errbacks for). Each is confirmed before
// the task is acked, so none is lost; a failure to publish requeues the
// task, whose next run sends them again: at least once (Celery's own
// workers, acking early by default, send them at most once). It reports
// whether any was sent, the first that the broker will never take as it
// is (unsent; the others are still sent), and the error that stopped it.
func (w *Worker) sendCelery(t *delivery) (sent bool, unsent, err error) {
	var next []celery.Next
	switch {
	case t.v.Act == verdict.Ack:
		next, err = t.celery.OnSuccess(t.m, t.v.Result)
	case t.v.Act == verdict.Dead && t.v.Reason != outcome.ReasonExpired:
		next, err = t.celery.OnFailure(t.m)
	}
	if err != nil {
		return false, err, nil // a signature parseBody accepted and next cannot read: for good
	}
	for _, n := range next {
		p := w.celeryPublishing(t, n)
		if err := w.confirmed(p); err != nil {
			err = fmt.Errorf("celery: sending %s %s to exchange %q key %q: %w", n.Task, n.ID, p.Exchange, p.Key, err)
			if !unsendable(err) {
				return sent, unsent, err
			}
			if unsent == nil {
				unsent = err
			}
			continue
		}
		sent = true
		t.log.Debug("sent the next task of its workflow", zap.String("next_task", n.Task), zap.String("next_id", n.ID), zap.String("key", p.Key))
	}
	return sent, unsent, nil
}

// celeryPublishing routes n: to the exchange and routing key its
// signature names, else to the queue it names, else to the queue t came
// from when this worker runs n's task, else to Celery's default queue.
func (w *Worker) celeryPublishing(t *delivery, n celery.Next) *broker.Publishing {
	r := routing.ToQueue(celery.DefaultQueue)
	switch {
	case n.Exchange != "" || n.RoutingKey != "":
		key := n.RoutingKey
		if key == "" {
			key = n.Queue
		}
		r = routing.Route{Exchange: n.Exchange, Key: key}
	case n.Queue != "":
		r = routing.ToQueue(n.Queue)
	case w.cfg.Registry.Has(n.Task):
		r = routing.ToQueue(t.d.Queue)
	}
	return &broker.Publishing{
		Exchange: r.Exchange, Key: r.Key, MessageID: n.ID, CorrelationID: n.ID, ReplyTo: n.ReplyTo,
		ContentType: task.ContentTypeJSON, Encoding: "utf-8", Headers: n.Headers, Body: n.Body,
		Priority: n.Priority, Timestamp: time.Now(),
		Live: t.d.Live, // a run the broker took back sends nothing: its next run does
	}
}

// errNextUnsent wraps the error of a workflow's next task that the broker
// will never take as it is.
var errNextUnsent = errors.New("the next task of its workflow cannot be sent")

// unsendable reports whether a next task's publish failed for good: no
// queue took it, the broker nacked it, or it is invalid (an id or queue
// name from the sender's options over AMQP's limits). Sending it again
// would fail the same way.
func unsendable(err error) bool {
	return errors.Is(err, broker.ErrUnroutable) || refused(err)
}
