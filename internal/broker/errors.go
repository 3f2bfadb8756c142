package broker

import (
	"errors"
	"fmt"
)

// Errors a publish can end in. Callers (producer, worker) re-export them.
var (
	// ErrUnroutable: the broker returned a mandatory publish because no
	// queue was bound for its exchange and routing key.
	ErrUnroutable = errors.New("unroutable")
	// ErrNacked: the broker refused the publish (a nack), e.g. a queue
	// at its length limit with reject-publish, or an internal error.
	ErrNacked = errors.New("nacked by the broker")
	// ErrConnectionLost: the channel or connection closed before the broker
	// confirmed the publish; it may or may not have been enqueued.
	ErrConnectionLost = errors.New("connection lost before the broker confirmed")
	// ErrInvalid: the publish can never succeed as given (a name or id
	// longer than AMQP allows, properties larger than a frame, a body over
	// the limit, a header value AMQP cannot carry). It was not sent, the
	// connection is untouched, and sending it again fails the same way.
	ErrInvalid = errors.New("invalid publish")
	// ErrClosed: the supervisor was closed.
	ErrClosed = errors.New("closed")
	// ErrStaleDelivery: an ack or nack for a delivery of a channel that has
	// since died, or a publish whose Publishing.Live turned false before
	// it was written. It is dropped; the broker redelivers that message.
	ErrStaleDelivery = errors.New("stale delivery: its channel is gone")
)

// UnroutableError names where an unroutable publish went.
type UnroutableError struct {
	Exchange, Key string
	Reply         string // the broker's reply text, e.g. NO_ROUTE
}

// Error says which exchange and key had no queue bound.
func (e *UnroutableError) Error() string {
	x := e.Exchange
	if x == "" {
		x = "(default exchange)"
	}
	return fmt.Sprintf("unroutable: no queue bound to exchange %s with routing key %q (%s)", x, e.Key, e.Reply)
}

// Unwrap makes errors.Is(err, ErrUnroutable) true.
func (e *UnroutableError) Unwrap() error { return ErrUnroutable }
