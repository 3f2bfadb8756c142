package conn

import (
	"errors"
	"fmt"
)

// Errors a call to the broker can end in, whichever component made it
// (producer, worker, deadletter, inspect); test them with errors.Is.
// Components may re-export them under their own names
// (producer.ErrUnroutable is ErrUnroutable).
var (
	// ErrUnroutable: the broker returned a mandatory publish because no
	// queue was bound for its exchange and routing key. The error is an
	// *UnroutableError naming both.
	ErrUnroutable = errors.New("unroutable")
	// ErrNacked: the broker refused the publish (a nack), e.g. a queue at
	// its length limit with reject-publish, or an internal error.
	ErrNacked = errors.New("nacked by the broker")
	// ErrConnectionLost: the channel or connection closed before the
	// broker confirmed the publish; it may or may not have been enqueued.
	ErrConnectionLost = errors.New("connection lost before the broker confirmed")
	// ErrInvalid: the publish can never succeed as given (a name or id
	// longer than AMQP allows, properties larger than a frame, a body over
	// the limit, a header value AMQP cannot carry). It was not sent, the
	// connection is untouched, and sending it again fails the same way.
	ErrInvalid = errors.New("invalid publish")
	// ErrClosed: the component was closed.
	ErrClosed = errors.New("closed")
	// ErrNotFound: the queue or exchange named does not exist (the
	// broker's NOT_FOUND). The error names it.
	ErrNotFound = errors.New("not found")
	// ErrRefused: the broker refused the login (user or password) or
	// access to the vhost. Components keep retrying, since an operator
	// may fix it; tools that would rather fail fast (inspect) stop.
	ErrRefused = errors.New("refused by the broker")
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

// InvalidError says which part of a publish is too large, and by how much.
// It unwraps to ErrInvalid.
type InvalidError struct {
	Field string // what is too large, e.g. "message id", `header key "a" > "b…"`
	Size  int    // its size in bytes
	Limit int    // the most it may be
	Rule  string // what sets the limit
}

// Error names the field, its size, the limit and why, and says that the
// publish was not sent and retrying it will not help.
func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid publish: %s is %d bytes, over the limit of %d (%s); not sent, and retrying will not help",
		e.Field, e.Size, e.Limit, e.Rule)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }
