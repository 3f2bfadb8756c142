package result

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
)

// ReplyQueueExpiry is how long the broker keeps a reply queue that has no
// consumer: long enough to ride out a reconnect, short enough that the
// queue of a process that died does not stay.
const ReplyQueueExpiry = 10 * time.Minute

// AMQP is the built-in Backend: one reply queue per process
// ("warren.reply.<uuid>") and one consumer on it, however many tasks are
// awaited. It is a durable queue with x-expires rather than an exclusive
// one (or direct reply-to), so that updates published during a connection
// cut wait in it and arrive after the reconnect; an exclusive queue would
// vanish with the connection and take them along. It consumes on a
// connection of its own, which only consumes: RabbitMQ blocks a connection
// that publishes during a memory or disk alarm, and results still arrive
// on this one.
type AMQP struct {
	queue   string
	sup     *broker.Supervisor
	cons    *broker.Consumer
	log     *zap.Logger
	cancel  context.CancelFunc
	done    chan struct{} // receive returned
	runDone chan struct{} // the consumer's Run returned

	declared atomic.Bool // the reply queue has existed: it is durable and outlives reconnects

	mu     sync.Mutex
	subs   map[string]*Subscription
	closed bool
}

// NewAMQP connects to the broker of cfg (in the background, as a producer
// does) and starts a reply queue and its consumer. Give the producer that
// publishes the awaited tasks the backend (producer.Config.Results) to
// share one reply queue among producers; a producer without one makes its
// own on first use. cfg.Metrics is not used.
func NewAMQP(cfg conn.Config) (*AMQP, error) {
	cfg = cfg.WithDefaults()
	sup, err := broker.New(broker.Config{Conn: cfg, Role: "results"})
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	b := &AMQP{
		queue:   routing.ReplyPrefix + uuid.NewString(),
		sup:     sup,
		log:     cfg.Logger,
		done:    make(chan struct{}),
		runDone: make(chan struct{}),
		subs:    make(map[string]*Subscription),
	}
	b.cons = sup.NewConsumer(b.queue, 256, nil)
	b.cons.DeclareOnSubscribe(routing.Queue{
		Name:          b.queue,
		Args:          map[string]any{"x-expires": ReplyQueueExpiry.Milliseconds()},
		NoDeadLetters: true,
	}, func() { b.loseAll(ErrLost) })
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { defer close(b.runDone); b.cons.Run(ctx) }()
	go b.receive(ctx)
	return b, nil
}

// WaitReady waits until the reply queue exists. The consumer declares it in
// the background; a task published before that would have its updates
// returned as unroutable, which a worker takes to mean that nobody awaits
// them, and the result would be lost.
func (b *AMQP) WaitReady(ctx context.Context) error {
	for !b.declared.Load() {
		if b.cons.Consuming() {
			b.declared.Store(true)
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("result: waiting for reply queue %s: %w", b.queue, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// ReplyTo is the reply queue's name.
func (b *AMQP) ReplyTo() string { return b.queue }

// Subscribe follows task id.
func (b *AMQP) Subscribe(id string) *Subscription {
	s := NewSubscription(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.Lose(ErrLost)
		return s
	}
	b.subs[id] = s
	return s
}

// Unsubscribe stops following id.
func (b *AMQP) Unsubscribe(id string) {
	b.mu.Lock()
	delete(b.subs, id)
	b.mu.Unlock()
}

// Pending returns how many tasks are awaited.
func (b *AMQP) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Close stops consuming and disconnects; open subscriptions end with
// ErrLost. The reply queue goes when the broker's expiry runs out.
func (b *AMQP) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	<-b.done
	// Only once Run has returned: its basic.cancel and our channel.close
	// must not be in flight together on one channel.
	<-b.runDone
	b.cons.Close()
	b.loseAll(ErrLost)
	return b.sup.Close()
}

func (b *AMQP) loseAll(err error) {
	b.mu.Lock()
	subs := b.subs
	b.subs = make(map[string]*Subscription)
	b.mu.Unlock()
	if len(subs) > 0 {
		b.log.Warn("reply queue was recreated or closed; awaited results are lost", zap.Int("tasks", len(subs)))
	}
	for _, s := range subs {
		s.Lose(err)
	}
}

func (b *AMQP) receive(ctx context.Context) {
	defer close(b.done)
	for {
		select {
		case d := <-b.cons.Deliveries():
			b.deliver(d)
		case <-ctx.Done():
			return
		}
	}
}

func (b *AMQP) deliver(d *broker.Delivery) {
	defer func() { _ = d.Ack() }() // an update nobody awaits is simply dropped
	u, err := DecodeUpdate(d.Body)
	if err != nil {
		b.log.Warn("dropping an undecodable result update", zap.Error(err))
		return
	}
	id := d.CorrelationID
	if id == "" {
		id = u.ID
	}
	b.mu.Lock()
	s := b.subs[id]
	b.mu.Unlock()
	if s == nil {
		return
	}
	if s.Deliver(u) {
		b.Unsubscribe(id)
	}
}
