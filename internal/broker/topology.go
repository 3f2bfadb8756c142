package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/routing"
)

// Declare applies t on conn: durable exchanges, durable work queues with
// their dead-letter queues (an Exclusive queue: conn's own, see
// queueDeclare), and bindings (exchange to exchange, then exchange to
// queue). Declaring is idempotent; a queue
// that exists with other arguments fails with the broker's
// PRECONDITION_FAILED, named in the error.
func Declare(conn *amqp.Connection, t routing.Topology) error {
	if len(t.Exchanges) == 0 && len(t.Queues) == 0 && len(t.Bindings) == 0 {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("declare topology: open channel: %w", err)
	}
	defer func() { _ = ch.Close() }() // ch may be reopened below
	for _, x := range t.Exchanges {
		kind := string(x.Kind)
		if kind == "" {
			kind = string(routing.Direct)
		}
		if err := ch.ExchangeDeclare(x.Name, kind, true, false, false, false, amqp.Table(x.Args)); err != nil {
			return fmt.Errorf("declare exchange %q: %w", x.Name, err)
		}
	}
	for _, q := range t.Queues {
		if err := queueDeclare(ch, q); err != nil {
			var ae *amqp.Error
			if !q.KeepExisting || !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
				return fmt.Errorf("declare queue %q: %w%s", q.Name, err, typeHint(err))
			}
			// It exists as an older version declared it: use it as it is.
			// The refusal closed the channel.
			if ch, err = conn.Channel(); err != nil {
				return fmt.Errorf("declare topology: reopen channel: %w", err)
			}
			if _, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, nil); err != nil {
				return fmt.Errorf("declare queue %q: %w", q.Name, err)
			}
		}
		if q.NoDeadLetters {
			continue
		}
		dead := routing.Queue{Name: routing.DeadQueue(q.Name), Quorum: q.Quorum, NoDeadLetters: true}
		if _, err := ch.QueueDeclare(dead.Name, true, false, false, false, amqp.Table(dead.Arguments())); err != nil {
			return fmt.Errorf("declare dead-letter queue %q: %w", dead.Name, err)
		}
	}
	for _, b := range t.ExchangeBindings {
		if err := ch.ExchangeBind(b.Destination, b.Key, b.Source, false, nil); err != nil {
			return fmt.Errorf("bind exchange %q to exchange %q with key %q: %w", b.Destination, b.Source, b.Key, err)
		}
	}
	for _, b := range t.Bindings {
		if err := ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to exchange %q with key %q: %w", b.Queue, b.Exchange, b.Key, err)
		}
	}
	return nil
}

// queueDeclare declares q on ch: durable, or, if q.Exclusive, exclusive to
// ch's connection and not durable (nor auto-delete: it goes with the
// connection, not with its last consumer).
func queueDeclare(ch *amqp.Channel, q routing.Queue) error {
	_, err := ch.QueueDeclare(q.Name, !q.Exclusive, false, q.Exclusive, false, amqp.Table(q.Arguments()))
	return err
}

// EnsureBinding binds b once per session: the producer makes sure a queue
// it delays tasks for is bound to the delay levels' delivery exchange,
// without declaring (and so constraining) the queue itself. A missing
// queue is an error that names it.
func (s *Supervisor) EnsureBinding(ctx context.Context, b routing.Binding) error {
	sess, err := s.Session(ctx)
	if err != nil {
		return err
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	if s.bound == nil || s.boundGen != sess.Gen {
		s.bound, s.boundGen = make(map[routing.Binding]bool), sess.Gen
	}
	if s.bound[b] {
		return nil
	}
	ch, err := sess.Conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.QueueBind(b.Queue, b.Key, b.Exchange, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fmt.Errorf("queue %q does not exist (declare it, or start a worker for it, before delaying tasks to it): %w", b.Queue, err)
		}
		return fmt.Errorf("bind queue %q to %q: %w", b.Queue, b.Exchange, err)
	}
	s.bound[b] = true
	return nil
}

// Redeclare applies the supervisor's topology again on the live session,
// for when something deleted a queue under a running worker (a consumer
// cancelled by the broker, a dead letter returned unroutable).
func (s *Supervisor) Redeclare(ctx context.Context) error {
	sess, err := s.Session(ctx)
	if err != nil {
		return err
	}
	return Declare(sess.Conn, s.cfg.Topology)
}

// typeHint explains a refusal to change a queue's type, which RabbitMQ
// never does in place.
func typeHint(err error) string {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed || !strings.Contains(ae.Reason, "x-queue-type") {
		return ""
	}
	return " (the queue exists as another type, and RabbitMQ cannot change a queue's type: declare a queue under a new name, " +
		"send new tasks there, and let workers drain the old one; docs/cluster.md has the steps)"
}
