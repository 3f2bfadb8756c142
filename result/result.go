// Package result carries task states and results back to the caller that
// awaits them. A task enqueued with producer.EnqueueResult gets reply_to =
// the producer's reply queue and correlation_id = the task id; workers send
// it STARTED and RETRY as they happen and the final SUCCESS or FAILURE with
// a publisher confirm before they ack the task. Handle.Get returns the
// typed result or the task's final error.
//
// States and their transitions:
//
//	PENDING --(a worker starts a run)--> STARTED
//	STARTED --(the run failed, another is scheduled)--> RETRY --> STARTED ...
//	STARTED --(handler returned nil)--> SUCCESS
//	any     --(attempts exhausted, permanent error, expired, bad input)--> FAILURE
//
// SUCCESS and FAILURE are final. STARTED and RETRY are best-effort
// notices; the final state is confirmed.
//
// The built-in backend (AMQP) is for callers that wait: results live in the
// producer process's reply queue only until they are consumed. If the
// awaiting process dies, the results of its tasks are lost (the tasks
// themselves still run), and the queue is deleted by the broker after
// ReplyQueueExpiry without a consumer. Backend is an interface so that a
// durable store can take its place.
package result

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenq/warren/outcome"
)

// State is where a task is, as its caller sees it.
type State string

// The states of a task.
const (
	Pending State = "PENDING" // enqueued; no worker has reported yet
	Started State = "STARTED" // a worker is running it
	Retry   State = "RETRY"   // a run failed; another is scheduled
	Success State = "SUCCESS" // final: the handler returned a result
	Failure State = "FAILURE" // final: it will not run again
)

// Final reports whether s ends the task.
func (s State) Final() bool { return s == Success || s == Failure }

// Update is one state change, as workers send it (the body of a reply
// message, JSON).
type Update struct {
	ID      string          `json:"id"`
	State   State           `json:"state"`
	Result  json.RawMessage `json:"result,omitempty"` // SUCCESS: the encoded result
	Error   string          `json:"error,omitempty"`  // RETRY, FAILURE: the last error
	Kind    outcome.Reason  `json:"kind,omitempty"`   // FAILURE: why (see TaskError)
	Retries int             `json:"retries"`          // attempts made before this update
}

// Encode returns the update's wire form.
func (u Update) Encode() ([]byte, error) { return json.Marshal(u) }

// DecodeUpdate parses an update's wire form: warren's, or the one
// Celery's RPC result backend sends (see EncodeCelery), so that a Go
// caller awaits a Celery worker's result as it awaits a warren worker's.
func DecodeUpdate(body []byte) (Update, error) {
	var w struct {
		Update
		Status string `json:"status"` // Celery's name for the state
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return w.Update, fmt.Errorf("result: bad update: %w", err)
	}
	if w.State == "" && w.Status != "" {
		return decodeCelery(body)
	}
	if w.State == "" {
		return w.Update, errors.New("result: update without a state")
	}
	return w.Update, nil
}

// celeryMeta is a task state as Celery's RPC result backend publishes it
// to the caller's reply_to queue, with correlation_id = the task id.
type celeryMeta struct {
	TaskID    string          `json:"task_id"`
	Status    string          `json:"status"`
	Result    json.RawMessage `json:"result"`
	Traceback *string         `json:"traceback"`
	Children  []any           `json:"children"`
	DateDone  string          `json:"date_done,omitempty"`
}

// celeryException is how Celery serializes an exception in JSON: the
// result of a FAILURE or RETRY.
type celeryException struct {
	Type    string  `json:"exc_type"`
	Message any     `json:"exc_message"` // the exception's args, a list
	Module  *string `json:"exc_module"`
}

// CeleryTaskError is the exc_type of the exception a Python caller's
// AsyncResult.get() raises for a task that failed in a Go handler, its
// message the failure's kind and text: TaskError('permanent: no such
// account').
const CeleryTaskError = "TaskError"

// EncodeCelery returns u in the shape Celery's RPC result backend
// (result_backend = 'rpc://') publishes: {task_id, status, result,
// traceback, children}, and date_done, which later Celery versions add; a
// failure's result is an exception Python rebuilds as CeleryTaskError,
// and an expired task is REVOKED with TaskRevokedError('expired'), as
// Celery reports it. It is what a Go handler sends to a Python caller
// awaiting AsyncResult.get().
func (u Update) EncodeCelery() ([]byte, error) {
	m := celeryMeta{TaskID: u.ID, Status: string(u.State), Result: u.Result, Children: []any{}}
	switch {
	case u.State == Failure && u.Kind == outcome.ReasonExpired:
		// As Celery's worker reports a task it took after its expiry, so
		// that get() raises TaskRevokedError('expired') as it would there.
		module := "celery.exceptions"
		exc, err := json.Marshal(celeryException{Type: "TaskRevokedError", Message: []string{"expired"}, Module: &module})
		if err != nil {
			return nil, err
		}
		m.Status, m.Result = "REVOKED", exc
	case u.State == Failure, u.State == Retry:
		text := u.Error
		if u.Kind != "" {
			text = string(u.Kind) + ": " + text
		}
		exc, err := json.Marshal(celeryException{Type: CeleryTaskError, Message: []string{text}})
		if err != nil {
			return nil, err
		}
		m.Result, m.Traceback = exc, &text
	case u.State == Success:
		m.DateDone = time.Now().UTC().Format("2006-01-02T15:04:05.000000")
	}
	if m.Result == nil {
		m.Result = json.RawMessage("null")
	}
	if u.State.Final() && m.DateDone == "" {
		m.DateDone = time.Now().UTC().Format("2006-01-02T15:04:05.000000")
	}
	return json.Marshal(m)
}

// decodeCelery reads a Celery result message into an Update. A failure
// keeps the exception's type and message as its Error; REVOKED (Celery's
// state for a task that expired or was revoked) is a failure of kind
// expired; Celery's other states that are not warren's (RECEIVED, or a
// custom one) read as STARTED, which is not final.
func decodeCelery(body []byte) (Update, error) {
	var m celeryMeta
	if err := json.Unmarshal(body, &m); err != nil {
		return Update{}, fmt.Errorf("result: bad Celery result: %w", err)
	}
	u := Update{ID: m.TaskID}
	switch State(m.Status) {
	case Success:
		u.State, u.Result = Success, m.Result
	case Failure, Retry:
		u.State = State(m.Status)
		var kind outcome.Reason
		kind, u.Error = celeryError(m.Result)
		if u.State == Failure {
			u.Kind = kind
		}
	case Pending:
		u.State = Pending
	default:
		u.State = Started
		if m.Status == "REVOKED" {
			_, why := celeryError(m.Result)
			u.State, u.Kind, u.Error = Failure, outcome.ReasonExpired, "revoked: "+why
		}
	}
	return u, nil
}

// celeryError renders a serialized exception as "ValueError: bad input",
// with the kind of failure it stands for: permanent (Celery's worker
// failed the task for good), or, for warren's own CeleryTaskError (a Go
// handler's failure sent in Celery's shape), the reason its message
// starts with, which is then left out of the text.
func celeryError(raw json.RawMessage) (outcome.Reason, string) {
	var exc celeryException
	if json.Unmarshal(raw, &exc) != nil || exc.Type == "" {
		return outcome.ReasonPermanent, string(raw)
	}
	msg := exc.Message
	if list, ok := msg.([]any); ok && len(list) <= 1 {
		msg = ""
		if len(list) == 1 {
			msg = list[0]
		}
	}
	s, ok := msg.(string)
	if !ok {
		b, _ := json.Marshal(msg)
		s = string(b)
	}
	if exc.Type == CeleryTaskError && exc.Module == nil {
		if kind, text, ok := strings.Cut(s, ": "); ok && slices.Contains(outcome.Reasons(), outcome.Reason(kind)) {
			return outcome.Reason(kind), text
		}
	}
	if s == "" {
		return outcome.ReasonPermanent, exc.Type
	}
	return outcome.ReasonPermanent, exc.Type + ": " + s
}

// TaskError is a task's final failure, as Get returns it.
type TaskError struct {
	ID      string
	Kind    outcome.Reason // why: the task's dead-letter reason, or ReasonTooLarge for a result over the worker's limit
	Message string         // the last error's text
	Retries int
}

// Error says which task failed, how and why, each once:
// "task 0199… failed (permanent): no such account".
func (e *TaskError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("task %s failed (%s)", e.ID, e.Kind)
	}
	return fmt.Sprintf("task %s failed (%s): %s", e.ID, e.Kind, e.Message)
}

// ErrLost means a result can no longer arrive: the reply queue was
// recreated (it expired, or the broker lost it) while the task ran, or the
// backend was closed.
var ErrLost = errors.New("result: lost: the reply path was reset or closed before the result arrived")

// ErrForgotten is what Get returns after Handle.Forget.
var ErrForgotten = errors.New("result: the handle was forgotten; its result is no longer followed")

// Subscription follows one task's updates. It is what a Backend returns;
// Handle wraps it with the result type.
type Subscription struct {
	id   string
	done chan struct{}

	mu    sync.Mutex
	state State
	final Update
	err   error // ErrLost
}

// NewSubscription returns a PENDING subscription to task id, for Backend
// implementations.
func NewSubscription(id string) *Subscription {
	return &Subscription{id: id, done: make(chan struct{}), state: Pending}
}

// ID is the task id.
func (s *Subscription) ID() string { return s.id }

// State is the latest state heard.
func (s *Subscription) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Done is closed when the task reached a final state or the result was lost.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Deliver applies an update; it reports whether it was final. Updates after
// the final one are ignored (a late STARTED from a redelivery, say).
func (s *Subscription) Deliver(u Update) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Final() || s.err != nil {
		return true
	}
	s.state = u.State
	if u.State.Final() {
		s.final = u
		close(s.done)
		return true
	}
	return false
}

// Lose ends the subscription with err (ErrLost, or a wrapped form).
func (s *Subscription) Lose(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Final() || s.err != nil {
		return
	}
	s.err = err
	close(s.done)
}

// outcome returns the final update or the loss, once Done is closed.
func (s *Subscription) outcome() (Update, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.final, s.err
}

// ReadyWaiter is a Backend that needs a moment before updates can reach it
// (AMQP declares its reply queue in the background); EnqueueResult waits
// for it before it publishes a task.
type ReadyWaiter interface {
	WaitReady(ctx context.Context) error
}

// Backend delivers task updates to the process that awaits them.
type Backend interface {
	// ReplyTo is the address workers send updates to (reply_to).
	ReplyTo() string
	// Subscribe starts following task id; call it before the task is
	// published, so that no update can be missed.
	Subscribe(id string) *Subscription
	// Unsubscribe stops following id (the caller gave up).
	Unsubscribe(id string)
	// Close stops the backend; open subscriptions end with ErrLost.
	Close() error
}
