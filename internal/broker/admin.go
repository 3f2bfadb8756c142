package broker

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/routing"
)

// DeclareNow applies t on the live session at once, bounded by ctx, for
// names made after the supervisor started (a test's queues, say). Unlike
// Config.Topology it is not declared again after a reconnect.
func (s *Supervisor) DeclareNow(ctx context.Context, t routing.Topology) error {
	sess, err := s.Session(ctx)
	if err != nil {
		return err
	}
	return Declare(sess.Conn, t)
}

// DeleteQueue deletes queue and the messages in it, consumed or not; a
// queue that does not exist is no error.
func (s *Supervisor) DeleteQueue(ctx context.Context, queue string) error {
	return s.onChannel(ctx, func(ch *amqp.Channel) error {
		if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
			return fmt.Errorf("delete queue %q: %w", queue, err)
		}
		return nil
	})
}

// DeleteExchange deletes exchange and its bindings; an exchange that does
// not exist is no error.
func (s *Supervisor) DeleteExchange(ctx context.Context, exchange string) error {
	return s.onChannel(ctx, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDelete(exchange, false, false); err != nil {
			return fmt.Errorf("delete exchange %q: %w", exchange, err)
		}
		return nil
	})
}
