package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/presence"
	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/internal/verdict"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
)

// Config configures a Worker. Registry and Queues are required.
type Config struct {
	// Conn is how the worker reaches the broker (URL, TLS, heartbeat) and
	// reports (Logger, Metrics, OnReconnect). Its zero value reaches
	// conn.DefaultURL with no logs and no metrics. Conn.Logger levels:
	// debug per success, info per retry and lifecycle step, warn for what
	// someone should look at (a dead letter, a lost connection), error for
	// a task the worker could not settle as meant.
	Conn conn.Config
	// Queues to consume. A logical name of Topology.Shards stands for
	// every one of its shard queues.
	Queues []string
	// Registry maps task names to handlers.
	Registry *task.Registry
	// Topology is declared on every connect. A consumed queue missing from
	// it is declared plainly (durable, no arguments) with its dead-letter
	// queue; put a queue here to give it a default task or arguments.
	Topology routing.Topology
	// Concurrency caps the handlers running at once, over all queues.
	// Defaults to 8.
	Concurrency int
	// Prefetch is the window of unacked messages per queue consumer.
	// Defaults to 32.
	Prefetch int
	// ShutdownTimeout is how long Run lets in-flight handlers finish after
	// its context is cancelled before it cancels their contexts and
	// requeues what is left. Defaults to 30s.
	ShutdownTimeout time.Duration
	// ConfirmTimeout bounds the wait for the broker's confirm of a retry
	// copy or a dead letter; past it the original is requeued. Defaults to
	// 30s.
	ConfirmTimeout time.Duration
	// ConsumerTimeout is the broker's consumer_timeout, if known: runs are
	// cut a margin (a tenth, at most a minute) before it and fail into the
	// retry policy, because the broker closes the channel of a delivery
	// unacked that long and the run could never ack. Zero: unknown; the
	// worker warns at start about task timeouts above RabbitMQ's default
	// (RabbitMQDefaultConsumerTimeout) and learns the real value the first
	// time the broker closes a channel for it. Negative: the broker has
	// none.
	ConsumerTimeout time.Duration
	// Retry is the policy for tasks whose definition sets none. Its zero
	// value is retry.DefaultPolicy (5 attempts, 10s doubling to 1h, 20%
	// jitter).
	Retry retry.Policy
	// QueueDepthInterval is how often the worker polls the ready count of
	// its queues and their dead-letter queues (warren_queue_messages), with
	// a passive declare. Defaults to 15s; negative disables. Only with
	// Conn.Metrics.
	QueueDepthInterval time.Duration
	// MaxBodyBytes caps a message body: a longer one is dead-lettered
	// unrun with reason "too_large". Defaults to DefaultMaxBodyBytes
	// (16 MiB); negative means no limit.
	MaxBodyBytes int
	// MaxHeaderBytes caps the headers a producer adds beyond the
	// protocol's, as encoded in the AMQP header table: a message
	// over it is dead-lettered unrun with reason "too_large", its dead
	// letter keeping only the protocol's and warren's headers. Defaults
	// to DefaultMaxHeaderBytes (64 KiB); values above
	// MaxHeaderBytesCeiling (96 KiB), or negative, mean the ceiling.
	MaxHeaderBytes int
	// MaxResultBytes caps an awaited result, as encoded for its caller: a
	// larger one is not sent, and the caller gets a FAILURE of kind
	// too_large instead, while the task counts as a success (its handler
	// ran; running it again would not shrink its result). Defaults to
	// DefaultMaxResultBytes (16 MiB); negative means no limit.
	MaxResultBytes int

	// Schedules are periodic tasks (package schedule) this worker offers
	// to fire. Every worker given schedules is a candidate, and one at a
	// time, elected through the broker, fires them: a fire is neither
	// repeated nor lost when the leader dies (docs/schedules.md). Workers
	// of one SchedulerGroup must be given the same schedules. A schedule
	// without a Queue fires into the worker's queue when it consumes one;
	// with several, it must name one.
	Schedules []*schedule.Schedule
	// SchedulerGroup names the election that workers with schedules take
	// part in: empty means the default one. Deployments that share a
	// broker (or vhost) but not their schedules need a group each.
	SchedulerGroup string

	// Limits hold back the tasks of some queues: at most PerWorker of a
	// queue's tasks run at once in this worker.
	Limits []Limit

	// PresenceInterval is how often the worker announces itself on the
	// broker (host, pid, queues, the tasks it runs, its counts), so that
	// `warren workers`, the web UI and package inspect list the workers
	// alive; it answers their pings at once and says goodbye when it
	// stops, and a worker that dies drops off the list after about three
	// intervals. Defaults to 2s; negative turns presence off.
	PresenceInterval time.Duration
}

// Stats counts delivery outcomes since the worker started.
type Stats struct {
	Received  uint64 // deliveries taken
	Succeeded uint64 // handler returned nil, acked
	Retried   uint64 // failed; a delayed copy was confirmed, acked
	Dead      uint64 // dead-lettered (not expired), acked
	Expired   uint64 // past its expiry, not run: dead-lettered or dropped
	Requeued  uint64 // given back unrun or unfinished (shutdown, early ETA, failed follow-up, channel lost)
	StaleAcks uint64 // acks dropped because their channel had died
	// ChannelLost counts the deliveries, among Requeued, whose channel died
	// before they were settled: the broker took them back, and the worker
	// published nothing (no retry copy, dead letter or result) for them.
	ChannelLost uint64
	// ResultsDropped counts final results that never reached their caller:
	// over MaxResultBytes, refused by the broker, or the caller gone.
	ResultsDropped uint64
	// ConsumerTimeouts counts consumer channels the broker closed because
	// a delivery outlived its consumer_timeout.
	ConsumerTimeouts uint64
}

// Worker consumes queues and runs their tasks. Make one with New and call
// Run; two workers in one process do not share anything.
type Worker struct {
	id       string               // names this run in heartbeats
	ann      *presence.Announcer  // nil: presence off
	slots    []slot               // what each handler goroutine runs
	started  time.Time            // when Run began
	version  string               // warren's, for heartbeats
	sched    *scheduler.Scheduler // nil without schedules
	cfg      Config
	sup      *broker.Supervisor
	pub      *broker.Publisher
	log      *zap.Logger
	metrics  *metrics.Metrics  // nil: none
	defaults map[string]string // queue -> default task
	judge    verdict.Judge     // decides each run's verdict

	mu        sync.Mutex
	consumers []*broker.Consumer
	gates     []*gate // the queues under a fleet-wide limit
	running   atomic.Bool
	stopping  atomic.Bool

	received, succeeded, retried, dead, expired, requeued atomic.Uint64
	channelLost, resultsDropped                           atomic.Uint64

	consumerTimeouts atomic.Uint64
	clockWarned      atomic.Int64 // when checkFireClock last warned, Unix ns
	learnedTimeout   atomic.Int64 // consumer_timeout the broker named, ns; 0 if none yet
}

// New checks cfg and returns a worker. It connects when Run is called.
func New(cfg Config) (*Worker, error) {
	if cfg.Registry == nil {
		return nil, errors.New("worker: Config.Registry is required")
	}
	if len(cfg.Queues) == 0 {
		return nil, errors.New("worker: Config.Queues is empty: name at least one queue to consume")
	}
	cfg.Conn = cfg.Conn.WithDefaults()
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 32
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 30 * time.Second
	}
	// A sharded queue is consumed as its shards, each an ordinary work
	// queue with its own delay binding and dead-letter queue (the
	// topology's check in broker.New validates the shards themselves).
	cfg.Queues = cfg.Topology.Expand(cfg.Queues)
	// Retries come back through the delay levels, so every consumed queue
	// needs its delivery binding.
	topo := cfg.Topology.Merge(routing.DelayTopology())
	defaults := make(map[string]string)
	seen := make(map[string]bool)
	for _, q := range cfg.Queues {
		if q == "" {
			return nil, errors.New("worker: empty queue name in Config.Queues")
		}
		if seen[q] {
			return nil, fmt.Errorf("worker: queue %q listed twice", q)
		}
		if len(q) > routing.MaxQueueName {
			return nil, fmt.Errorf("worker: queue name of %d bytes is too long: at most %d (routing.MaxQueueName), so that its retries and dead letters can be routed", len(q), routing.MaxQueueName)
		}
		seen[q] = true
		topo.Bindings = append(topo.Bindings, routing.DelayBinding(q))
		spec, ok := topo.Queue(q)
		if !ok {
			topo.Queues = append(topo.Queues, routing.Queue{Name: q})
			continue
		}
		if spec.NoDeadLetters {
			return nil, fmt.Errorf("worker: queue %q is declared without a dead-letter queue; a worker needs %q for bad input", q, routing.DeadQueue(q))
		}
		if spec.DefaultTask != "" {
			if !cfg.Registry.Has(spec.DefaultTask) {
				return nil, fmt.Errorf("worker: queue %q names default task %q, which is not registered", q, spec.DefaultTask)
			}
			defaults[q] = spec.DefaultTask
		}
	}
	if err := checkLimits(cfg); err != nil {
		return nil, err
	}
	if cfg.QueueDepthInterval == 0 {
		cfg.QueueDepthInterval = 15 * time.Second
	}
	topo = topo.Merge(permitTopology(cfg))
	// Presence's topology is not in topo: the announcer declares it best
	// effort, so that it can never keep the worker from consuming.
	id := presence.NewID()
	m, err := metrics.New(cfg.Conn.Metrics)
	m = m.ForRole("worker")
	if err != nil {
		return nil, fmt.Errorf("worker: metrics: %w", err)
	}
	sup, err := broker.New(broker.Config{Conn: m.CountReconnects("worker", cfg.Conn), Role: "worker", Topology: topo})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	sched, err := newScheduler(cfg, topo, m)
	if err != nil {
		_ = sup.Close()
		return nil, err
	}
	w := &Worker{
		id:       id,
		slots:    make([]slot, cfg.Concurrency),
		version:  presence.Version(),
		sched:    sched,
		cfg:      cfg,
		sup:      sup,
		pub:      broker.NewPublisher(sup, 1),
		log:      cfg.Conn.Logger,
		metrics:  m,
		defaults: defaults,
	}
	w.judge = verdict.Judge{Registry: cfg.Registry, Retry: cfg.Retry, Limit: w.runLimit}
	w.ann = w.newAnnouncer()
	return w, nil
}

// Run consumes until ctx is cancelled, then shuts down gracefully: it stops
// taking deliveries, requeues those not started, lets running handlers
// finish for up to ShutdownTimeout, then cancels their contexts and
// requeues whatever has not finished. It returns nil after a graceful stop.
// A Worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice")
	}
	defer w.sup.Close()
	w.started = time.Now()

	// Handlers get hardCtx: it outlives ctx by the shutdown timeout.
	hardCtx, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()

	// Every consumer hands its deliveries to one unbuffered channel, and
	// a fixed pool of Concurrency handler goroutines takes from it: a
	// delivery leaves its consumer only when a handler is free, so messages
	// wait in the broker's prefetch windows rather than in memory, and an
	// idle queue holds no handler while it waits. Consumers blocked on the
	// channel are served in turn, so busy queues share the handlers. The
	// goroutines are long-lived: their stacks, grown once by decoding and
	// publishing, stay grown.
	deliveries := make(chan *broker.Delivery)
	var pool, consumers sync.WaitGroup
	var handler func(running *slot)
	handler = func(running *slot) {
		returned := false
		defer func() {
			if !returned {
				// The handler ended this goroutine (runtime.Goexit, as
				// t.FailNow does; handle settled its delivery on the way
				// out): replace it, or the pool would shrink.
				pool.Add(1)
				go handler(running)
			}
			pool.Done()
		}()
		for d := range deliveries {
			w.handle(hardCtx, d, running)
		}
		returned = true
	}
	pool.Add(w.cfg.Concurrency)
	for i := range w.cfg.Concurrency {
		go handler(&w.slots[i])
	}
	var sending, gated sync.WaitGroup // lanes that may send; lanes still holding permits
	for _, q := range w.cfg.Queues {
		if l, ok := w.limit(q); ok && l.fleet() {
			g := w.newGate(q, l, deliveries)
			w.mu.Lock()
			w.gates = append(w.gates, g)
			w.mu.Unlock()
			gated.Add(1)
			go func() { defer gated.Done(); g.run(ctx, &sending) }()
			continue
		}
		c := w.sup.NewConsumer(q, w.prefetch(q), deliveries)
		c.OnConsumerTimeout(func(d time.Duration) { w.consumerTimedOut(q, d) })
		w.mu.Lock()
		w.consumers = append(w.consumers, c)
		w.mu.Unlock()
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			c.Run(ctx)
		}()
	}
	pollDone := make(chan struct{})
	go func() { defer close(pollDone); w.pollDepth(ctx) }()
	defer func() { <-pollDone }()
	// Presence outlives ctx: a stopping worker still says what it runs
	// until its handlers are done, then says goodbye.
	presCtx, presCancel := context.WithCancel(context.WithoutCancel(ctx))
	presDone := make(chan struct{})
	go func() { defer close(presDone); w.runPresence(presCtx) }()
	defer func() { presCancel(); <-presDone }()
	if w.sched != nil {
		// Stops firing when ctx is done, before the handlers drain; the
		// next candidate takes the lead when its connection closes.
		schedDone := make(chan struct{})
		go func() { defer close(schedDone); _ = w.sched.Run(ctx) }()
		defer func() { <-schedDone }()
	}
	w.log.Info("worker started", zap.Strings("queues", w.cfg.Queues),
		zap.Int("concurrency", w.cfg.Concurrency), zap.Int("prefetch", w.cfg.Prefetch))
	w.warnConsumerTimeout()

	<-ctx.Done()
	w.stopping.Store(true)
	if w.ann != nil {
		w.ann.Poke() // says "stopping" now, not at the next heartbeat
	}
	deadline := time.After(w.cfg.ShutdownTimeout) // from the signal, not after the cancel
	w.log.Info("worker stopping: no new deliveries; waiting for in-flight tasks", zap.Duration("timeout", w.cfg.ShutdownTimeout))
	consumers.Wait()  // cancelled; deliveries no handler took are requeued
	sending.Wait()    // and the limits' lanes send no more
	close(deliveries) // no consumer sends any more; the pool finishes and exits

	done := make(chan struct{})
	go func() { pool.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline:
		w.log.Warn("shutdown timeout: cancelling running handlers; their tasks are requeued")
		hardCancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			w.log.Warn("handlers ignored cancellation; closing channels requeues their tasks")
		}
	}
	w.mu.Lock()
	for _, g := range w.gates {
		select {
		case <-done:
		default:
			close(g.abandon) // handlers still run: their permits go back with the channels
		}
	}
	w.mu.Unlock()
	gated.Wait() // every permit passed on, or abandoned
	presCancel() // the goodbye, while the connection is still up
	<-presDone
	w.mu.Lock()
	for _, c := range w.consumers {
		c.Close()
	}
	w.mu.Unlock()
	_ = w.sup.Close() // first: it wakes publishes waiting for a connection
	w.pub.Close()
	s := w.Stats()
	w.log.Info("worker stopped", zap.Uint64("received", s.Received), zap.Uint64("succeeded", s.Succeeded),
		zap.Uint64("retried", s.Retried), zap.Uint64("dead", s.Dead), zap.Uint64("expired", s.Expired), zap.Uint64("requeued", s.Requeued), zap.Uint64("stale_acks", s.StaleAcks),
		zap.Uint64("channel_lost", s.ChannelLost), zap.Uint64("results_dropped", s.ResultsDropped), zap.Uint64("consumer_timeouts", s.ConsumerTimeouts))
	return nil
}

// Ready reports whether the worker is connected and consuming every queue
// it was asked to, and not shutting down.
func (w *Worker) Ready() bool {
	if !w.running.Load() || w.stopping.Load() || !w.sup.Connected() {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.consumers)+len(w.gates) != len(w.cfg.Queues) {
		return false
	}
	for _, c := range w.consumers {
		if !c.Consuming() {
			return false
		}
	}
	for _, g := range w.gates {
		if !g.ready() {
			return false
		}
	}
	return true
}

// Node returns the URL of the broker node the worker is connected to now,
// its password hidden as conn.Redact hides it, or "" while it has no
// connection (before Run, between a loss and the next connect, after
// Run). With several nodes in Conn.URL it says which one the worker
// reached; the runner's /readyz shows it.
func (w *Worker) Node() string { return w.sup.Node() }

// Stats returns the outcome counts so far.
func (w *Worker) Stats() Stats {
	s := Stats{
		Received:  w.received.Load(),
		Succeeded: w.succeeded.Load(),
		Retried:   w.retried.Load(),
		Dead:      w.dead.Load(),
		Expired:   w.expired.Load(),
		Requeued:  w.requeued.Load(),

		ChannelLost:      w.channelLost.Load(),
		ResultsDropped:   w.resultsDropped.Load(),
		ConsumerTimeouts: w.consumerTimeouts.Load(),
	}
	w.mu.Lock()
	for _, c := range w.consumers {
		s.StaleAcks += c.StaleAcks()
	}
	w.mu.Unlock()
	return s
}

// pollDepth sets warren_queue_messages for each consumed queue and its
// dead-letter queue every QueueDepthInterval, until ctx is done.
func (w *Worker) pollDepth(ctx context.Context) {
	if w.metrics == nil || w.cfg.QueueDepthInterval < 0 {
		return
	}
	if _, err := w.sup.Session(ctx); err != nil {
		return
	}
	t := time.NewTicker(w.cfg.QueueDepthInterval)
	defer t.Stop()
	for {
		for _, q := range w.cfg.Queues {
			for _, name := range []string{q, routing.DeadQueue(q)} {
				if n, err := w.depth(ctx, name); err == nil {
					w.metrics.QueueDepth(name, n)
				}
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (w *Worker) depth(ctx context.Context, queue string) (int, error) {
	if !w.sup.Connected() {
		return 0, broker.ErrConnectionLost
	}
	r, err := w.sup.OpenReader(ctx)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return r.Count(queue)
}
