package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// ErrDuplicate: a task of the same name and unique key is queued, delayed
// or running (or held after it ended), so this one was not enqueued. The
// error is a *DuplicateError naming that task.
var ErrDuplicate = errors.New("a task with the same unique key is queued, delayed or running")

// DuplicateError is the refusal of a unique task whose lock another task
// holds. errors.Is(err, ErrDuplicate) is true for it.
type DuplicateError struct {
	Task string // the task name
	Key  string // the unique key
	// ID is the task that holds the lock. It is empty in the rare case
	// that the holder's id could not be read: the holder's producer died
	// right after it took the lock, or the read timed out.
	ID string
}

// Error names the key and the task holding it.
func (e *DuplicateError) Error() string {
	holder := "another task"
	if e.ID != "" {
		holder = "task " + e.ID
	}
	return fmt.Sprintf("producer: enqueue %s: %v: %s holds key %q", e.Task, ErrDuplicate, holder, e.Key)
}

// Is reports whether target is ErrDuplicate.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// lock is a unique task's lock, taken for one enqueue: the lock queue, and
// the publish of the record in its holder queue that names the task.
type lock struct {
	queue  string
	recMsg *broker.Publishing
	record *broker.Confirm // nil if the record could not be sent
}

// uniqueExpiry is how much longer than the longest lock the broker keeps
// an unused lock queue.
const uniqueExpiry = time.Minute

// holderWait bounds how long a refused enqueue waits for the holder's
// record, which the holder sends once its lock is confirmed.
const holderWait = 500 * time.Millisecond

// lock takes the lock of the unique task m: a persistent token with TTL
// u.For, published to the lock queue, which holds one message and refuses
// (nacks) any other. A lock queue that does not exist yet is declared and
// the token sent once more. Refused, it returns a *DuplicateError with the
// holder's id, read from the holder queue beside the lock. Taken, it renews
// both queues' lease; the caller sends the record (see record).
func (p *Producer) lock(ctx context.Context, taskName string, u task.Unique, m *broker.Publishing) (*lock, error) {
	queue, _ := m.Headers[task.HeaderUnique].(string)
	id := m.MessageID
	token := &broker.Publishing{Key: queue, MessageID: id, Timestamp: m.Timestamp, Expiration: u.For, Refusable: true,
		Headers: map[string]any{task.HeaderTask: taskName, task.HeaderID: id}}
	for declared := false; ; declared = true {
		err := p.confirmed(ctx, token)
		if err == nil {
			break
		}
		if errors.Is(err, ErrUnroutable) && !declared {
			if err := p.sup.DeclareNow(ctx, routing.UniqueTopology(queue, max(u.For, 0)+max(u.Hold, 0)+uniqueExpiry)); err != nil {
				return nil, fmt.Errorf("declare the lock queue: %w", err)
			}
			continue
		}
		if !errors.Is(err, ErrNacked) {
			p.metrics.PublishError(metrics.PublishErrorReason(err))
			return nil, fmt.Errorf("take the unique lock: %w", err)
		}
		holder := p.holder(ctx, queue)
		if holder != id {
			p.metrics.Duplicate(taskName)
			return nil, &DuplicateError{Task: taskName, Key: u.Key, ID: holder}
		}
		// The lock is this very task's: an enqueue repeated WithID after
		// its first try could not tell whether it had landed.
		break
	}
	if err := p.sup.Touch(ctx, queue, routing.HolderQueue(queue)); err != nil {
		p.log.Debug("unique task: renewing the lock queue's lease", zap.String("queue", queue), zap.Error(err))
	}
	rec := &broker.Publishing{Key: routing.HolderQueue(queue), MessageID: id, Timestamp: m.Timestamp, Expiration: u.For, Headers: token.Headers}
	return &lock{queue: queue, recMsg: rec}, nil
}

// record sends l's holder record, after the task: confirms come back in
// publish order, and the record, a disk write to an idle queue, would
// hold up the task's confirm if it went first on the same channel.
func (p *Producer) record(ctx context.Context, l *lock) {
	c, err := p.pub.Publish(ctx, l.recMsg)
	if err != nil {
		p.log.Warn("unique task: the holder record was not sent; duplicates will not name the holder, and the lock frees itself at its TTL", zap.String("queue", l.queue), zap.String("id", l.recMsg.MessageID), zap.Error(err))
	}
	l.record = c
}

// confirmed publishes m and waits for its confirm.
func (p *Producer) confirmed(ctx context.Context, m *broker.Publishing) error {
	c, err := p.pub.Publish(ctx, m)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// holder reads the id of the task that holds lock from its holder queue,
// waiting up to holderWait for the record of a lock taken a moment ago;
// empty if there is none.
func (p *Producer) holder(ctx context.Context, lock string) string {
	ctx, cancel := context.WithTimeout(ctx, holderWait)
	defer cancel()
	for {
		id, ok, err := p.sup.HeadID(ctx, routing.HolderQueue(lock))
		if ok || err != nil {
			return id
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// unlock settles l once the task's copies are settled: it frees the lock
// (after the holder record is in) when no copy can have been enqueued
// (refused before it was sent, unroutable or nacked), so that a failed
// enqueue does not hold the key. A copy whose fate is unknown (a lost
// connection, a context ended) keeps the lock: the task may be queued.
func (p *Producer) unlock(l *lock, copies []sent) {
	if l == nil {
		return
	}
	for _, s := range copies {
		if s.c != nil && !errors.Is(s.err, ErrUnroutable) && !errors.Is(s.err, ErrNacked) {
			return // enqueued, or perhaps; the record needs no wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if l.record != nil {
		_ = l.record.Wait(ctx) // or the purge could come before it
	}
	for _, q := range []string{l.queue, routing.HolderQueue(l.queue)} {
		if _, err := p.sup.PurgeQueue(ctx, q); err != nil {
			p.log.Warn("unique task: the lock of a task that was not enqueued could not be freed; it frees itself at its TTL", zap.String("queue", q), zap.Error(err))
		}
	}
}
