package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
)

// A queue under a fleet-wide limit (Limit.Concurrency or Limit.Rate) is
// not consumed through a prefetch window: the worker's lanes take its
// tasks one at a time with basic.get, each when the limit allows.
//
// Concurrency K is K permit queues (routing.PermitQueue), each a
// single-active-consumer quorum queue that holds a token. A lane
// subscribes to one; the broker delivers its token to one subscriber at a
// time, which may then take one task and run it. Done, the lane cancels
// its subscription, which makes the next subscriber active, puts a fresh
// token in and acks the one it held: the permit passes on without coming
// back to the queue, so a quorum queue's delivery count never grows. A
// worker that dies closes its channels, and the broker hands its token
// on, as it takes its task back.
//
// Rate N per period is a bucket queue (routing.RateQueue) that holds at
// most Burst tokens, and one elected minter (the active consumer of
// routing.MinterQueue, holding its token as a lane holds a permit) that
// puts a token in every period/N. A lane that has taken a task takes a
// token from the bucket before it runs it. docs/decisions.md says why.

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
	// permitRenew is how often a holder swaps its token for a fresh one,
	// so that the broker's consumer_timeout never sees a token held that
	// long.
	permitRenew = time.Minute
	// pollMax caps the wait between basic.gets of an empty work queue or
	// an empty bucket: the delay a task arriving then may see.
	pollMax = 250 * time.Millisecond
	// rateWaitMax is how long a lane holds a task while it waits for a
	// rate token before it gives the task back, so that the broker's
	// consumer_timeout never sees a task held that long unrun.
	rateWaitMax = 5 * time.Minute
)

// gate runs the lanes of one queue's fleet-wide limit.
type gate struct {
	w       *Worker
	queue   string
	limit   Limit
	out     chan<- *broker.Delivery
	free    chan int      // permit queues no lane of this worker uses, oldest first
	abandon chan struct{} // closed when the worker stops waiting for its handlers
	lanes   []*lane
	log     *zap.Logger
	running atomic.Bool
}

// lane takes one task at a time and runs it when the limit allows.
type lane struct {
	g      *gate
	reader *broker.Reader
}

// permit is a token a lane holds: of a permit queue, or of the minter's.
type permit struct {
	queue string
	cons  *broker.Consumer
	token *broker.Delivery
}

func (w *Worker) newGate(queue string, l Limit, out chan<- *broker.Delivery) *gate {
	g := &gate{w: w, queue: queue, limit: l, out: out, free: make(chan int, l.Concurrency), abandon: make(chan struct{}),
		log: w.log.With(zap.String("queue", queue))}
	for i := range l.Concurrency {
		g.free <- i
	}
	n := w.cfg.Concurrency
	if l.Concurrency > 0 {
		n = min(n, l.Concurrency)
	}
	if l.PerWorker > 0 {
		n = min(n, l.PerWorker)
	}
	for range n {
		g.lanes = append(g.lanes, &lane{g: g})
	}
	return g
}

// run runs the lanes, and the minter candidate of a rate limit, until ctx
// is done. sending is done once no lane will send to out again; run
// returns once every lane has given back its permit, after the tasks it
// started were settled.
func (g *gate) run(ctx context.Context, sending *sync.WaitGroup) {
	g.running.Store(true)
	defer g.running.Store(false)
	var wg sync.WaitGroup
	for _, l := range g.lanes {
		wg.Add(1)
		sending.Add(1)
		go func() { defer wg.Done(); l.run(ctx, sending) }()
	}
	if g.limit.Rate > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); g.mint(ctx) }()
	}
	wg.Wait()
}

// ready reports whether the lanes run: each is waiting for a permit or a
// task, or runs a task, but for the moment it takes to pass a permit on,
// which readiness should not flap with.
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
		if l.g.limit.Concurrency == 0 {
			l.work(ctx, nil, stopSending)
			continue
		}
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
	p, release := g.subscribe(ctx, routing.PermitQueue(g.queue, i))
	defer release()
	since := time.Now()
	if !g.await(ctx, p, func() bool { return len(g.free) > 0 }) {
		return
	}
	g.w.metrics.LimitWait(g.queue, "permit", time.Since(since))
	l.work(ctx, p, stopSending)
}

// work takes one task, a rate token if the limit has a rate, hands the
// task to the worker's handlers and waits until it is settled. A permit,
// if held, is kept fresh meanwhile.
func (l *lane) work(ctx context.Context, p *permit, stopSending func()) {
	g := l.g
	var tokens <-chan *broker.Delivery
	var renewC <-chan time.Time
	if p != nil {
		tokens = p.cons.Deliveries()
		renew := time.NewTicker(permitRenew)
		defer renew.Stop()
		renewC = renew.C
	}
	// keep answers the permit's events while the lane waits; false when
	// the permit is lost.
	keep := func(ev any) bool {
		switch ev := ev.(type) {
		case *broker.Delivery:
			p.token = g.swap(p.token, ev)
		case time.Time:
			g.renew(context.WithoutCancel(ctx), p.queue)
		}
		return p == nil || p.token.Live()
	}
	// wait waits d, or for ctx, answering the permit's events; false when
	// the lane must stop waiting.
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				return true
			case tok := <-tokens:
				if !keep(tok) {
					return false
				}
			case now := <-renewC:
				if !keep(now) {
					return false
				}
			case <-ctx.Done():
				return false
			}
		}
	}

	// A task, when one comes.
	var task *broker.Delivery
	for backoff := 10 * time.Millisecond; task == nil; backoff = min(2*backoff, pollMax) {
		d, err := l.get(ctx, g.queue)
		if err != nil && ctx.Err() == nil {
			g.log.Warn("limit: taking a task failed", zap.Error(err))
		}
		if d != nil {
			task = d
			break
		}
		if !wait(backoff) {
			return
		}
	}
	// A rate token for it.
	if g.limit.Rate > 0 {
		since := time.Now()
		if !l.rateToken(ctx, task, tokens, renewC, keep) {
			_ = task.Nack(true)
			return
		}
		g.w.metrics.LimitWait(g.queue, "rate", time.Since(since))
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
			if p != nil {
				p.token = nil
			}
			return
		case tok := <-tokens:
			keep(tok)
		case now := <-renewC:
			keep(now)
		}
	}
}

// rateToken waits for a token of the rate limit's bucket for task, and
// spends it. The lane consumes the bucket (prefetch 1) only while it
// waits, so a token reaches a waiting lane the moment it is minted, and
// a lane with no task holds none back from the others. False when the
// lane must give its task back: ctx is done, its permit or its task's
// channel died, or rateWaitMax passed.
func (l *lane) rateToken(ctx context.Context, task *broker.Delivery, permitTokens <-chan *broker.Delivery, renewC <-chan time.Time, keep func(any) bool) bool {
	g := l.g
	cctx, cancel := context.WithCancel(ctx)
	cons := g.w.sup.NewConsumer(routing.RateQueue(g.queue), 1, nil)
	cons.Quiet()
	ran := make(chan struct{})
	go func() { defer close(ran); cons.Run(cctx) }()
	defer func() {
		cancel()
		<-ran // a token delivered since goes back to the bucket
		cons.Close()
	}()
	giveUp := time.NewTimer(rateWaitMax)
	defer giveUp.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case tok := <-cons.Deliveries():
			_ = tok.Ack() // spent; sent when the consumer closes
			return true
		case tok := <-permitTokens:
			if !keep(tok) {
				return false
			}
		case now := <-renewC:
			if !keep(now) {
				return false
			}
		case <-check.C:
			if !task.Live() {
				return false
			}
		case <-giveUp.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// get takes the next message of queue, or nil if it has none, on the
// lane's reader channel, opened again after it dies.
func (l *lane) get(ctx context.Context, queue string) (*broker.Delivery, error) {
	if l.reader == nil {
		r, err := l.g.w.sup.OpenReader(ctx)
		if err != nil {
			return nil, err
		}
		l.reader = r
	}
	d, ok, err := l.reader.Get(queue)
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

// mint takes part in the election of the rate limit's minter until ctx is
// done, and puts tokens in the bucket while it leads.
func (g *gate) mint(ctx context.Context) {
	for ctx.Err() == nil {
		p, release := g.subscribe(ctx, routing.MinterQueue(g.queue))
		if g.await(ctx, p, nil) {
			g.log.Info("limit: minting rate tokens", zap.Int("rate", g.limit.Rate), zap.Duration("per", g.limit.per()))
			g.mintWhile(ctx, p)
		}
		release()
	}
}

// mintWhile puts a token in the bucket every period/rate while the minter
// token is held, catching up on ticks missed by no more than the burst.
func (g *gate) mintWhile(ctx context.Context, p *permit) {
	every := g.limit.per() / time.Duration(g.limit.Rate)
	tick := time.NewTicker(max(every, 5*time.Millisecond))
	defer tick.Stop()
	renew := time.NewTicker(permitRenew)
	defer renew.Stop()
	start, minted := time.Now(), 0
	bucket := routing.RateQueue(g.queue)
	for {
		select {
		case <-tick.C:
			// A minter held up catches up on a quarter of a second of
			// tokens (or the burst, if more): lanes waiting take them at
			// once, so the pace holds; tokens owed for longer are dropped,
			// so that no stall ends in a flood.
			due := int(time.Since(start)/every) - minted
			if most := max(g.limit.burst(), int(time.Second/4/every)); due > most {
				minted += due - most
				due = most
			}
			for range due {
				// Not waited for: a confirm held up would hold up the next
				// tick. A full bucket refuses the token (reject-publish):
				// that is the burst at work, not a failure.
				if _, err := g.w.pub.Publish(ctx, &broker.Publishing{Key: bucket, MessageID: uuid.NewString(), Transient: true}); err != nil && ctx.Err() == nil {
					g.log.Debug("limit: a rate token was not put in", zap.Error(err))
				}
				minted++
			}
		case tok := <-p.cons.Deliveries():
			p.token = g.swap(p.token, tok)
		case <-renew.C:
			g.renew(ctx, p.queue)
		case <-ctx.Done():
			return
		}
		if !p.token.Live() {
			p.token = nil // its channel died: another candidate mints now
			return
		}
	}
}

// subscribe starts a consumer of the single-active-consumer queue q;
// release cancels it, passes on the token if one is held, and closes it.
func (g *gate) subscribe(ctx context.Context, q string) (*permit, func()) {
	cctx, cancel := context.WithCancel(ctx)
	p := &permit{queue: q, cons: g.w.sup.NewConsumer(q, 4, nil)}
	p.cons.Quiet()
	ran := make(chan struct{})
	go func() { defer close(ran); p.cons.Run(cctx) }()
	return p, func() {
		cancel()
		<-ran // the subscription is cancelled: the next subscriber is active
		if p.token != nil {
			g.pass(q, p.token)
		}
		p.cons.Close() // tokens still unacked here go back to the queue
	}
}

// await waits for p's token; false if ctx ended first, or rotate, asked
// after permitRotate, says to try another queue.
func (g *gate) await(ctx context.Context, p *permit, rotate func() bool) bool {
	offer := time.NewTimer(permitOffer)
	defer offer.Stop()
	turn := time.NewTicker(permitRotate)
	defer turn.Stop()
	for {
		select {
		case p.token = <-p.cons.Deliveries():
			return true
		case <-offer.C:
			if err := g.offer(ctx, p.queue); err != nil && ctx.Err() == nil {
				g.log.Warn("limit: checking a token queue failed", zap.String("token_queue", p.queue), zap.Error(err))
			}
		case <-turn.C:
			if rotate != nil && rotate() {
				return false
			}
		case <-ctx.Done():
			return false
		}
	}
}

// swap keeps the newer of two tokens and acks the older: a renewal came
// back, or a token a subscriber put in while this holder held one.
func (g *gate) swap(held, got *broker.Delivery) *broker.Delivery {
	_ = held.Ack()
	return got
}

// offer puts a token in q if none is ready. One that is held is not
// ready, so this may add a second; the holder acks the extra one when it
// comes.
func (g *gate) offer(ctx context.Context, q string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := g.w.sup.InspectQueue(ctx, q)
	if err != nil || st.Ready > 0 {
		return err
	}
	return g.publish(ctx, q)
}

// renew puts a fresh token in q, which comes back to its holder, the
// queue's active consumer; swap then acks the old one.
func (g *gate) renew(ctx context.Context, q string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := g.publish(ctx, q); err != nil {
		g.log.Warn("limit: renewing a token failed", zap.String("token_queue", q), zap.Error(err))
	}
}

// pass hands the token on to the next subscriber: a fresh one in, then
// the held one acked. If the fresh one is not confirmed, the held one is
// not acked, and goes back to the queue when its channel closes.
func (g *gate) pass(q string, token *broker.Delivery) {
	if !token.Live() {
		return // its channel died: the broker has handed it on already
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.publish(ctx, q); err != nil {
		g.log.Warn("limit: passing a token on failed; it goes back to its queue with the channel", zap.String("token_queue", q), zap.Error(err))
		return
	}
	_ = token.Ack()
}

func (g *gate) publish(ctx context.Context, q string) error {
	cf, err := g.w.pub.Publish(ctx, &broker.Publishing{Key: q, MessageID: uuid.NewString(), Timestamp: time.Now()})
	if err != nil {
		return err
	}
	return cf.Wait(ctx)
}
