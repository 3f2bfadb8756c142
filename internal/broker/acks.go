package broker

import (
	"sync"
	"time"
)

// ackInterval bounds how long an ack waits to be sent with others. Under
// load acks go out in batches; a consumer whose handlers have all finished
// sends at once, so an idle or lightly loaded consumer pays no delay.
const ackInterval = 2 * time.Millisecond

// acker coalesces the acks of one consumer channel into basic.ack frames
// with multiple=true, which cost the broker far less than one frame per
// message. Handlers finish out of order, so a multiple ack may only cover
// the contiguous prefix of settled delivery tags: next is the lowest tag
// not yet settled, and the tags settled above it wait in above. An ack is
// sent when no delivery is waiting for the consumer and no handler is
// running (the consumer is idle), when batch acks are waiting, and at the
// latest ackInterval after it was made; a slow delivery at the head of the prefix holds back the others
// for about one interval, after which they are acked one by one. Nacks
// are sent at once, each on its own, after the acks made before them.
//
// An acker belongs to one channel and dies with it: an ack not yet sent
// when the channel closes is lost, and the broker redelivers its message,
// as it would a message whose ack was in flight. Deliveries of a newer
// channel have an acker of their own, so no ack crosses channels.
type acker struct {
	ch    acknowledger
	batch int

	mu           sync.Mutex
	next         uint64          // lowest delivery tag not yet settled (tags start at 1)
	ackTo        uint64          // highest tag below next whose ack is made; the next multiple ack names it
	sent         uint64          // tags up to here are covered by a multiple ack sent
	above        map[uint64]bool // settled tags above next: true while the ack is not sent
	pending      int             // acks made and not sent
	pendingAbove int             // of pending, those in above
	inflight     int             // deliveries handed to handlers and not settled
	waiting      bool            // the consumer found no delivery waiting and is blocked for one
	timer        *time.Timer
	armed        bool
	timerNext    uint64 // next when the timer was armed: unchanged at its fire means the head is stuck
	frames       uint64 // basic.ack frames sent, for tests
	closed       bool
}

// acknowledger is the part of *amqp.Channel an acker uses.
type acknowledger interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple, requeue bool) error
}

func newAcker(ch acknowledger, prefetch int) *acker {
	return &acker{ch: ch, batch: max(1, prefetch/4), next: 1, above: make(map[uint64]bool)}
}

// handed records a delivery given to a handler, which will settle it.
func (a *acker) handed() {
	a.mu.Lock()
	a.inflight++
	a.mu.Unlock()
}

// idle says whether the consumer found no delivery waiting (it is about to
// block for the next) or has one again. With none waiting, the acks made
// go out now, as will those of the handlers still running as each
// finishes with nothing more to do: a consumer that keeps up pays no
// delay for batching.
func (a *acker) idle(none bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.waiting = none
	if none {
		_ = a.flushPrefix()
	}
}

// ack acks tag, now or with others shortly. The error is the channel's,
// if a send failed.
func (a *acker) ack(tag uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	a.settle(tag, true)
	a.pending++
	if !(a.inflight == 0 && a.waiting) && a.pending < a.batch {
		a.arm()
		return nil
	}
	err := a.flushPrefix()
	if a.pending > 0 {
		a.arm() // those above the prefix: the timer sends them if it stays stuck
	}
	return err
}

// nack rejects tag at once, after the acks made before it. handed says
// whether a handler had it (rather than the consumer, giving it back).
func (a *acker) nack(tag uint64, requeue, handed bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if handed {
		a.inflight--
	}
	err := a.flushPrefix()
	if nerr := a.ch.Nack(tag, false, requeue); err == nil {
		err = nerr
	}
	a.settle(tag, false)
	return err
}

// settle moves the prefix past tag, or records tag above it; pendingAck
// says its ack is still to be sent.
func (a *acker) settle(tag uint64, pendingAck bool) {
	switch {
	case tag == a.next:
		if pendingAck {
			a.ackTo = tag
		}
		a.next++
		for {
			p, ok := a.above[a.next]
			if !ok {
				return
			}
			if p {
				a.pendingAbove-- // now in the prefix: the multiple ack covers it
				a.ackTo = a.next
			}
			delete(a.above, a.next)
			a.next++
		}
	case tag > a.next:
		a.above[tag] = pendingAck
		if pendingAck {
			a.pendingAbove++
		}
	}
}

// flushPrefix sends one multiple ack for the settled prefix, if it holds
// acks not yet sent. The frame names the highest of them, not the end of
// the prefix: RabbitMQ refuses, closing the channel, an ack whose tag is no
// longer outstanding (nacked, or acked on its own), even with multiple
// set; those below it are skipped.
func (a *acker) flushPrefix() error {
	if a.ackTo <= a.sent {
		return nil
	}
	if a.closed {
		return ErrStaleDelivery
	}
	a.frames++
	err := a.ch.Ack(a.ackTo, true)
	a.sent = a.ackTo
	a.pending = a.pendingAbove
	return err
}

// flushAbove acks, one by one, the settled tags above the prefix.
func (a *acker) flushAbove() error {
	if a.pendingAbove == 0 {
		return nil
	}
	if a.closed {
		return ErrStaleDelivery
	}
	var err error
	for tag, p := range a.above {
		if !p {
			continue
		}
		a.frames++
		if e := a.ch.Ack(tag, false); e != nil && err == nil {
			err = e
		}
		a.above[tag] = false
	}
	a.pending -= a.pendingAbove
	a.pendingAbove = 0
	return err
}

// arm makes sure the pending acks go out within ackInterval.
func (a *acker) arm() {
	if a.armed || a.closed {
		return
	}
	a.armed = true
	a.timerNext = a.next
	if a.timer == nil {
		a.timer = time.AfterFunc(ackInterval, a.fire)
		return
	}
	a.timer.Reset(ackInterval)
}

func (a *acker) fire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if a.closed {
		return
	}
	stuck := a.next == a.timerNext
	_ = a.flushPrefix()
	if stuck {
		_ = a.flushAbove()
	}
	if a.pending > 0 {
		a.arm()
	}
}

// flush sends every ack made, before the channel is closed on purpose:
// closing it with acks unsent would hand their messages to another
// consumer, to run again.
func (a *acker) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.flushPrefix()
	_ = a.flushAbove()
}

// close stops the acker: its channel is gone or about to be.
func (a *acker) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
}

// stats returns the acks made and not sent, and the ack frames sent.
func (a *acker) stats() (pending int, frames uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending, a.frames
}
