package broker

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
)

// QueueState is what a passive declare tells of a queue. AMQP has no way
// to count unacked messages or to list queues; the management API does.
type QueueState struct {
	Name      string
	Ready     int // messages ready for delivery
	Consumers int
}

// InspectQueue returns queue's ready messages and consumers with a passive
// declare: it never creates the queue. A missing queue is an error that
// names it and for which IsNotFound is true. The call is bounded by ctx.
func (s *Supervisor) InspectQueue(ctx context.Context, queue string) (QueueState, error) {
	return onChannelValue(ctx, s, func(ch *amqp.Channel) (QueueState, error) {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			return QueueState{}, queueErr(queue, err)
		}
		return QueueState{Name: q.Name, Ready: q.Messages, Consumers: q.Consumers}, nil
	})
}

// PurgeQueue deletes the ready messages of queue and returns how many;
// messages delivered and not yet acked stay. A missing queue is an error
// for which IsNotFound is true. The call is bounded by ctx.
func (s *Supervisor) PurgeQueue(ctx context.Context, queue string) (int, error) {
	return onChannelValue(ctx, s, func(ch *amqp.Channel) (int, error) {
		n, err := ch.QueuePurge(queue, false)
		return n, queueErr(queue, err)
	})
}

// RemoveQueue deletes queue and the messages in it and returns how many
// were ready. The broker refuses while a consumer is attached (ifUnused),
// so a running worker's queue is never pulled from under it. A missing
// queue is an error for which IsNotFound is true.
func (s *Supervisor) RemoveQueue(ctx context.Context, queue string) (int, error) {
	return onChannelValue(ctx, s, func(ch *amqp.Channel) (int, error) {
		n, err := ch.QueueDelete(queue, true, false, false)
		return n, queueErr(queue, err)
	})
}

// CheckExchange returns nil if exchange exists (a passive declare: it
// never creates it). A missing exchange is an error that names it and for
// which IsNotFound is true. The default exchange ("") always exists.
func (s *Supervisor) CheckExchange(ctx context.Context, exchange string) error {
	if exchange == "" {
		return nil
	}
	return s.onChannel(ctx, func(ch *amqp.Channel) error {
		// The kind is not checked by a passive declare.
		err := ch.ExchangeDeclarePassive(exchange, "direct", false, false, false, false, nil)
		if err == nil {
			return nil
		}
		if isNotFound(err) {
			return fmt.Errorf("exchange %q does not exist: %w", exchange, notFoundError{err})
		}
		return fmt.Errorf("exchange %q: %w", exchange, err)
	})
}

// IsNotFound reports whether err is the broker's NOT_FOUND (404): a queue
// or exchange that does not exist. The errors of this package say so with
// conn.ErrNotFound too.
func IsNotFound(err error) bool {
	return errors.Is(err, conn.ErrNotFound) || isNotFound(err)
}

func isNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

// notFoundError is the broker's NOT_FOUND, which errors.Is also takes
// for conn.ErrNotFound. Its text is the broker's.
type notFoundError struct{ err error }

func (e notFoundError) Error() string        { return e.err.Error() }
func (e notFoundError) Unwrap() error        { return e.err }
func (e notFoundError) Is(target error) bool { return target == conn.ErrNotFound }

// onChannel runs fn on a channel of its own (a failed passive declare
// closes its channel) and returns when fn does or ctx is done, whichever
// comes first: amqp091-go's channel calls take no context.
func (s *Supervisor) onChannel(ctx context.Context, fn func(*amqp.Channel) error) error {
	_, err := onChannelValue(ctx, s, func(ch *amqp.Channel) (struct{}, error) { return struct{}{}, fn(ch) })
	return err
}

// onChannelValue is onChannel for a call with a result. The result comes
// back through the channel that says fn is done, never through a variable
// fn writes: once ctx is done the caller has returned, and fn, still
// running, must not write what the caller read.
func onChannelValue[T any](ctx context.Context, s *Supervisor, fn func(*amqp.Channel) (T, error)) (T, error) {
	var zero T
	sess, err := s.Session(ctx)
	if err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	var ch *amqp.Channel
	opened := make(chan struct{})
	go func() {
		c, err := sess.Conn.Channel()
		ch = c
		close(opened)
		if err != nil {
			done <- result{err: err}
			return
		}
		v, err := fn(c)
		_ = c.Close() // returns at once if the broker already closed it
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			// Unblock fn: closing its channel ends the call it waits in.
			<-opened
			if ch != nil {
				_ = ch.Close()
			}
		}()
		return zero, fmt.Errorf("no answer from the broker: %w", ctx.Err())
	}
}
