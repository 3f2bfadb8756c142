package broker

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Unique tasks' locks (docs/protocol.md, "Unique tasks") are taken by a
// Refusable publish to the lock queue; reading and releasing them needs
// basic.get, which these two do on a channel of their own.

// HeadID returns the message id of queue's first message and leaves the
// message in place: a basic.get, then a requeue. ok is false when the
// queue is empty or does not exist. Between the two the message is
// unacked, and x-max-length counts ready messages only, so never use it on
// a queue whose length is a lock: read the lock's holder queue instead.
func (s *Supervisor) HeadID(ctx context.Context, queue string) (id string, ok bool, err error) {
	type head struct {
		id string
		ok bool
	}
	h, err := onChannelValue(ctx, s, func(ch *amqp.Channel) (head, error) {
		d, ok, err := ch.Get(queue, false)
		if err != nil || !ok {
			return head{}, err
		}
		// Closing the channel would requeue it too; the nack says so.
		_ = ch.Nack(d.DeliveryTag, false, true)
		return head{d.MessageId, true}, nil
	})
	if isNotFound(err) {
		return "", false, nil
	}
	return h.id, h.ok, queueErr(queue, err)
}

// ReleaseLock frees the lock queue lock if its holder queue says that id
// holds it: it takes the holder's record, purges the lock, calls then (if
// not nil; a hold after the task re-takes the lock there), and acks the
// record. released is false, and nothing changed, when another task holds
// the lock or none is recorded (the lock, if any, then frees itself at its
// TTL). An error from then is returned with released true.
func (s *Supervisor) ReleaseLock(ctx context.Context, lock, holder, id string, then func() error) (released bool, err error) {
	released, err = onChannelValue(ctx, s, func(ch *amqp.Channel) (bool, error) {
		d, ok, err := ch.Get(holder, false)
		if err != nil || !ok {
			return false, err
		}
		if d.MessageId != id {
			_ = ch.Nack(d.DeliveryTag, false, true)
			return false, nil
		}
		// The record stays unacked until the lock is purged: a task that
		// takes the lock between the two then finds the holder queue
		// open for its own record.
		if _, err := ch.QueuePurge(lock, false); err != nil {
			return false, err // the channel closed: the record goes back
		}
		var thenErr error
		if then != nil {
			// The hold's token must not outlive its queue.
			if _, err := ch.QueueDeclarePassive(lock, true, false, false, false, nil); err != nil {
				return false, err
			}
			thenErr = then()
		}
		if err := ch.Ack(d.DeliveryTag, false); err != nil {
			return true, err
		}
		return true, thenErr
	})
	if isNotFound(err) {
		return false, nil
	}
	return released, err
}

// Touch renews the x-expires lease of each queue (a passive declare, which
// the broker counts as a use; a publish is not) without waiting for the
// broker: the declares go out with no-wait on a channel kept for them. A
// queue that does not exist closes that channel, and the next Touch opens
// another. A lock taken by a publish is touched so that its queue outlives
// the lock's TTL however long it stood idle before.
func (s *Supervisor) Touch(ctx context.Context, queues ...string) error {
	sess, err := s.Session(ctx)
	if err != nil {
		return err
	}
	s.touchMu.Lock()
	defer s.touchMu.Unlock()
	if s.touchCh == nil || s.touchSess != sess || s.touchCh.IsClosed() {
		ch, err := sess.Conn.Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		s.touchCh, s.touchSess = ch, sess
	}
	for _, q := range queues {
		if _, err := s.touchCh.QueueDeclarePassive(q, true, false, false, true, nil); err != nil {
			return queueErr(q, err)
		}
	}
	return nil
}
