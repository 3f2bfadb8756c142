package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
)

// Delivery is one message taken from a queue. It remembers the generation of
// the channel it came on: Ack and Nack on a delivery whose channel has died
// are dropped with ErrStaleDelivery, never sent on a newer channel where the
// same delivery tag names a different message.
type Delivery struct {
	Queue         string
	MessageID     string
	ContentType   string
	Encoding      string
	Headers       map[string]any
	Body          []byte
	Timestamp     time.Time
	Priority      uint8
	CorrelationID string
	ReplyTo       string
	Redelivered   bool
	Exchange      string
	RoutingKey    string

	// Received is when the consumer took it from amqp091-go, at or after
	// the broker sent it: the broker's consumer_timeout clock started
	// before, while it waited in the prefetch window.
	Received time.Time

	Gen uint64 // generation of the channel it came on
	Tag uint64 // delivery tag, meaningful on that channel only

	// Settled, if set, is called by whoever settles the delivery once it
	// has: a worker's limit waits for it to give its permit back.
	Settled func()

	ch *amqp.Channel
	c  *Consumer // nil for a Reader's deliveries, whose channel the caller holds
	a  *acker    // the channel's acker; nil for a Reader's deliveries
}

// Live reports whether the delivery's channel is still the consumer's live
// one (for a Reader's delivery: whether the Reader's channel is open), so
// that an ack would reach the broker. When it is not, the broker has
// already taken the delivery back (it redelivers it): anything done on the
// delivery's behalf, such as publishing a retry copy, would fork the task.
func (d *Delivery) Live() bool {
	if d.c == nil {
		return !d.ch.IsClosed()
	}
	return d.c.live(d.Gen) && !d.ch.IsClosed()
}

// Ack acknowledges the delivery on its own channel, if that channel is
// still the consumer's live one. A consumer's acks are coalesced (see
// acker): the ack reaches the broker within two timer intervals (4 ms),
// with others in one frame, and is lost with its channel if that dies
// first, in which case the broker redelivers the message.
func (d *Delivery) Ack() error {
	if d.c != nil && !d.c.live(d.Gen) {
		d.c.stale.Add(1)
		return ErrStaleDelivery
	}
	if d.a != nil {
		return d.a.ack(d.Tag)
	}
	return d.ch.Ack(d.Tag, false)
}

// Nack rejects the delivery; with requeue the broker gives it to a consumer
// again. Stale deliveries are dropped as with Ack.
func (d *Delivery) Nack(requeue bool) error {
	if d.c != nil && !d.c.live(d.Gen) {
		d.c.stale.Add(1)
		return ErrStaleDelivery
	}
	if d.a != nil {
		return d.a.nack(d.Tag, requeue, true)
	}
	return d.ch.Nack(d.Tag, false, requeue)
}

// cancelTimeout bounds the wait for the broker's cancel-ok at shutdown.
const cancelTimeout = 5 * time.Second

// Consumer consumes one queue with a per-consumer prefetch window and
// re-subscribes on every new channel or connection until it is stopped.
type Consumer struct {
	sup      *Supervisor
	queue    string
	prefetch int
	out      chan *Delivery
	log      *zap.Logger

	gen       atomic.Uint64 // generation of the live channel; 0 when none
	consuming atomic.Bool
	stale     atomic.Uint64

	mu    sync.Mutex
	ch    *amqp.Channel
	acker *acker // the live channel's
	tag   string

	declare     *routing.Queue    // declared on every subscribe, if set
	onRecreated func()            // called when declare had to create it anew
	subscribed  bool              // a subscribe has succeeded before
	topo        *routing.Topology // declared on every subscribe, if set
	backoff     retry.Backoff     // spaces failed subscribes; the supervisor's unless set

	quiet     bool                // Quiet: subscribes logged at debug
	closed    chan *amqp.Error    // why the live channel closed (Run's goroutine only)
	onTimeout func(time.Duration) // see OnConsumerTimeout
}

// Quiet logs the consumer's subscribes at debug rather than info: for a
// consumer made for one message, such as a worker's limit's, whose
// subscribes would otherwise fill the log at the task rate.
func (c *Consumer) Quiet() { c.quiet = true }

// DeclareOnSubscribe makes the consumer declare q before each subscribe,
// and call onRecreated when, after the first subscribe, q had to be created
// anew (it expired or the broker lost it, and its messages with it). For
// queues a process owns, such as a reply queue.
func (c *Consumer) DeclareOnSubscribe(q routing.Queue, onRecreated func()) {
	c.declare, c.onRecreated = &q, onRecreated
}

// DeclareTopologyOnSubscribe makes the consumer declare t before each
// subscribe, on the connection it subscribes on, and spaces failed
// subscribes by backoff. For best-effort queues of a process's own, such as
// presence's Exclusive command queue, kept out of the supervisor's
// topology: a declaration that fails there fails the connection, and with
// it every other consumer; here it fails only this consumer's subscribe,
// which is tried again after backoff.
func (c *Consumer) DeclareTopologyOnSubscribe(t routing.Topology, backoff retry.Backoff) {
	c.topo, c.backoff = &t, backoff
}

// declareQueue declares c.declare and reports whether it existed before.
func (c *Consumer) declareQueue(sess *Session) (existed bool, err error) {
	probe, err := sess.Conn.Channel()
	if err != nil {
		return false, err
	}
	_, perr := probe.QueueDeclarePassive(c.declare.Name, true, false, false, false, nil)
	_ = probe.Close()
	ch, err := sess.Conn.Channel()
	if err != nil {
		return false, err
	}
	defer ch.Close()
	if err := queueDeclare(ch, *c.declare); err != nil {
		return false, fmt.Errorf("declare queue %q: %w", c.declare.Name, err)
	}
	return perr == nil, nil
}

// NewConsumer returns a consumer of queue. Deliveries arrive on out once
// Run is called; out may be shared by several consumers, so that whoever
// receives from it takes the next delivery of any queue that has one. A nil
// out gives the consumer an unbuffered channel of its own.
func (s *Supervisor) NewConsumer(queue string, prefetch int, out chan *Delivery) *Consumer {
	if prefetch < 1 {
		prefetch = 1
	}
	if out == nil {
		out = make(chan *Delivery)
	}
	return &Consumer{
		sup:      s,
		queue:    queue,
		prefetch: prefetch,
		out:      out,
		log:      s.log.With(zap.String("queue", queue)),
	}
}

// Deliveries yields messages. Keep it unbuffered: a delivery then waits in
// the prefetch window, not in warren, until a handler is free to take it.
func (c *Consumer) Deliveries() <-chan *Delivery { return c.out }

// Consuming reports whether the consumer is subscribed now.
func (c *Consumer) Consuming() bool { return c.consuming.Load() }

// AckStats returns the acks made on the live channel and not yet sent, and
// the basic.ack frames sent on it: coalescing shows as fewer frames than
// acks.
func (c *Consumer) AckStats() (pending int, frames uint64) {
	c.mu.Lock()
	a := c.acker
	c.mu.Unlock()
	if a == nil {
		return 0, 0
	}
	return a.stats()
}

// StaleAcks counts acks and nacks dropped because their channel had died.
func (c *Consumer) StaleAcks() uint64 { return c.stale.Load() }

func (c *Consumer) live(gen uint64) bool { return gen != 0 && c.gen.Load() == gen }

// Run consumes until ctx is done, re-subscribing after channel or
// connection loss. On return it has cancelled its subscription and handed
// every delivery not yet taken by a handler back to the queue; the channel
// stays open so that handlers still running can ack (unless the broker did
// not confirm the cancel in time: then the channel is closed, and their
// deliveries go back with it). Call Close after them.
func (c *Consumer) Run(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		ch, dels, err := c.subscribe(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.NotFound {
				// The queue was deleted under us: declare it again.
				if derr := c.sup.Redeclare(ctx); derr != nil {
					c.log.Warn("re-declaring the topology failed", zap.Error(derr))
				}
			}
			attempt++
			b := c.backoff
			if b == (retry.Backoff{}) {
				b = c.sup.cfg.Backoff
			}
			d := b.Next(attempt)
			c.log.Warn("subscribe failed", zap.Error(err), zap.Duration("retry_in", d))
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			continue
		}
		attempt = 0
		stopped, reason, haveReason := c.forward(ctx, ch, dels)
		if stopped {
			return
		}
		c.consuming.Store(false)
		// The deliveries ended or the channel closed: the channel died, or
		// the broker cancelled the consumer (its queue was deleted) and
		// left the channel open. Close it, so that its unacked messages go
		// back to the queue now; acks of handlers still running on it are
		// stale and dropped.
		c.gen.Store(0)
		c.mu.Lock()
		if ch.IsClosed() {
			c.acker.close()
		} else {
			// The broker cancelled the consumer but the channel lives:
			// send the acks made before closing it requeues their messages.
			c.acker.flushAndClose()
		}
		c.mu.Unlock()
		_ = ch.Close()
		if !haveReason {
			select {
			case reason = <-c.closed: // sent before the deliveries end
			default:
			}
		}
		if timeout, ok := consumerTimeout(reason); ok {
			// The worker's hook logs it at error level, with what to do.
			c.log.Info("the broker closed the consumer channel: a delivery stayed unacked longer than its consumer_timeout; every unacked delivery on it is requeued",
				zap.Duration("consumer_timeout", timeout), zap.Error(reason))
			if c.onTimeout != nil {
				c.onTimeout(timeout)
			}
		} else if reason != nil {
			c.log.Warn("consumer channel closed; re-subscribing", zap.Error(reason))
		} else {
			c.log.Warn("consumer channel closed; re-subscribing")
		}
	}
}

func (c *Consumer) subscribe(ctx context.Context) (*amqp.Channel, <-chan amqp.Delivery, error) {
	sess, err := c.sup.Session(ctx)
	if err != nil {
		return nil, nil, err
	}
	if c.topo != nil {
		if err := Declare(sess.Conn, *c.topo); err != nil {
			return nil, nil, err
		}
	}
	if c.declare != nil {
		existed, err := c.declareQueue(sess)
		if err != nil {
			return nil, nil, err
		}
		if !existed && c.subscribed && c.onRecreated != nil {
			c.onRecreated()
		}
	}
	ch, err := sess.Conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	// Per-consumer QoS (global=false): global QoS is refused by quorum queues.
	if err := ch.Qos(c.prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, nil, err
	}
	c.closed = ch.NotifyClose(make(chan *amqp.Error, 1))
	gen := c.sup.NextChannelGen()
	tag := fmt.Sprintf("warren-%d-%s-%d", os.Getpid(), c.queue, gen)
	if len(tag) > 255 {
		tag = fmt.Sprintf("warren-%d-%d", os.Getpid(), gen)
	}
	dels, err := ch.Consume(c.queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, nil, err
	}
	c.mu.Lock()
	c.ch = ch
	c.acker = newAcker(ch, c.prefetch)
	c.tag = tag
	c.gen.Store(gen)
	c.mu.Unlock()
	c.consuming.Store(true)
	c.subscribed = true
	if c.quiet {
		c.log.Debug("consuming", zap.Int("prefetch", c.prefetch), zap.Uint64("channel_gen", gen))
	} else {
		c.log.Info("consuming", zap.Int("prefetch", c.prefetch), zap.Uint64("channel_gen", gen))
	}
	return ch, dels, nil
}

// forward hands deliveries to handlers until the channel dies (stopped
// false) or ctx is done (stopped true). While every handler is busy it waits
// with a delivery in hand, and still watches the channel: if it closes
// meanwhile, that delivery is already back in the queue, so it is dropped
// and the consumer re-subscribes at once, rather than when a handler frees
// up (Consuming, and so readiness, tells the truth meanwhile). reason is
// the channel's close reason when forward took it from c.closed.
func (c *Consumer) forward(ctx context.Context, ch *amqp.Channel, dels <-chan amqp.Delivery) (stopped bool, reason *amqp.Error, haveReason bool) {
	gen := c.gen.Load()
	c.mu.Lock()
	a := c.acker
	c.mu.Unlock()
	for {
		var ad amqp.Delivery
		var ok bool
		select {
		case ad, ok = <-dels:
		default:
			// None waiting: the acks made can go out now (acker.idle).
			a.idle()
			select {
			case <-ctx.Done():
				c.stop(ch, dels, nil)
				return true, nil, false
			case ad, ok = <-dels:
			}
		}
		if !ok {
			return false, nil, false
		}
		d := c.wrap(&ad, ch, gen, a)
		a.handed() // before the hand-over: its handler may ack at once
		if ctx.Err() != nil {
			// Stopping wins over a delivery that was ready too, so that
			// nothing new starts after it.
			c.stop(ch, dels, d)
			return true, nil, false
		}
		select {
		case c.out <- d:
		case reason = <-c.closed:
			return false, reason, true
		case <-ctx.Done():
			c.stop(ch, dels, d)
			return true, nil, false
		}
	}
}

func (c *Consumer) wrap(ad *amqp.Delivery, ch *amqp.Channel, gen uint64, a *acker) *Delivery {
	return &Delivery{
		Queue:         c.queue,
		MessageID:     ad.MessageId,
		ContentType:   ad.ContentType,
		Encoding:      ad.ContentEncoding,
		Headers:       ad.Headers,
		Body:          ad.Body,
		Timestamp:     ad.Timestamp,
		Priority:      ad.Priority,
		CorrelationID: ad.CorrelationId,
		ReplyTo:       ad.ReplyTo,
		Redelivered:   ad.Redelivered,
		Exchange:      ad.Exchange,
		RoutingKey:    ad.RoutingKey,
		Received:      time.Now(),
		Gen:           gen,
		Tag:           ad.DeliveryTag,
		ch:            ch,
		c:             c,
		a:             a,
	}
}

// stop cancels the subscription and requeues what the broker had already
// sent but no handler took: held, then whatever amqp091-go still buffers.
func (c *Consumer) stop(ch *amqp.Channel, dels <-chan amqp.Delivery, held *Delivery) {
	c.consuming.Store(false)
	if held != nil {
		_ = held.Nack(true)
	}
	// Cancel with wait: amqp091-go then closes dels after flushing its
	// buffer. A broker that does not answer (a silent path, a blocked
	// connection) must not hold shutdown up: after cancelTimeout the
	// channel is closed, which hands every unacked delivery back.
	c.mu.Lock()
	tag := c.tag
	c.mu.Unlock()
	cancelled := make(chan error, 1)
	go func() { cancelled <- ch.Cancel(tag, false) }()
	select {
	case err := <-cancelled:
		if err != nil {
			return // the channel is gone, and with it every unacked delivery
		}
	case <-time.After(cancelTimeout):
		c.log.Warn("broker did not confirm the consumer cancel; closing the channel", zap.Duration("after", cancelTimeout))
		c.Close()
		return
	}
	c.mu.Lock()
	a := c.acker
	c.mu.Unlock()
	for ad := range dels {
		_ = a.nack(ad.DeliveryTag, true, false)
	}
}

// Drop closes the live channel without sending its pending acks, so that
// the broker takes back every delivery unacked on it, and Run subscribes
// again on a new channel. For a consumer that must give up what it holds,
// such as a scheduler that can no longer tell that it leads.
func (c *Consumer) Drop() {
	c.mu.Lock()
	ch := c.ch
	c.mu.Unlock()
	if ch != nil {
		_ = ch.Close()
	}
}

// Close sends the acks made and closes the consumer's channel. The broker
// requeues every delivery still unacked on it, so call it after in-flight
// handlers finished.
func (c *Consumer) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Store(0)
	c.consuming.Store(false)
	if c.acker != nil {
		c.acker.flushAndClose()
	}
	if c.ch != nil {
		_ = c.ch.Close()
		c.ch = nil
	}
}
