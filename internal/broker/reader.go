package broker

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Reader takes messages one at a time with basic.get and manual acks, for
// tools that inspect or move messages (dead letters). Closing it returns
// every message it took and did not ack to its queue.
type Reader struct {
	ch *amqp.Channel
}

// OpenReader opens a channel for a Reader on the live session.
func (s *Supervisor) OpenReader(ctx context.Context) (*Reader, error) {
	sess, err := s.Session(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := sess.Conn.Channel()
	if err != nil {
		return nil, err
	}
	return &Reader{ch: ch}, nil
}

// Get takes the next message of queue, unacked; ok is false when the queue
// is empty.
func (r *Reader) Get(queue string) (d *Delivery, ok bool, err error) {
	ad, ok, err := r.ch.Get(queue, false)
	if err != nil {
		return nil, false, queueErr(queue, err)
	}
	if !ok {
		return nil, false, nil
	}
	return &Delivery{
		Queue: queue, MessageID: ad.MessageId, ContentType: ad.ContentType, Encoding: ad.ContentEncoding,
		Headers: ad.Headers, Body: ad.Body, Timestamp: ad.Timestamp, Priority: ad.Priority,
		CorrelationID: ad.CorrelationId, ReplyTo: ad.ReplyTo, Redelivered: ad.Redelivered,
		Exchange: ad.Exchange, RoutingKey: ad.RoutingKey, Tag: ad.DeliveryTag, ch: r.ch,
	}, true, nil
}

// Purge deletes every ready message of queue and returns how many.
func (r *Reader) Purge(queue string) (int, error) {
	n, err := r.ch.QueuePurge(queue, false)
	return n, queueErr(queue, err)
}

// Count returns the number of ready messages in queue.
func (r *Reader) Count(queue string) (int, error) {
	q, err := r.ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return 0, queueErr(queue, err)
	}
	return q.Messages, nil
}

// Close closes the channel; unacked messages go back to their queues.
func (r *Reader) Close() error { return r.ch.Close() }

func queueErr(queue string, err error) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return fmt.Errorf("queue %q does not exist: %w", queue, notFoundError{err})
	}
	return fmt.Errorf("queue %q: %w", queue, err)
}
