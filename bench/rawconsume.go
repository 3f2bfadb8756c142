package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The raw consumers the bench measures warren against. The best of them in
// each round is the baseline: an expert would pick whichever is fastest
// for the workload.
const (
	// perMessage acks each delivery on its own, from a pool of
	// -concurrency goroutines that all read the delivery channel.
	perMessage = "per-message"
	// batchedInline runs the handler in the consuming goroutine, so
	// deliveries finish in tag order, and acks with multiple=true up to
	// the last finished tag.
	batchedInline = "batched-inline"
	// batchedPool hands deliveries to a pool of -concurrency goroutines,
	// which finish out of order; one goroutine acks with multiple=true up
	// to the highest tag below which every delivery has finished.
	batchedPool = "batched-pool"
)

// rawVariants are all the raw consumers, in the order the tables list them.
func rawVariants() []string { return []string{perMessage, batchedInline, batchedPool} }

var errDeliveriesClosed = errors.New("delivery channel closed before the last message")

// tally records the handler starts of one consume: the first start and
// each message's wait from its enqueue.
type tally struct {
	first   atomic.Int64 // Unix ns of the first handler start
	started atomic.Int64
	waits   []time.Duration
}

// handle is the benchmark's handler: it decodes the payload (which the
// publisher stamped with its send time) and does nothing else.
func (t *tally) handle(d *amqp.Delivery) error {
	now := time.Now()
	var pl Payload
	if err := json.Unmarshal(d.Body, &pl); err != nil {
		return err
	}
	t.first.CompareAndSwap(0, now.UnixNano())
	if i := t.started.Add(1); int(i) <= len(t.waits) {
		t.waits[i-1] = now.Sub(time.Unix(0, pl.Sent))
	}
	return nil
}

// ackEvery is the batched consumers' k: they ack every k deliveries, and
// whenever no delivery is waiting.
func ackEvery(p params) int {
	if p.AckEvery > 0 {
		return p.AckEvery
	}
	return max(p.Prefetch/4, 1)
}

// rawConsume consumes n messages with the given variant, acking each after
// the handler, and returns the rate from the first handler start to the
// last ack and each message's wait. It closes started, if given, once the
// consumer is registered.
func rawConsume(ctx context.Context, p params, variant string, n int, started chan<- struct{}) (result, []time.Duration, error) {
	conn, err := amqp.Dial(consumeNode(p))
	if err != nil {
		return result{}, nil, err
	}
	// Closing the connection closes the delivery channel, which ends the
	// consume loop if it is still running (on a timeout or a cancel).
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return result{}, nil, err
	}
	if err := ch.Qos(p.Prefetch, 0, false); err != nil {
		return result{}, nil, err
	}
	dels, err := ch.Consume(p.Queue, "", false, false, false, false, nil)
	if err != nil {
		return result{}, nil, err
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if started != nil {
		close(started)
	}
	t := &tally{waits: make([]time.Duration, n)}
	done := make(chan error, 1)
	go func() {
		switch variant {
		case perMessage:
			done <- consumeEach(dels, p.Concurrency, n, t)
		case batchedInline:
			done <- consumeInline(ch, dels, ackEvery(p), n, t)
		case batchedPool:
			done <- consumePool(ch, dels, p.Concurrency, ackEvery(p), n, t)
		default:
			done <- fmt.Errorf("unknown raw variant %q", variant)
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			// The broker's reason, if it closed the channel, says more
			// than the "not open" of the call that found it closed.
			select {
			case reason := <-closed:
				if reason != nil {
					return result{}, nil, fmt.Errorf("%w (channel closed: %v)", err, reason)
				}
			default:
			}
			return result{}, nil, err
		}
	case <-ctx.Done():
		return result{}, nil, ctx.Err()
	case <-time.After(10 * time.Minute):
		return result{}, nil, errors.New("timed out")
	}
	el := time.Since(time.Unix(0, t.first.Load()))
	return result{Rate: float64(n) / el.Seconds()}, t.waits, nil
}

// consumeEach is the per-message consumer: workers goroutines read the
// delivery channel, and each acks its own delivery after the handler.
// It returns once n deliveries are settled.
func consumeEach(dels <-chan amqp.Delivery, workers, n int, t *tally) error {
	var settled atomic.Int64
	finished := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case d, ok := <-dels:
					if !ok {
						return
					}
					if t.handle(&d) != nil {
						_ = d.Nack(false, false)
					} else {
						_ = d.Ack(false)
					}
					if settled.Add(1) == int64(n) {
						once.Do(func() { close(finished) })
					}
				case <-finished:
					return
				}
			}
		})
	}
	wg.Wait()
	if settled.Load() < int64(n) {
		return errDeliveriesClosed
	}
	return nil
}

// consumeInline is the batched consumer with the handler in the consuming
// goroutine: tags finish in order, so one ack with multiple=true covers
// every delivery up to the last handled. It acks every k deliveries, and
// before it would block for the next one, so that a quiet queue is never
// left holding unacked messages.
func consumeInline(ch *amqp.Channel, dels <-chan amqp.Delivery, every, n int, t *tally) error {
	var last uint64 // the last handled tag, acked or not
	pending := 0    // handled deliveries not yet acked
	flush := func() error {
		if pending == 0 {
			return nil
		}
		pending = 0
		return ch.Ack(last, true)
	}
	for range n {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-dels:
		default:
			if err := flush(); err != nil {
				return err
			}
			d, ok = <-dels
		}
		if !ok {
			return errDeliveriesClosed
		}
		if t.handle(&d) != nil {
			// Ack what came before, so the multiple ack that follows
			// does not cover this tag after it is nacked.
			if err := flush(); err != nil {
				return err
			}
			if err := d.Nack(false, false); err != nil {
				return err
			}
			continue
		}
		last = d.DeliveryTag
		if pending++; pending >= every {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// consumePool is the batched consumer with a pool of workers goroutines.
// One goroutine reads the delivery channel, hands each delivery to the
// pool and collects finished tags; as handlers finish out of order, an ack
// with multiple=true may cover only the contiguous prefix of finished tags.
// It acks when that prefix has grown by k, and before it blocks, whenever
// nothing is ready: no delivery waiting (or none of the pool free for the
// one it holds) and no tag finished.
func consumePool(ch *amqp.Channel, dels <-chan amqp.Delivery, workers, every, n int, t *tally) error {
	work := make(chan amqp.Delivery)
	done := make(chan uint64, workers)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range work {
				if t.handle(&d) != nil {
					// Nack before reporting the tag finished, so that no
					// multiple ack can cover it first.
					_ = d.Nack(false, false)
				}
				select {
				case done <- d.DeliveryTag:
				case <-quit:
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer close(quit)
	defer close(work)

	var fin finished
	settled := 0
	finish := func(tag uint64) error {
		settled++
		if upTo, ok := fin.add(tag, every); ok {
			return ch.Ack(upTo, true)
		}
		return nil
	}
	flush := func() error {
		if upTo, ok := fin.flush(); ok {
			return ch.Ack(upTo, true)
		}
		return nil
	}

	var held amqp.Delivery // a delivery waiting for a free worker
	holding := false
	take := func(d amqp.Delivery, ok bool) error {
		if !ok {
			return errDeliveriesClosed
		}
		held, holding = d, true
		return nil
	}
	for settled < n {
		in, out := dels, chan<- amqp.Delivery(nil)
		if holding {
			in, out = nil, work
		}
		var err error
		select {
		case d, ok := <-in:
			err = take(d, ok)
		case out <- held:
			holding = false
		case tag := <-done:
			err = finish(tag)
		default:
			// Nothing is ready: ack the finished prefix, then wait.
			if err := flush(); err != nil {
				return err
			}
			select {
			case d, ok := <-in:
				err = take(d, ok)
			case out <- held:
				holding = false
			case tag := <-done:
				err = finish(tag)
			}
		}
		if err != nil {
			return err
		}
	}
	return flush()
}

// finished tracks the delivery tags of one channel whose handlers have
// finished, in any order, and how far an ack with multiple=true may reach:
// up to the highest tag below which every tag has finished. Tags on a
// channel start at 1 and rise by one per delivery.
type finished struct {
	acked  uint64              // the highest tag acked
	prefix uint64              // the highest tag with every tag up to it finished
	above  map[uint64]struct{} // finished tags above prefix+1
}

// add records tag as finished and, when the contiguous prefix has grown by
// every or more since the last ack, returns the tag to ack up to.
func (f *finished) add(tag uint64, every int) (uint64, bool) {
	if tag != f.prefix+1 {
		if f.above == nil {
			f.above = make(map[uint64]struct{})
		}
		f.above[tag] = struct{}{}
		return 0, false
	}
	f.prefix = tag
	for {
		if _, ok := f.above[f.prefix+1]; !ok {
			break
		}
		delete(f.above, f.prefix+1)
		f.prefix++
	}
	if f.prefix-f.acked < uint64(every) {
		return 0, false
	}
	return f.flush()
}

// flush returns the tag to ack up to, if the prefix has grown since the
// last ack.
func (f *finished) flush() (uint64, bool) {
	if f.prefix == f.acked {
		return 0, false
	}
	f.acked = f.prefix
	return f.acked, true
}
