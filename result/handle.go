package result

import (
	"context"
	"fmt"
)

// Handle is a caller's view of one task that returns an R.
type Handle[R any] struct {
	sub     *Subscription
	decode  func([]byte) (R, error)
	backend Backend
}

// NewHandle wraps sub, which backend delivers, decoding results with
// decode.
func NewHandle[R any](sub *Subscription, decode func([]byte) (R, error), backend Backend) *Handle[R] {
	return &Handle[R]{sub: sub, decode: decode, backend: backend}
}

// Forget stops following the task, for a caller that gave up waiting: the
// backend keeps a waiter per task until its final state arrives, and a task
// that never gets one (its queue was purged, say) would otherwise keep it
// for the life of the process. Get then returns ErrForgotten.
func (h *Handle[R]) Forget() {
	h.backend.Unsubscribe(h.sub.ID())
	h.sub.Lose(ErrForgotten)
}

// ID is the task id.
func (h *Handle[R]) ID() string { return h.sub.ID() }

// State is the latest state heard: PENDING until a worker reports.
func (h *Handle[R]) State() State { return h.sub.State() }

// Get waits for the task's final state and returns its result, or its
// failure as a *TaskError, or ErrLost, or ctx's error. A final state that
// has arrived wins over a done context.
func (h *Handle[R]) Get(ctx context.Context) (R, error) {
	var zero R
	select {
	case <-h.sub.Done():
	case <-ctx.Done():
		// select picks at random among ready cases.
		select {
		case <-h.sub.Done():
		default:
			return zero, fmt.Errorf("result: waiting for task %s: %w", h.sub.ID(), ctx.Err())
		}
	}
	u, err := h.sub.outcome()
	if err != nil {
		return zero, err
	}
	if u.State == Failure {
		return zero, &TaskError{ID: h.sub.ID(), Kind: u.Kind, Message: u.Error, Retries: u.Retries}
	}
	r, err := h.decode(u.Result)
	if err != nil {
		return zero, fmt.Errorf("result: decode result of task %s: %w", h.sub.ID(), err)
	}
	return r, nil
}
