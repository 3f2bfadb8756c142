package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// Publishing is one message to publish, persistent and mandatory unless
// Transient.
type Publishing struct {
	Exchange      string
	Key           string
	MessageID     string
	ContentType   string
	Encoding      string // content_encoding, kept on republished copies
	Headers       map[string]any
	Body          []byte
	Priority      uint8
	Timestamp     time.Time
	CorrelationID string
	ReplyTo       string
	// Live, if set, is asked just before the message is written: when it
	// reports false the publish fails with ErrStaleDelivery, unsent. A
	// worker ties a retry copy or dead letter to the channel of the
	// delivery it stands for this way, so that a copy still waiting for a
	// connection is not sent after the broker has taken the delivery back.
	Live func() bool
	// Lane, if above 0, keeps the message on channel (Lane-1) mod the
	// publisher's channels, so that publishes of one lane share a channel:
	// the producer gives each shard of a sharded task its lane, and a
	// channel then feeds fewer queues. 0: channels in turn.
	Lane int
	// Transient publishes the message non-persistent: for messages worth
	// nothing after a restart, such as heartbeats, which need no disk.
	Transient bool
	// Expiration, if above 0, is the message's own TTL (AMQP expiration,
	// whole milliseconds): the broker drops it from its queue after that.
	Expiration time.Duration
	// Refusable marks a publish whose nack is an answer, not trouble: a
	// unique task's lock token, which a full lock queue refuses. Any other
	// nack replaces the channel (see retire); this one does not.
	Refusable bool
}

// Publisher publishes with publisher confirms over a few channels of one
// supervised connection. Publishes are pipelined: many may be in flight on a
// channel, each waiting on its own Confirm. Each channel has one writer
// goroutine: Publish queues the message for it and returns, so the frame
// encoding runs on one long-lived stack rather than on every caller's,
// which the runtime would grow and shrink again around each call.
type Publisher struct {
	sup     *Supervisor
	slots   []*slot
	maxBody int // bodies over it are refused; 0: no limit
	next    atomic.Uint32
	closed  atomic.Bool
	resent  atomic.Uint64 // publishes a closed channel never wrote, queued again
}

// PublisherOption changes a Publisher as NewPublisher makes it.
type PublisherOption func(*Publisher)

// WithMaxBody makes Publish refuse a body over n bytes with ErrInvalid. By
// default a publisher has no body limit: a worker's copies must go out
// whatever size it accepted.
func WithMaxBody(n int) PublisherOption {
	return func(p *Publisher) { p.maxBody = max(n, 0) }
}

// NewPublisher returns a publisher using channels confirm channels (at least
// one), each with its own writer goroutine.
func NewPublisher(sup *Supervisor, channels int, opts ...PublisherOption) *Publisher {
	if channels < 1 {
		channels = 1
	}
	p := &Publisher{sup: sup, slots: make([]*slot, channels)}
	for i := range p.slots {
		p.slots[i] = &slot{}
	}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

// Publish queues m for a channel's writer and returns its Confirm without
// waiting for the broker. It waits for a connection until ctx is done. A
// message Check refuses is refused here, before it reaches a channel.
//
// m, its headers and its body must not change until the Confirm is
// settled: the writer reads them after Publish returns, and if the channel
// closes before it has written m, m goes out again on another channel.
func (p *Publisher) Publish(ctx context.Context, m *Publishing) (*Confirm, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// What amqp091-go or the broker would refuse by closing the connection
	// is the caller's mistake; refusing it here keeps it the caller's, and
	// every later failure means the channel failed.
	if err := p.Check(m); err != nil {
		return nil, err
	}
	c := &Confirm{done: make(chan struct{}), m: m}
	if err := p.enqueue(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Check returns an error wrapping ErrInvalid (an *InvalidError for sizes)
// if Publish would refuse m: a name, key, id or header key longer than
// MaxShortString, properties over MaxProperties, a header value amqp091-go
// cannot write, or a body over the publisher's limit. For callers that
// must know before they publish anything, such as a task sent as several
// copies.
func (p *Publisher) Check(m *Publishing) error { return check(m, p.maxBody) }

// enqueue puts c on a live channel's queue, waiting for one until ctx is
// done.
func (p *Publisher) enqueue(ctx context.Context, c *Confirm) error {
	s := p.slotFor(c.m)
	var gone *pubChannel
	for {
		if p.closed.Load() {
			return ErrClosed
		}
		pc, err := s.channel(ctx, p, gone)
		if err != nil {
			return err
		}
		if pc.enqueue(c) {
			return nil
		}
		gone = pc // it has closed: open the next one
	}
}

// slotFor picks m's channel slot: its lane's, else the next in turn.
func (p *Publisher) slotFor(m *Publishing) *slot {
	if m.Lane > 0 {
		return p.slots[(m.Lane-1)%len(p.slots)]
	}
	return p.slots[int(p.next.Add(1))%len(p.slots)]
}

// resend puts publishes that a closed channel never wrote on a live one.
// It is done here rather than in Wait because some callers never wait
// (the worker's progress notices).
func (p *Publisher) resend(cs []*Confirm) {
	p.resent.Add(uint64(len(cs)))
	p.sup.log.Info("publisher channel closed before writing some publishes; sending them on another", zap.Int("publishes", len(cs)))
	for _, c := range cs {
		if c.abandoned.Load() {
			c.resolve(errAbandoned)
			continue
		}
		// No deadline of its own: the supervisor's reconnecting or closing
		// ends the wait, and a caller that stops waiting meanwhile marks
		// c abandoned, which the next writer honours.
		if err := p.enqueue(context.Background(), c); err != nil {
			c.resolve(err)
		}
	}
}

// Close closes the publisher's channels; pending confirms fail. Close the
// supervisor first, so that publishes waiting for a connection end.
func (p *Publisher) Close() {
	p.closed.Store(true)
	for _, s := range p.slots {
		s.mu.Lock()
		if s.pc != nil {
			_ = s.pc.ch.Close()
		}
		s.mu.Unlock()
	}
}

// Confirm is the outcome of one publish: the broker's ack, a nack, a
// return, or the loss of the channel. It is also the publish's entry in its
// channel's queue and, once written, in its list of unconfirmed publishes.
// Exactly one owner settles it: the queue's writer, the channel's listener,
// or the channel's failure.
type Confirm struct {
	done      chan struct{}
	err       error
	m         *Publishing
	seq       uint64      // the channel's publish sequence number, once written
	abandoned atomic.Bool // Wait gave up: a writer that has not sent it yet drops it
}

// errAbandoned settles a publish dropped because its caller stopped
// waiting; nobody reads it.
var errAbandoned = errors.New("publish abandoned: its caller stopped waiting before it was sent")

// errNotLive fails a publish whose Publishing.Live turned false before it
// was written.
var errNotLive = fmt.Errorf("publish not sent: %w", ErrStaleDelivery)

// Wait blocks until the broker has confirmed the publish or ctx is done.
// nil means the message is safely in its queue(s). An outcome already
// settled wins over a done context, so a confirmed publish is never
// reported as failed (and sent again by its caller) because the context
// ended too. After a context error the message may still be sent, unless
// its channel's writer had not yet reached it: then it is dropped.
func (c *Confirm) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		// select picks at random among ready cases.
		select {
		case <-c.done:
			return c.err
		default:
		}
		c.abandoned.Store(true)
		return fmt.Errorf("waiting for publisher confirm: %w", ctx.Err())
	}
}

// Exchange is where the message was published.
func (c *Confirm) Exchange() string { return c.m.Exchange }

// Key is the routing key it was published with.
func (c *Confirm) Key() string { return c.m.Key }

func (c *Confirm) resolve(err error) {
	c.err = err
	close(c.done)
}

// HeaderPublishSeq carries a publish's sequence number on its channel when
// another publish with the same message id is in flight there, so that a
// basic.return is matched to exactly one publish. Other publishes go
// without it: every header costs the broker on every message.
const HeaderPublishSeq = "x-warren-publish-seq"

// confirmBuffer is the capacity of a channel's confirm notifications: about
// the number of publishes a busy channel has in flight.
const confirmBuffer = 1024

// keptBatch bounds the queue arrays a writer keeps between bursts, so that
// one burst does not hold its memory for the channel's life.
const keptBatch = 4096

type slot struct {
	mu sync.Mutex
	pc *pubChannel
}

// channel returns the slot's channel, opening one when there is none or
// the one there is gone (its enqueue refused). Whether a channel is still
// open is left to its enqueue, which looks anyway, so a publish takes the
// channel's lock once. It waits for a connection without holding the
// slot's lock, so that a publish whose context ends, or Close, is never
// stuck behind a wait that has no deadline (a resend's).
func (s *slot) channel(ctx context.Context, p *Publisher, gone *pubChannel) (*pubChannel, error) {
	for {
		if pc := s.current(); pc != nil && pc != gone {
			return pc, nil
		}
		sess, err := p.sup.Session(ctx)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.pc != nil && s.pc != gone {
			s.mu.Unlock()
			continue // another publish opened one meanwhile
		}
		pc, err := openPubChannel(sess, p)
		if err == nil {
			s.pc = pc
		}
		s.mu.Unlock()
		if err == nil {
			return pc, nil
		}
		p.sup.log.Warn("open publisher channel", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open publisher channel: %w (%v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *slot) current() *pubChannel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pc
}

// pubChannel is one confirm-mode channel. Confirms arrive in publish order
// (amqp091-go resequences them), so pending is a FIFO: the listener pops
// from the front, the writer pushes at the back.
//
// A return names its publish by message id when that is the channel's
// untagged publish of the id, else by the HeaderPublishSeq it carries.
type pubChannel struct {
	ch  *amqp.Channel
	pub *Publisher
	log *zap.Logger

	mu       sync.Mutex             // guards below
	queue    []*Confirm             // accepted by publish, not yet taken by the writer
	pending  []*Confirm             // written, waiting for their confirms, in sequence order
	untagged map[string]*Confirm    // by message id: the in-flight publish sent without HeaderPublishSeq
	returned map[uint64]amqp.Return // by publish sequence number
	writing  *Confirm               // in pending and inside amqp091-go's Publish
	orphaned bool                   // fail found writing in pending and left it to the writer
	failErr  error                  // why the channel closed; set by fail, nil until then
	dead     bool                   // amqp091-go refused a publish: closed, fail yet to run
	retiring bool                   // closing after a nack (retire)

	kick chan struct{} // one pending wake-up for the writer at most
	stop chan struct{} // closed with the channel: the writer exits
}

func openPubChannel(sess *Session, pub *Publisher) (*pubChannel, error) {
	ch, err := sess.Conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	pc := &pubChannel{ch: ch, pub: pub, log: pub.sup.log, returned: make(map[uint64]amqp.Return), untagged: make(map[string]*Confirm),
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	// Both are read by one goroutine. amqp091-go's single reader sends a
	// message's return before its ack, and returns is unbuffered, so the
	// listener has taken the return before the ack can even be queued: the
	// return is always recorded before the ack it must turn into an error.
	// confirms is buffered, as amqp091-go advises, so that its reader does
	// not stop for our listener on every ack of a multiple-ack burst.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, confirmBuffer))
	returns := ch.NotifyReturn(make(chan amqp.Return))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go pc.listen(confirms, returns, closes)
	go pc.write()
	return pc, nil
}

// down reports whether the channel takes no more publishes; under pc.mu.
// A retiring channel takes none either: its close is under way, and a
// publish written meanwhile would fail as lost rather than go out on the
// next channel.
func (pc *pubChannel) down() bool { return pc.failErr != nil || pc.dead || pc.retiring }

// enqueue queues c for the writer; false if the channel has closed.
func (pc *pubChannel) enqueue(c *Confirm) bool {
	pc.mu.Lock()
	if pc.down() {
		pc.mu.Unlock()
		return false
	}
	pc.queue = append(pc.queue, c)
	pc.mu.Unlock()
	kick(pc.kick)
	return true
}

// write sends the queued publishes in order until the channel closes. It is
// the channel's only publisher, so sequence numbers follow the queue.
func (pc *pubChannel) write() {
	var batch []*Confirm
	for {
		select {
		case <-pc.kick:
		case <-pc.stop:
			return
		}
		for {
			pc.mu.Lock()
			batch, pc.queue = pc.queue, batch[:0]
			pc.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, c := range batch {
				if !pc.send(c) {
					// The channel is gone: what it did not write goes
					// out on another, in order.
					pc.pub.resend(batch[i:])
					clear(batch[i:])
					break
				}
				batch[i] = nil
			}
			if cap(batch) > keptBatch {
				batch = nil
			}
		}
	}
}

// send writes one publish. Its outcome reaches c from the listener once the
// broker answers, from here if the write failed, from fail if the channel
// closes after the write. false means the channel had closed and c was not
// sent: the caller hands it to another.
func (pc *pubChannel) send(c *Confirm) bool {
	if c.abandoned.Load() {
		c.resolve(errAbandoned)
		return true
	}
	m := c.m
	if m.Live != nil && !m.Live() {
		c.resolve(errNotLive)
		return true
	}
	// The sequence number is taken before pc.mu: amqp091-go's reader holds
	// its own lock while it hands a confirm to our listener, which needs
	// pc.mu, so calling into amqp091-go under pc.mu could deadlock.
	seq := pc.ch.GetNextPublishSeqNo()
	pc.mu.Lock()
	if pc.down() {
		pc.mu.Unlock()
		return false
	}
	c.seq = seq
	_, tagged := pc.untagged[m.MessageID]
	if !tagged {
		pc.untagged[m.MessageID] = c
	}
	pc.pending = append(pc.pending, c)
	pc.writing = c
	pc.mu.Unlock()

	// A return is matched by message id, unique among this channel's
	// untagged publishes in flight. Ids do repeat (redeliveries, a caller's
	// WithID), so a publish whose id is already in flight here carries its
	// sequence number instead, and matching by id cannot mark the wrong
	// one. A copied header from an earlier publish must not mislead it.
	// The caller's map is shared, not written: copy it only to change it.
	headers := amqp.Table(m.Headers)
	if _, stale := m.Headers[HeaderPublishSeq]; stale || tagged {
		headers = make(amqp.Table, len(m.Headers)+1)
		for k, v := range m.Headers {
			headers[k] = v
		}
		delete(headers, HeaderPublishSeq)
		if tagged {
			headers[HeaderPublishSeq] = int64(seq)
		}
	}
	mode := amqp.Persistent
	if m.Transient {
		mode = amqp.Transient
	}
	var expiration string
	if m.Expiration > 0 {
		expiration = strconv.FormatInt(max(m.Expiration.Milliseconds(), 1), 10)
	}
	err := pc.ch.Publish(m.Exchange, m.Key, true, false, amqp.Publishing{
		Headers:         headers,
		ContentType:     m.ContentType,
		ContentEncoding: m.Encoding,
		DeliveryMode:    mode,
		Priority:        m.Priority,
		CorrelationId:   m.CorrelationID,
		ReplyTo:         m.ReplyTo,
		MessageId:       m.MessageID,
		Timestamp:       m.Timestamp,
		Expiration:      expiration,
		Body:            m.Body,
	})

	pc.mu.Lock()
	pc.writing = nil
	orphaned, failErr := pc.orphaned, pc.failErr
	pc.orphaned = false
	mine := orphaned
	if errors.Is(err, amqp.ErrClosed) {
		pc.dead = true // so that the resend below does not come back here
	}
	if !orphaned && err != nil {
		// amqp091-go hands the sequence number out again, so the entry
		// must go. Only this goroutine appends, so it is the last one,
		// unless the listener settled it already.
		if n := len(pc.pending); n > 0 && pc.pending[n-1] == c {
			pc.pending[n-1] = nil
			pc.pending = pc.pending[:n-1]
			pc.forget(c)
			mine = true
		}
	}
	pc.mu.Unlock()
	switch {
	case !mine:
		// The listener settles it.
	case errors.Is(err, amqp.ErrClosed):
		return false
	case err == nil:
		// Written, then the channel closed before the broker confirmed it.
		c.resolve(failErr)
	default:
		// A write that failed mid-frame (a reset socket): the message may
		// be partly sent, and the connection is going down.
		c.resolve(fmt.Errorf("publish to exchange %q key %q: %w: %v", m.Exchange, m.Key, ErrConnectionLost, err))
	}
	return true
}

func (pc *pubChannel) listen(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.mu.Lock()
			if seq, ok := r.Headers[HeaderPublishSeq].(int64); ok {
				pc.returned[uint64(seq)] = r
			} else if c, ok := pc.untagged[r.MessageId]; ok {
				pc.returned[c.seq] = r
			}
			pc.mu.Unlock()
		case cf, ok := <-confirms:
			if !ok {
				pc.fail(nil)
				return
			}
			pc.confirm(cf)
		case e, ok := <-closes:
			// Acks the broker sent before the close may still be in the
			// buffer: settle them first, or fail would report publishes
			// the broker confirmed as lost.
			pc.drain(confirms)
			if ok && e != nil {
				pc.fail(e)
			} else {
				pc.fail(nil)
			}
			return
		}
	}
}

// drain settles the confirms amqp091-go delivered before the channel's
// close. It closes the confirm channel right after sending the close, so
// the wait is short; the timer only guards against that changing.
func (pc *pubChannel) drain(confirms <-chan amqp.Confirmation) {
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case cf, ok := <-confirms:
			if !ok {
				return
			}
			pc.confirm(cf)
		case <-timer.C:
			return
		}
	}
}

func (pc *pubChannel) confirm(cf amqp.Confirmation) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for len(pc.pending) > 0 && pc.pending[0].seq <= cf.DeliveryTag {
		c := pc.pending[0]
		pc.pending[0] = nil
		pc.pending = pc.pending[1:]
		pc.forget(c)
		if c.seq < cf.DeliveryTag {
			// amqp091-go drops a notification its listener did not take
			// within 5s. The listener only ever waits for pc.mu, held
			// briefly, so this should not happen; if it does, the outcome
			// is unknown and the caller must hear so.
			delete(pc.returned, c.seq)
			c.resolve(fmt.Errorf("%w: confirm %d was never delivered", ErrConnectionLost, c.seq))
			continue
		}
		if r, ok := pc.returned[c.seq]; ok {
			delete(pc.returned, c.seq)
			c.resolve(&UnroutableError{Exchange: r.Exchange, Key: r.RoutingKey, Reply: r.ReplyText})
			continue
		}
		if !cf.Ack {
			c.resolve(fmt.Errorf("publish to exchange %q key %q: %w", c.m.Exchange, c.m.Key, ErrNacked))
			if !c.m.Refusable {
				pc.retire()
			}
			continue
		}
		c.resolve(nil)
	}
	if len(pc.pending) == 0 {
		pc.pending = nil // let the backing array go
	}
}

// retire closes the channel after a nack, once; under pc.mu. A nack is the
// broker failing to take a message, which is rare, and on RabbitMQ 3.10 a
// channel that published to a quorum queue while its leader died goes on
// nacking every later publish to that queue, while a new channel's are
// taken (TestFaultClusterLeaderKilled). The close fails what is in
// flight as lost and sends what is queued on a new channel.
func (pc *pubChannel) retire() {
	if pc.down() {
		return
	}
	pc.retiring = true
	pc.log.Warn("the broker nacked a publish; replacing the publisher channel")
	go func() { _ = pc.ch.Close() }()
}

// fail settles everything on a closed channel: written publishes may have
// reached the broker, so they fail; queued ones did not and go out again
// on a live channel. The one the writer is writing is left to it.
func (pc *pubChannel) fail(reason *amqp.Error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.failErr != nil {
		return
	}
	close(pc.stop)
	err := ErrConnectionLost
	if reason != nil {
		err = fmt.Errorf("%w: %v", ErrConnectionLost, reason)
	}
	pc.failErr = err
	for _, c := range pc.pending {
		if c == pc.writing {
			pc.orphaned = true
			continue
		}
		c.resolve(err)
	}
	pc.pending = nil
	if len(pc.queue) > 0 {
		go pc.pub.resend(pc.queue)
	}
	pc.queue = nil
	clear(pc.untagged)
	if reason != nil {
		pc.log.Warn("publisher channel closed", zap.Error(reason))
	}
}

// forget drops c from the untagged index once it is settled; under pc.mu.
func (pc *pubChannel) forget(c *Confirm) {
	if pc.untagged[c.m.MessageID] == c {
		delete(pc.untagged, c.m.MessageID)
	}
}
