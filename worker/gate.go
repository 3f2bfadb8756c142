package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
)

// A fleet-wide concurrency limit of K on a queue is K permit queues
// (routing.PermitQueue), each a single-active-consumer quorum queue that
// holds a token. Every worker with the limit runs lanes; a lane subscribes
// to one permit queue, and the broker delivers that queue's token to one
// subscriber at a time, which may then take one task from the work queue
// with basic.get and run it. Done, the lane cancels its subscription,
// which makes the next subscriber active, puts a fresh token in and acks
// the one it held: the permit passes on without coming back to the queue,
// so a quorum queue's delivery count never grows. A worker that dies
// closes its channels, and the broker hands its token on, as it takes its
// task back. docs/decisions.md says why permits work this way.

// Gate timings.
const (
	// permitRotate is how long a lane waits for a token before it tries
	// another permit queue, when one is free, so that a worker whose
	// PerWorker is below the fleet's limit does not wait on a permit
	// another worker holds while another permit sits idle.
	permitRotate = time.Second
	// permitOffer is how long a lane waits for a token before it checks
	// that its permit queue has one and, if none is ready, puts one in.
	permitOffer = 500 * time.Millisecond
	// permitRenew is how often a lane that holds a token swaps it for a
	// fresh one, so that the broker's consumer_timeout never sees a token
	// held that long.
	permitRenew = time.Minute
	// pollMax caps the wait between basic.gets of an empty work queue by a
	// lane holding a permit: the delay a task arriving then may see.
	pollMax = 250 * time.Millisecond
)

// gate runs the lanes of one queue's fleet-wide limit.
type gate struct {
	w       *Worker
	queue   string
	out     chan<- *broker.Delivery
	free    chan int      // permit queues no lane of this worker uses, oldest first
	abandon chan struct{} // closed when the worker stops waiting for its handlers
	lanes   []*lane
	log     *zap.Logger
	running atomic.Bool
}

// lane takes one permit at a time and runs one task under it.
type lane struct {
	g      *gate
	reader *broker.Reader
}

func (w *Worker) newGate(queue string, l Limit, out chan<- *broker.Delivery) *gate {
	g := &gate{w: w, queue: queue, out: out, free: make(chan int, l.Concurrency), abandon: make(chan struct{}),
		log: w.log.With(zap.String("queue", queue))}
	for i := range l.Concurrency {
		g.free <- i
	}
	n := l.Concurrency
	if l.PerWorker > 0 {
		n = min(n, l.PerWorker)
	}
	for range n {
		g.lanes = append(g.lanes, &lane{g: g})
	}
	return g
}

// run runs the lanes until ctx is done. sending is done once no lane will
// send to out again; run returns once every lane has given back its
// permit, after the tasks it started were settled.
func (g *gate) run(ctx context.Context, sending *sync.WaitGroup) {
	g.running.Store(true)
	defer g.running.Store(false)
	var wg sync.WaitGroup
	for _, l := range g.lanes {
		wg.Add(1)
		sending.Add(1)
		go func() { defer wg.Done(); l.run(ctx, sending) }()
	}
	wg.Wait()
}

// ready reports whether the lanes run: each is subscribed to a permit
// queue or runs a task under one, but for the moment it takes to pass a
// permit on, which readiness should not flap with.
func (g *gate) ready() bool { return g.running.Load() }

func (l *lane) run(ctx context.Context, sending *sync.WaitGroup) {
	stopSending := sync.OnceFunc(sending.Done)
	defer stopSending()
	defer func() {
		if l.reader != nil {
			_ = l.reader.Close()
		}
	}()
	for ctx.Err() == nil {
		var i int
		select {
		case i = <-l.g.free:
		case <-ctx.Done():
			return
		}
		l.hold(ctx, i, stopSending)
		l.g.free <- i
	}
}

// hold subscribes to permit queue i, and if its token comes, runs one task
// under it and passes the permit on.
func (l *lane) hold(ctx context.Context, i int, stopSending func()) {
	g := l.g
	pq := routing.PermitQueue(g.queue, i)
	cctx, cancel := context.WithCancel(ctx)
	cons := g.w.sup.NewConsumer(pq, 4, nil)
	ran := make(chan struct{})
	go func() { defer close(ran); cons.Run(cctx) }()
	var token *broker.Delivery
	defer func() {
		cancel()
		<-ran // the subscription is cancelled: the next subscriber is active
		if token != nil {
			l.pass(pq, token)
		}
		cons.Close() // tokens still unacked here go back to the queue
	}()

	// Wait for the token.
	offer := time.NewTimer(permitOffer)
	defer offer.Stop()
	rotate := time.NewTimer(permitRotate)
	defer rotate.Stop()
	for token == nil {
		select {
		case token = <-cons.Deliveries():
		case <-offer.C:
			if err := l.offer(ctx, pq); err != nil && ctx.Err() == nil {
				g.log.Warn("limit: checking a permit queue's token failed", zap.String("permit_queue", pq), zap.Error(err))
			}
		case <-rotate.C:
			if len(g.free) > 0 {
				return // another permit is free: try it
			}
		case <-ctx.Done():
			return
		}
	}

	// Holding it: take one task, when one comes.
	renew := time.NewTicker(permitRenew)
	defer renew.Stop()
	wait := 10 * time.Millisecond
	var task *broker.Delivery
	for task == nil {
		d, err := l.get(ctx)
		if err != nil && ctx.Err() == nil {
			g.log.Warn("limit: taking a task failed", zap.Error(err))
		}
		if d != nil {
			task = d
			break
		}
		poll := time.NewTimer(wait)
		wait = min(2*wait, pollMax)
		select {
		case <-poll.C:
		case t := <-cons.Deliveries():
			token = l.swap(token, t)
		case <-renew.C:
			l.renew(ctx, pq)
		case <-ctx.Done():
			poll.Stop()
			return
		}
		poll.Stop()
		if !token.Live() {
			token = nil // its channel died: the broker has handed it on
			return
		}
	}

	// Run it: hand it to the worker's handlers and wait until it is
	// settled, holding the permit.
	settled := make(chan struct{})
	task.Settled = func() { close(settled) }
	select {
	case g.out <- task:
	case <-ctx.Done():
		_ = task.Nack(true)
		return
	}
	done := ctx.Done()
	for {
		select {
		case <-settled:
			return
		case <-done:
			// Stopping: this lane sends nothing more, and the worker may
			// close its handlers' channel; the permit stays held until
			// the task is settled.
			stopSending()
			done = nil
		case <-g.abandon:
			// The handler ignored its cancellation: the channels close,
			// and the task and the token go back with them.
			token = nil
			return
		case t := <-cons.Deliveries():
			token = l.swap(token, t)
		case <-renew.C:
			l.renew(context.WithoutCancel(ctx), pq)
		}
	}
}

// get takes the work queue's next task, or nil if it has none, on the
// lane's reader channel, opened again after it dies.
func (l *lane) get(ctx context.Context) (*broker.Delivery, error) {
	if l.reader == nil {
		r, err := l.g.w.sup.OpenReader(ctx)
		if err != nil {
			return nil, err
		}
		l.reader = r
	}
	d, ok, err := l.reader.Get(l.g.queue)
	if err != nil {
		_ = l.reader.Close()
		l.reader = nil
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	d.Received = time.Now()
	return d, nil
}

// swap keeps the newer of two tokens and acks the older: a renewal came
// back, or a token a subscriber put in while this lane held one.
func (l *lane) swap(held, got *broker.Delivery) *broker.Delivery {
	_ = held.Ack()
	return got
}

// offer puts a token in permit queue pq if none is ready. One held by a
// lane is not ready, so this may add a second; whoever holds a token acks
// the extra one when it comes.
func (l *lane) offer(ctx context.Context, pq string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := l.g.w.sup.InspectQueue(ctx, pq)
	if err != nil || st.Ready > 0 {
		return err
	}
	return l.publish(ctx, pq)
}

// renew puts a fresh token in pq, which comes back to this lane, the
// queue's active consumer; swap then acks the old one.
func (l *lane) renew(ctx context.Context, pq string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.publish(ctx, pq); err != nil {
		l.g.log.Warn("limit: renewing a permit failed", zap.String("permit_queue", pq), zap.Error(err))
	}
}

// pass gives the permit to the next subscriber: a fresh token in, then the
// held one acked. If the fresh one is not confirmed, the held one is not
// acked, and goes back to the queue when its channel closes.
func (l *lane) pass(pq string, token *broker.Delivery) {
	if !token.Live() {
		return // its channel died: the broker has handed it on already
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.publish(ctx, pq); err != nil {
		if !errors.Is(err, context.Canceled) {
			l.g.log.Warn("limit: passing a permit on failed; it goes back to its queue with the channel", zap.String("permit_queue", pq), zap.Error(err))
		}
		return
	}
	_ = token.Ack()
}

func (l *lane) publish(ctx context.Context, pq string) error {
	cf, err := l.g.w.pub.Publish(ctx, &broker.Publishing{Key: pq, MessageID: uuid.NewString(), Timestamp: time.Now()})
	if err != nil {
		return err
	}
	return cf.Wait(ctx)
}
