package worker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// A unique task (task.WithUnique) holds a lock queue, named by its
// x-warren-unique header, from its enqueue to its end. The worker frees it
// once the task's final outcome is settled and acked: success, a dead
// letter, an expiry. A retry keeps it (the task is still delayed), and so
// does a requeue or a lost channel (the task is still queued).

// releases reports whether outcome o ends the task, and so frees its lock.
func releases(o outcome.Outcome) bool {
	return o == outcome.Success || o == outcome.Dead || o == outcome.Expired
}

// release frees t's lock, or, with a hold (task.WithUniqueHold), takes it
// again for the hold. Only the lock's own holder frees it: the holder
// queue must name t's id, so that a dead letter replayed after its lock
// freed cannot free another task's. A release that fails leaves the lock
// to its TTL; it never touches the task, which is settled already.
func (w *Worker) release(t *delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ConfirmTimeout)
	defer cancel()
	lock := t.m.Unique
	var then func() error
	if t.m.UniqueHold > 0 {
		then = func() error { return w.hold(ctx, t, lock) }
	}
	released, err := w.sup.ReleaseLock(ctx, lock, routing.HolderQueue(lock), t.m.ID, then)
	switch {
	case err != nil:
		w.metrics.ReleaseFailed(t.label)
		t.log.Warn("unique task: the lock was not released; it frees itself at its TTL", zap.String("lock", lock), zap.Error(err))
	case !released:
		t.log.Debug("unique task: the lock is not this task's (it expired, or another holds it); left as it is", zap.String("lock", lock))
	}
}

// hold takes t's lock again for t.m.UniqueHold, right after its release:
// a token with that TTL, then the holder's record with the same. A task
// enqueued in the moment between takes the lock instead (the token is
// nacked), and the hold is skipped: that task holds the key now.
func (w *Worker) hold(ctx context.Context, t *delivery, lock string) error {
	token := &broker.Publishing{Key: lock, MessageID: t.m.ID, Timestamp: time.Now(), Expiration: t.m.UniqueHold, Refusable: true,
		Headers: map[string]any{task.HeaderTask: t.m.Task, task.HeaderID: t.m.ID}}
	err := w.publishLock(ctx, token)
	if errors.Is(err, broker.ErrNacked) {
		return nil
	}
	if err != nil {
		return err
	}
	rec := *token
	rec.Key, rec.Refusable = routing.HolderQueue(lock), false
	return w.publishLock(ctx, &rec)
}

func (w *Worker) publishLock(ctx context.Context, m *broker.Publishing) error {
	c, err := w.pub.Publish(ctx, m)
	if err == nil {
		err = c.Wait(ctx)
	}
	return err
}
