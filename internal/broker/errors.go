package broker

import (
	"errors"

	"github.com/warrenq/warren/conn"
)

// Errors a publish can end in: package conn's, so that callers test them
// with errors.Is whichever component returned them.
var (
	ErrUnroutable     = conn.ErrUnroutable
	ErrNacked         = conn.ErrNacked
	ErrConnectionLost = conn.ErrConnectionLost
	ErrInvalid        = conn.ErrInvalid
	ErrClosed         = conn.ErrClosed
	// ErrStaleDelivery: an ack or nack for a delivery of a channel that has
	// since died, or a publish whose Publishing.Live turned false before
	// it was written. It is dropped; the broker redelivers that message.
	ErrStaleDelivery = errors.New("stale delivery: its channel is gone")
)

// UnroutableError names where an unroutable publish went.
type UnroutableError = conn.UnroutableError

// InvalidError says which part of a publish is too large, and by how much.
type InvalidError = conn.InvalidError
