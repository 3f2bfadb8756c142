package broker

import (
	"errors"
	"net"
	"sync"
	"time"
)

// coalesceLimit is how many bytes may wait for the socket before writers
// block: enough for a few hundred small publishes, bounded so that a stalled
// connection cannot grow the buffer without end.
const coalesceLimit = 1 << 20

// coalescingConn gathers the writes of many goroutines into few syscalls.
// amqp091-go flushes every publish on its own, one write(2) per message;
// when hundreds of goroutines publish at once, that syscall is the biggest
// client-side cost and, on a small machine, takes CPU from the broker. Here
// a write only appends to a buffer, and one flusher goroutine writes what
// has gathered whenever the socket is free: alone, a publish goes out at
// once; under load, many go out together.
//
// Nothing is promised earlier than before: a publish is safe only when the
// broker confirms it, and a write error fails the connection's next write,
// which fails every unconfirmed publish as amqp091-go's own write error
// would.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	room    *sync.Cond // signalled when the flusher has taken the buffer
	buf     []byte
	err     error // sticky: the first failed write, or net.ErrClosed
	closing bool
	kick    chan struct{} // one pending wake-up for the flusher at most
	exited  chan struct{}
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, kick: make(chan struct{}, 1), exited: make(chan struct{})}
	cc.room = sync.NewCond(&cc.mu)
	go cc.flush()
	return cc
}

// Write queues p for the flusher. It blocks only while the buffer is full.
func (cc *coalescingConn) Write(p []byte) (int, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for cc.err == nil && !cc.closing && len(cc.buf) >= coalesceLimit {
		cc.room.Wait()
	}
	if cc.err != nil {
		return 0, cc.err
	}
	if cc.closing {
		return 0, net.ErrClosed
	}
	cc.buf = append(cc.buf, p...)
	kick(cc.kick)
	return len(p), nil
}

// flush writes what has gathered, whenever there is some, until Close.
func (cc *coalescingConn) flush() {
	defer close(cc.exited)
	var out []byte // the buffer being written; swapped with cc.buf
	for range cc.kick {
		for {
			cc.mu.Lock()
			if len(cc.buf) == 0 || cc.err != nil {
				closing := cc.closing
				cc.mu.Unlock()
				if closing {
					return
				}
				break
			}
			out, cc.buf = cc.buf, out[:0]
			cc.room.Broadcast()
			cc.mu.Unlock()
			_, err := cc.Conn.Write(out)
			if cap(out) > coalesceLimit/4 {
				out = nil // a burst's buffer is not kept for good
			}
			if err != nil {
				// Later writes return err, so amqp091-go's next frame (a
				// heartbeat at the latest) shuts the connection down and
				// fails every unconfirmed publish. The socket stays open
				// for its reader: what the peer sent before it went, a TLS
				// alert saying why, is worth more than our write error.
				cc.fail(err)
			}
		}
	}
}

func (cc *coalescingConn) fail(err error) {
	cc.mu.Lock()
	if cc.err == nil {
		cc.err = err
	}
	cc.room.Broadcast()
	cc.mu.Unlock()
}

// SetWriteDeadline does nothing: a Write here never waits on the socket,
// and the flusher's writes must not fail on a deadline meant for a
// caller's write. crypto/tls sets one just before it closes the
// connection, which would otherwise drop its buffered close_notify; Close
// bounds the last flush itself. SetDeadline still reaches the socket
// whole: the handshake's deadline is set and cleared through it.
func (cc *coalescingConn) SetWriteDeadline(time.Time) error { return nil }

// closeFlushTimeout bounds how long Close waits to send what is buffered
// (a TLS close_notify, say) to a peer that has stopped reading.
const closeFlushTimeout = time.Second

// Close sends what is already buffered, within closeFlushTimeout, then
// closes the socket; writes after it fail.
func (cc *coalescingConn) Close() error {
	cc.mu.Lock()
	if cc.closing {
		cc.mu.Unlock()
		return net.ErrClosed
	}
	cc.closing = true
	cc.room.Broadcast()
	kick(cc.kick) // whether it waits for a kick or is writing, it looks again
	cc.mu.Unlock()
	_ = cc.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	<-cc.exited
	cc.fail(net.ErrClosed)
	if err := cc.Conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// kick leaves a wake-up in c unless one is already waiting there.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
