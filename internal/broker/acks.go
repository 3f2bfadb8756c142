package broker

import (
	"sync"
	"time"
)

// ackInterval is the acker's timer: under load acks go out in batches, and
// no ack waits more than two intervals to be sent.
const ackInterval = 2 * time.Millisecond

// acker coalesces the acks of one consumer channel into basic.ack frames
// with multiple=true, which cost the broker far less than one frame per
// message. Handlers finish out of order, so a multiple ack may only cover
// the contiguous prefix of settled delivery tags: next is the lowest tag
// not yet settled, and the tags settled above it wait in above.
//
// The acks of the prefix are sent when the consumer finds no delivery
// waiting (a consumer that keeps up pays no delay), when the last running
// handler finishes while none is waiting, when batch acks are pending, and
// at the timer's next fire. An ack above the prefix, held back by a
// delivery still running below it, is sent on its own at the second fire
// after it was made, so no ack waits more than two intervals (4 ms).
// Nacks are sent at once, after the acks of the settled prefix.
//
// An acker belongs to one channel and dies with it: an ack not yet sent
// when the channel closes is lost, and the broker redelivers its message,
// as it would a message whose ack was in flight. Deliveries of a newer
// channel have an acker of their own, so no ack crosses channels.
type acker struct {
	ch    acknowledger
	batch int

	mu           sync.Mutex
	next         uint64              // lowest delivery tag not yet settled (tags start at 1)
	ackTo        uint64              // highest tag below next whose ack is made; the next multiple ack names it
	sent         uint64              // tags up to here are covered by a multiple ack sent
	above        map[uint64]ackState // settled tags above next
	pending      int                 // acks made and not sent
	pendingAbove int                 // of pending, those in above
	inflight     int                 // deliveries handed to handlers and not settled
	waiting      bool                // the consumer found no delivery waiting and is blocked for one
	timer        *time.Timer
	armed        bool
	frames       uint64 // basic.ack frames sent, for tests
	closed       bool
}

// ackState is where a settled tag above the prefix stands.
type ackState uint8

const (
	ackSent  ackState = iota // acked or nacked on its own: not outstanding any more
	ackMade                  // ack made, not sent
	ackAging                 // ack made, not sent, and a timer fire has seen it: the next sends it
)

// acknowledger is the part of *amqp.Channel an acker uses.
type acknowledger interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple, requeue bool) error
}

func newAcker(ch acknowledger, prefetch int) *acker {
	return &acker{ch: ch, batch: max(1, prefetch/4), next: 1, above: make(map[uint64]ackState)}
}

// handed records a delivery given to a handler, which will settle it; the
// consumer has a delivery again, so it is no longer waiting (see idle).
func (a *acker) handed() {
	a.mu.Lock()
	a.inflight++
	a.waiting = false
	a.mu.Unlock()
}

// idle says the consumer found no delivery waiting and is about to block
// for the next (handed ends that). The acks of the prefix go out now, as
// will each handler's when the last one running finishes meanwhile.
func (a *acker) idle() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.waiting = true
	_ = a.flushPrefix()
}

// ack acks tag, now or with others shortly. The error is the channel's,
// if a send failed, or ErrStaleDelivery once the acker is closed: the ack
// will not be sent.
func (a *acker) ack(tag uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrStaleDelivery
	}
	a.inflight--
	if !a.settle(tag, ackMade) {
		return nil
	}
	a.pending++
	if !(a.inflight == 0 && a.waiting) && a.pending < a.batch {
		a.arm()
		return nil
	}
	err := a.flushPrefix()
	if a.pending > 0 {
		a.arm() // those above the prefix: the timer sends them if they wait too long
	}
	return err
}

// nack rejects tag at once, after the acks of the settled prefix. handed
// says whether a handler had it (rather than the consumer, giving it
// back).
func (a *acker) nack(tag uint64, requeue, handed bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrStaleDelivery
	}
	if handed {
		a.inflight--
	}
	if a.isSettled(tag) {
		return nil
	}
	// The nack goes out before tag joins the prefix: a multiple ack sent
	// after that may cover it, and must find it no longer outstanding.
	err := a.flushPrefix()
	if nerr := a.ch.Nack(tag, false, requeue); err == nil {
		err = nerr
	}
	a.settle(tag, ackSent)
	return err
}

// isSettled reports whether tag was settled already.
func (a *acker) isSettled(tag uint64) bool {
	_, done := a.above[tag]
	return done || tag < a.next
}

// settle moves the prefix past tag, or records tag above it in state s
// (ackMade for an ack to send, ackSent for one settled on its own). It
// reports false for a tag already settled, which is left alone: sending
// for it again would name a tag no longer outstanding.
func (a *acker) settle(tag uint64, s ackState) bool {
	if a.isSettled(tag) {
		return false
	}
	if tag > a.next {
		a.above[tag] = s
		if s != ackSent {
			a.pendingAbove++
		}
		return true
	}
	if s != ackSent {
		a.ackTo = tag
	}
	a.next++
	for {
		st, ok := a.above[a.next]
		if !ok {
			return true
		}
		if st != ackSent {
			a.pendingAbove-- // now in the prefix: the multiple ack covers it
			a.ackTo = a.next
		}
		delete(a.above, a.next)
		a.next++
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
	a.frames++
	err := a.ch.Ack(a.ackTo, true)
	a.sent = a.ackTo
	a.pending = a.pendingAbove
	return err
}

// flushAbove acks on their own the tags above the prefix whose acks are
// made and not sent: every one, or with aged only, those a timer fire has
// already seen (and it marks the others seen).
func (a *acker) flushAbove(agedOnly bool) error {
	if a.pendingAbove == 0 {
		return nil
	}
	var err error
	for tag, s := range a.above {
		switch {
		case s == ackSent:
			continue
		case agedOnly && s == ackMade:
			a.above[tag] = ackAging
			continue
		}
		a.frames++
		if e := a.ch.Ack(tag, false); e != nil && err == nil {
			err = e
		}
		a.above[tag] = ackSent
		a.pendingAbove--
		a.pending--
	}
	return err
}

// arm makes sure the pending acks are looked at within ackInterval.
func (a *acker) arm() {
	if a.armed || a.closed {
		return
	}
	a.armed = true
	if a.timer == nil {
		a.timer = time.AfterFunc(ackInterval, a.fire)
		return
	}
	a.timer.Reset(ackInterval)
}

// fire sends the prefix's acks, and those above it that waited a whole
// interval already.
func (a *acker) fire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if a.closed {
		return
	}
	_ = a.flushPrefix()
	_ = a.flushAbove(true)
	if a.pending > 0 {
		a.arm()
	}
}

// flushAndClose sends every ack made and stops the acker, in one step, so
// that no ack made meanwhile is left behind: called before its channel is
// closed on purpose, since closing it with acks unsent would hand their
// messages to another consumer, to run again.
func (a *acker) flushAndClose() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		_ = a.flushPrefix()
		_ = a.flushAbove(false)
	}
	a.stop()
}

// close stops the acker without sending: its channel is gone.
func (a *acker) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stop()
}

func (a *acker) stop() {
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
