package inspect

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/task"
)

// MaxPeek is the most messages one Peek reads. Every message peeked is
// held away from the workers until the peek ends, so a peek stays small.
const MaxPeek = 100

// ErrPeekLimit is Peek's answer to a count below 1 or above MaxPeek.
var ErrPeekLimit = fmt.Errorf("a peek reads 1 to %d messages", MaxPeek)

// Message is one ready message of a work queue as Peek saw it: the task
// and what its headers say of it, and the raw message for anything else.
type Message struct {
	// ID is the task id (message_id, else the id header).
	ID string
	// Task is the task name from the task header; empty when the message
	// has none (the queue's default task then runs it).
	Task string
	// Queue is the queue it was peeked in.
	Queue string
	// Retries counts the attempts made before the next one (the retries
	// header); 0 for a task not yet tried.
	Retries int
	// ETA is when the task becomes due (the eta header); zero: at once.
	ETA time.Time
	// Expires is when the task stops being worth running (the expires
	// header); zero: never.
	Expires time.Time
	// Undecodable says why a worker would dead-letter the message
	// unrun: a protocol header of the wrong type or form. Fields read from
	// headers after the bad one are then left zero. Empty when they parse.
	Undecodable string
	// ContentType names the codec of Body (application/json by default).
	ContentType string
	// Encoding is the AMQP content_encoding, usually empty.
	Encoding string
	// Headers is every AMQP header, the ones above included.
	Headers map[string]any
	// Body is the encoded payload, as published.
	Body []byte
	// Redelivered is the broker's flag: the message was delivered before
	// and given back (a worker's crash or requeue, or an earlier peek).
	Redelivered bool
	// Timestamp is the AMQP timestamp, set by the producer when it
	// published: whole seconds; zero if none.
	Timestamp time.Time
}

// Peek returns the next up to n (at most MaxPeek) ready messages of queue,
// oldest first, and leaves them in the queue: it takes them unacked with
// basic.get on a channel of its own and gives them all back by closing it.
// A missing queue is an error for which errors.Is(err, conn.ErrNotFound)
// is true; n out of range, ErrPeekLimit.
//
// A peek is a delivery, and costs what one does (RabbitMQ 3.10):
//   - each message peeked comes back marked redelivered, so the worker
//     that runs it sees Redelivered set (task.Message.Redelivered) as if a
//     run had been cut short;
//   - while the peek lasts the messages are unacked, not ready: workers
//     cannot take them, and queue counts show them as unacked;
//   - on a quorum queue each return counts as a failed delivery: the
//     broker adds one to the message's x-delivery-count, and past the
//     queue's delivery limit (routing.Queue.DeliveryLimit) it dead-letters
//     the message, so repeated peeks can push a task into <queue>.dead
//     without a single run;
//   - only ready messages are seen: those in workers' prefetch windows
//     are not, so on a busy queue the next message a worker runs may be
//     one Peek did not show.
//
// A classic queue puts the messages back where they were; a quorum queue
// at its head, in the order they were taken, which is the same order.
func (i *Inspector) Peek(ctx context.Context, queue string, n int) ([]Message, error) {
	if n < 1 || n > MaxPeek {
		return nil, fmt.Errorf("peek %d messages of %q: %w", n, queue, ErrPeekLimit)
	}
	cctx, cancel := i.call(ctx)
	defer cancel()
	sup, err := i.connected(cctx)
	if err != nil {
		return nil, err
	}
	rd, err := sup.OpenReader(cctx)
	if err != nil {
		return nil, err
	}
	// basic.get takes no context, so the reads run apart and the result
	// comes back only through done: once ctx is done the caller has left.
	type result struct {
		ms  []Message
		err error
	}
	done := make(chan result, 1)
	go func() {
		ms, err := peek(rd, queue, n)
		_ = rd.Close() // every message goes back
		done <- result{ms, err}
	}()
	select {
	case r := <-done:
		return r.ms, r.err
	case <-cctx.Done():
		// Closing the reader ends the get it waits in and gives back
		// what it took.
		go func() { _ = rd.Close() }()
		return nil, fmt.Errorf("no answer from the broker: %w", cctx.Err())
	}
}

func peek(rd *broker.Reader, queue string, n int) ([]Message, error) {
	var out []Message
	for len(out) < n {
		d, ok, err := rd.Get(queue)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		out = append(out, messageOf(d, queue))
	}
	return out, nil
}

func messageOf(d *broker.Delivery, queue string) Message {
	tm := task.Message{ID: d.MessageID, Timestamp: d.Timestamp}
	perr := tm.ParseHeaders(d.Headers)
	m := Message{
		ID: tm.ID, Task: tm.Task, Queue: queue, Retries: tm.Retries, ETA: tm.ETA, Expires: tm.Expires,
		ContentType: d.ContentType, Encoding: d.Encoding, Headers: d.Headers, Body: d.Body,
		Redelivered: d.Redelivered, Timestamp: d.Timestamp,
	}
	if perr != nil {
		m.Undecodable = perr.Error()
	}
	return m
}
