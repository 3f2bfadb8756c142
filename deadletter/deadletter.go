// Package deadletter lists, replays, deletes and purges the dead letters
// of a work queue (<queue>.dead), N at a time. Replay publishes each copy back to its
// original queue and waits for the broker's confirm before it removes the
// dead letter, so a crash in the middle duplicates at most, never loses.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// Config configures a Client. The zero value talks to a local broker.
type Config struct {
	// Conn is how the client reaches the broker and logs; it has no
	// metrics. Its zero value reaches conn.DefaultURL with no logs.
	Conn conn.Config
}

// Client works on dead-letter queues.
type Client struct {
	sup *broker.Supervisor
	pub *broker.Publisher
}

// New returns a client; it connects in the background.
func New(cfg Config) (*Client, error) {
	sup, err := broker.New(broker.Config{Conn: cfg.Conn, Role: "deadletter"})
	if err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	return &Client{sup: sup, pub: broker.NewPublisher(sup, 1)}, nil
}

// Close disconnects.
func (c *Client) Close() error {
	err := c.sup.Close() // first: it wakes calls waiting for a connection
	c.pub.Close()
	return err
}

// Letter is one dead letter: the task as it was, and why it died.
type Letter struct {
	ID          string
	Task        string
	Queue       string         // the work queue it died in
	Reason      outcome.Reason // why it died: outcome.ReasonExhausted, ReasonPermanent...
	Error       string         // the last error's text
	FirstError  string         // the first failure's text, kept from the first retry on; empty when it died on its first run (Error is then the only one)
	Attempts    int
	DiedAt      time.Time
	ContentType string
	Body        []byte
	Headers     map[string]any
}

func letterOf(d *broker.Delivery, queue string) Letter {
	l := Letter{ID: d.MessageID, Queue: queue, ContentType: d.ContentType, Body: d.Body, Headers: d.Headers}
	l.Task, _ = d.Headers[task.HeaderTask].(string)
	r, _ := d.Headers[task.HeaderReason].(string)
	l.Reason = outcome.Reason(r)
	if r == "" {
		// Dead-lettered by the broker, not by a worker: a quorum queue's
		// delivery limit. RabbitMQ names the reason and the queue.
		if why, _ := d.Headers["x-first-death-reason"].(string); why == string(outcome.ReasonDeliveryLimit) {
			l.Reason = outcome.ReasonDeliveryLimit
			l.Error = "delivered more times than the queue's delivery limit without being settled (its worker or connection died each time)"
			if q, _ := d.Headers["x-first-death-queue"].(string); q != "" {
				l.Queue = q
			}
		}
	}
	if e, ok := d.Headers[task.HeaderError].(string); ok {
		l.Error = e
	}
	l.FirstError, _ = d.Headers[task.HeaderFirstError].(string)
	if q, ok := d.Headers[task.HeaderQueue].(string); ok && q != "" {
		l.Queue = q
	}
	switch n := d.Headers[task.HeaderAttempts].(type) {
	case int64:
		l.Attempts = int(n)
	case int32:
		l.Attempts = int(n)
	}
	if s, ok := d.Headers[task.HeaderDiedAt].(string); ok {
		l.DiedAt, _ = time.Parse(time.RFC3339, s)
	}
	return l
}

// List returns up to n dead letters of queue's dead-letter queue (queue is
// the work queue's name), oldest first, without removing them.
func (c *Client) List(ctx context.Context, queue string, n int) ([]Letter, error) {
	r, err := c.sup.OpenReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	defer r.Close() // gives every message back, in order
	var out []Letter
	for len(out) < n {
		d, ok, err := r.Get(routing.DeadQueue(queue))
		if err != nil {
			return out, fmt.Errorf("deadletter: list: %w", err)
		}
		if !ok {
			break
		}
		out = append(out, letterOf(d, queue))
	}
	return out, nil
}

// Replay moves up to n dead letters of queue for which keep returns true
// (nil keeps all) back to the work queue they died in, as fresh tasks:
// attempts reset, warren's bookkeeping headers removed. Each copy is
// confirmed before its dead letter is removed. It returns how many it
// moved; letters it skipped stay, in order.
func (c *Client) Replay(ctx context.Context, queue string, n int, keep func(Letter) bool) (int, error) {
	r, err := c.sup.OpenReader(ctx)
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	defer r.Close() // skipped letters go back
	moved := 0
	for seen := 0; moved < n; seen++ {
		d, ok, err := r.Get(routing.DeadQueue(queue))
		if err != nil {
			return moved, fmt.Errorf("deadletter: replay: %w", err)
		}
		if !ok {
			break
		}
		l := letterOf(d, queue)
		if keep != nil && !keep(l) {
			continue
		}
		if err := c.republish(ctx, d, l.Queue); err != nil {
			return moved, fmt.Errorf("deadletter: replay %s to %s: %w (it stays in %s)", l.ID, l.Queue, err, routing.DeadQueue(queue))
		}
		if err := d.Ack(); err != nil {
			// The copy is in the work queue; the dead letter comes back
			// when the channel closes: a duplicate, never a loss.
			return moved + 1, fmt.Errorf("deadletter: replay %s: remove dead letter: %w", l.ID, err)
		}
		moved++
	}
	return moved, nil
}

func (c *Client) republish(ctx context.Context, d *broker.Delivery, queue string) error {
	h := make(map[string]any, len(d.Headers))
	for k, v := range d.Headers {
		if k == task.HeaderRetries || task.IsBrokerHeader(k) ||
			(strings.HasPrefix(k, task.HeaderPrefix) && k != task.HeaderMaxAttempts) {
			continue
		}
		h[k] = v
	}
	h[task.HeaderPrefix+"replayed-at"] = time.Now().UTC().Format(time.RFC3339)
	cf, err := c.pub.Publish(ctx, &broker.Publishing{
		Key: queue, MessageID: d.MessageID, ContentType: d.ContentType, Encoding: d.Encoding,
		Headers: h, Body: d.Body, Priority: d.Priority, Timestamp: d.Timestamp,
		CorrelationID: d.CorrelationID, ReplyTo: d.ReplyTo,
	})
	if err != nil {
		return err
	}
	return cf.Wait(ctx)
}

// Delete removes up to n dead letters of queue for which keep returns true
// (nil: the first n), for good: a letter to drop (keep matches its ID), a
// chosen few (a set of IDs), or all of them. It reads as Replay does, so
// the letters it leaves stay in place and in order. It returns how many it
// removed; ctx is checked between letters, so a deadline stops it with a
// true count.
func (c *Client) Delete(ctx context.Context, queue string, n int, keep func(Letter) bool) (int, error) {
	r, err := c.sup.OpenReader(ctx)
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	removed, err := deleteFrom(ctx, r, queue, n, keep)
	// Letters not chosen go back, in order. AMQP does not confirm acks; the
	// broker's close-ok does: it answers after the acks before it.
	if cerr := r.Close(); cerr != nil && err == nil && removed > 0 {
		err = fmt.Errorf("deadletter: delete: the broker did not confirm the removal of %d letters (they may come back): %w", removed, cerr)
	}
	return removed, err
}

func deleteFrom(ctx context.Context, r *broker.Reader, queue string, n int, keep func(Letter) bool) (int, error) {
	removed := 0
	for removed < n {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("deadletter: delete: %w", err)
		}
		d, ok, err := r.Get(routing.DeadQueue(queue))
		if err != nil {
			return removed, fmt.Errorf("deadletter: delete: %w", err)
		}
		if !ok {
			break
		}
		if keep != nil && !keep(letterOf(d, queue)) {
			continue
		}
		if err := d.Ack(); err != nil {
			// Not removed: it comes back when the channel closes.
			return removed, fmt.Errorf("deadletter: delete %s: %w", d.MessageID, err)
		}
		removed++
	}
	return removed, nil
}

// Purge deletes every dead letter of queue and returns how many.
func (c *Client) Purge(ctx context.Context, queue string) (int, error) {
	r, err := c.sup.OpenReader(ctx)
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	defer r.Close()
	n, err := r.Purge(routing.DeadQueue(queue))
	if err != nil {
		return 0, fmt.Errorf("deadletter: purge: %w", err)
	}
	return n, nil
}

// Count returns the number of dead letters of queue.
func (c *Client) Count(ctx context.Context, queue string) (int, error) {
	r, err := c.sup.OpenReader(ctx)
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	defer r.Close()
	n, err := r.Count(routing.DeadQueue(queue))
	if errors.Is(err, context.Canceled) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("deadletter: count: %w", err)
	}
	return n, nil
}
