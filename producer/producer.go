package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// Errors an enqueue can end in; test them with errors.Is.
var (
	// ErrUnroutable: no queue is bound for the task's exchange and routing
	// key, so the broker returned the message. The error names both.
	ErrUnroutable = conn.ErrUnroutable
	// ErrNacked: the broker refused the message.
	ErrNacked = conn.ErrNacked
	// ErrConnectionLost: the connection died before the broker confirmed;
	// the task may or may not be enqueued. Enqueue again with the same
	// WithID if duplicates must be recognisable.
	ErrConnectionLost = conn.ErrConnectionLost
	// ErrClosed: the producer was closed.
	ErrClosed = conn.ErrClosed
	// ErrInvalid: the task cannot be sent as given, and retrying will not
	// help: an id, exchange, routing key (a delayed task's includes its
	// queue name) or header key longer than AMQP's 255 bytes, a header
	// table larger than the 128 KiB frame it travels in, a header value
	// AMQP cannot carry, or a body over Config.MaxBodyBytes. The error
	// names the field, its size and the limit. Nothing was sent, and the
	// producer's connection, shared by every enqueue, is untouched.
	ErrInvalid = conn.ErrInvalid
	// ErrNoDelayTarget: a delayed task's route leads to no queue the
	// producer knows of; the delay levels deliver to queues.
	ErrNoDelayTarget = errors.New("no queue known for a delayed task's route")
)

// DefaultMaxBodyBytes is Config.MaxBodyBytes when it is zero: 16 MiB.
const DefaultMaxBodyBytes = task.MaxMessageBytes

// Config configures a Producer. The zero value publishes to a local broker
// and needs WithQueue or WithRoute on every enqueue.
type Config struct {
	// Conn is how the producer reaches the broker (URL, TLS, heartbeat)
	// and reports (Logger, Metrics, OnReconnect). Its zero value reaches
	// conn.DefaultURL with no logs and no metrics. Conn.Logger receives
	// connection events (connected, lost, re-dial failures); enqueue
	// errors are returned, never only logged.
	Conn conn.Config
	// Routes resolves task names to exchange and routing key. Defaults to
	// an empty table.
	Routes *routing.Table
	// Topology is declared on every connect: the exchanges the routes
	// name, and the queues this producer sends to (each with its .dead
	// queue and delay binding), so that an enqueue succeeds before any
	// worker has declared them. Give the workers the same value: the same
	// declaration on both sides never conflicts. Defaults to none.
	Topology routing.Topology
	// Channels is the number of confirm channels publishes are spread over.
	// Defaults to 2. A task routed to shards (routing.Table.AddShards)
	// keeps each shard to one channel, so give bulk producers as many
	// channels as shards.
	Channels int
	// MaxBodyBytes caps a task's encoded payload: a larger one is refused
	// with ErrInvalid before it is sent. Defaults to DefaultMaxBodyBytes
	// (16 MiB, RabbitMQ 4's max_message_size, and the worker's default
	// limit, past which it dead-letters a task unrun). Negative means no
	// limit but the broker's own.
	MaxBodyBytes int
	// Results delivers awaited results (EnqueueResult). Defaults to the
	// built-in result.AMQP, made with Conn (less its metrics) on the first
	// EnqueueResult and closed with the producer; a given one is the
	// caller's to close.
	Results result.Backend
}

// Producer enqueues tasks. It is safe for concurrent use; make one per
// process and share it.
type Producer struct {
	sup     *broker.Supervisor
	pub     *broker.Publisher
	routes  *routing.Table
	topo    routing.Topology
	log     *zap.Logger
	metrics *metrics.Metrics

	connCfg     conn.Config // for the result backend it makes
	resultsOnce sync.Once
	results     result.Backend
	resultsErr  error // why the result backend could not be made
	ownResults  bool  // results is the producer's to close
}

// New returns a producer and starts connecting in the background. Enqueue
// waits for the connection, bounded by its context.
func New(cfg Config) (*Producer, error) {
	cfg.Conn = cfg.Conn.WithDefaults()
	if cfg.Routes == nil {
		cfg.Routes = routing.NewTable()
	}
	if cfg.Channels <= 0 {
		cfg.Channels = 2
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	// The delay levels are declared too, with the delivery binding of every
	// queue in the topology, so that delayed tasks can reach them.
	topo := cfg.Topology.Merge(routing.DelayTopology())
	for _, q := range cfg.Topology.Queues {
		topo.Bindings = append(topo.Bindings, routing.DelayBinding(q.Name))
	}
	m, err := metrics.New(cfg.Conn.Metrics)
	m = m.ForRole("producer")
	if err != nil {
		return nil, fmt.Errorf("producer: metrics: %w", err)
	}
	sup, err := broker.New(broker.Config{Conn: m.CountReconnects("producer", cfg.Conn), Role: "producer", Topology: topo})
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return &Producer{sup: sup, pub: broker.NewPublisher(sup, cfg.Channels, broker.WithMaxBody(cfg.MaxBodyBytes)), routes: cfg.Routes, topo: cfg.Topology, log: cfg.Conn.Logger, metrics: m, connCfg: cfg.Conn, results: cfg.Results}, nil
}

// Enqueue encodes payload as a def task, publishes it and returns its id
// once the broker has confirmed it. This is the usual way in:
//
//	id, err := producer.Enqueue(ctx, p, media.ProcessMedia, media.Media{Name: "a.avi"})
func Enqueue[T any](ctx context.Context, p *Producer, def *task.Def[T], payload T, opts ...Option) (string, error) {
	return p.Enqueue(ctx, def.New(payload), opts...)
}

// EnqueueResult is Enqueue for a task that returns a result: the handle's
// Get waits for it (or for the task's final failure). The caller must be
// the one that waits: see package result for what is lost if it dies.
//
//	h, err := producer.EnqueueResult(ctx, p, Thumbnail, Image{URL: u})
//	thumb, err := h.Get(ctx)
func EnqueueResult[T, R any](ctx context.Context, p *Producer, def *task.ResultDef[T, R], payload T, opts ...Option) (*result.Handle[R], error) {
	backend, err := p.resultBackend()
	if err != nil {
		return nil, fmt.Errorf("producer: enqueue %s: %w", def.Name(), err)
	}
	if r, ok := backend.(result.ReadyWaiter); ok {
		if err := r.WaitReady(ctx); err != nil {
			return nil, fmt.Errorf("producer: enqueue %s: %w", def.Name(), err)
		}
	}
	id := resolve(opts).id
	if id == "" {
		id = task.NewID(time.Now())
	}
	// Subscribe before publishing, so that no update can be missed.
	sub := backend.Subscribe(id)
	opts = append(opts, WithID(id), func(o *options) { o.replyTo = backend.ReplyTo() })
	if _, err := p.Enqueue(ctx, def.New(payload), opts...); err != nil {
		backend.Unsubscribe(id)
		return nil, err
	}
	return result.NewHandle(sub, def.DecodeResult, backend), nil
}

// resultBackend returns the result backend, making the built-in one on
// first use; ErrClosed once the producer is closed.
func (p *Producer) resultBackend() (result.Backend, error) {
	p.resultsOnce.Do(func() {
		if p.results == nil {
			// Reconnects of the reply connection are not the
			// publisher's: the metric and the caller's hook count those.
			c := p.connCfg
			c.Metrics, c.OnReconnect = nil, nil
			b, err := result.NewAMQP(c)
			if err != nil {
				p.resultsErr = err
				return
			}
			p.results, p.ownResults = b, true
		}
	})
	if p.results == nil && p.resultsErr == nil {
		return nil, ErrClosed
	}
	return p.results, p.resultsErr
}

// Enqueue publishes t and returns its id once the broker has confirmed it.
// An error means the caller must assume the task was not enqueued; with
// ErrConnectionLost or a context error it may have been. A confirm that
// has arrived counts even if ctx ended meanwhile: the result is then nil.
// A delayed task whose route reaches several queues that did not reach
// them all fails with a *QueuesError saying which did.
func (p *Producer) Enqueue(ctx context.Context, t task.Task, opts ...Option) (string, error) {
	id, copies, l, err := p.publish(ctx, t, opts)
	if err == nil {
		err = p.settle(ctx, t.Name, id, copies, l)
	}
	if err != nil {
		return "", enqueueError(t.Name, id, err)
	}
	return id, nil
}

// enqueueError says which task, and which id once it has one, err is about.
// A *DuplicateError says both already.
func enqueueError(taskName, id string, err error) error {
	var dup *DuplicateError
	if errors.As(err, &dup) {
		return err
	}
	if id == "" {
		return fmt.Errorf("producer: enqueue %s: %w", taskName, err)
	}
	return fmt.Errorf("producer: enqueue %s (id %s): %w", taskName, id, err)
}

// sent is one publish of a task: to its route, or to one of its queues
// through the delay levels.
type sent struct {
	m   *broker.Publishing
	c   *broker.Confirm // nil if Publish refused m
	err error           // why m is not (or not surely) enqueued
}

// publish sends t's message(s) without waiting: one, or one per target
// queue for a delayed task whose route reaches several. Every copy is
// tried, whatever became of the ones before it; err means that nothing
// was sent. A unique task takes its lock first, waiting for that, and l
// is the lock then.
func (p *Producer) publish(ctx context.Context, t task.Task, opts []Option) (string, []sent, *lock, error) {
	ms, u, err := p.build(ctx, t, opts)
	if err != nil {
		return "", nil, nil, err
	}
	var l *lock
	if u.Key != "" {
		if l, err = p.lock(ctx, t.Name, u, ms[0]); err != nil {
			return "", nil, nil, err
		}
	}
	copies := make([]sent, len(ms))
	for i, m := range ms {
		c, err := p.pub.Publish(ctx, m)
		if err != nil {
			p.metrics.PublishError(metrics.PublishErrorReason(err))
		}
		copies[i] = sent{m: m, c: c, err: err}
	}
	if l != nil {
		p.record(ctx, l)
	}
	id := ms[0].MessageID
	if len(ms) == 1 && copies[0].err != nil {
		if errors.Is(copies[0].err, ErrInvalid) {
			id = "" // not sent, and the id may be what is wrong
		}
		p.unlock(l, copies)
		return id, nil, nil, copies[0].err
	}
	return id, copies, l, nil
}

// settle waits for the confirms of one task's copies and counts them. It
// waits for every copy even after one failed, so that the caller learns
// which queues have the task: a *QueuesError when there are several.
func (p *Producer) settle(ctx context.Context, taskName, id string, copies []sent, l *lock) error {
	defer p.unlock(l, copies)
	for i := range copies {
		s := &copies[i]
		if s.err != nil {
			continue // refused by Publish, and counted there
		}
		if s.err = s.c.Wait(ctx); s.err != nil {
			p.metrics.PublishError(metrics.PublishErrorReason(s.err))
			continue
		}
		p.metrics.PublishedOne(taskName, p.queueLabel(s.m.Exchange, s.m.Key))
	}
	if len(copies) == 1 {
		return copies[0].err
	}
	qe := &QueuesError{ID: id}
	for _, s := range copies {
		q := p.queueLabel(s.m.Exchange, s.m.Key)
		if s.err == nil {
			qe.Enqueued = append(qe.Enqueued, q)
		} else {
			qe.Failed, qe.Errs = append(qe.Failed, q), append(qe.Errs, s.err)
		}
	}
	if len(qe.Failed) == 0 {
		return nil
	}
	return qe
}

// QueuesError reports a delayed task whose route reaches several queues
// and which did not reach them all. Such a task goes into the delay levels
// as one copy per queue, each confirmed on its own, so some may be
// enqueued and others not; the producer waits for every copy before it
// says which. Enqueue it again to each of the Failed queues only, with
// WithQueue(queue), WithID(ID) and the same delay: the Enqueued ones
// already have it.
type QueuesError struct {
	ID       string   // the task's id
	Enqueued []string // queues whose copy the broker confirmed
	Failed   []string // queues whose copy is not, or not surely, enqueued
	Errs     []error  // Errs[i] is why for Failed[i]
}

// Error names the queues on both sides, the first failure and what to do.
func (e *QueuesError) Error() string {
	got := "none of them"
	if len(e.Enqueued) > 0 {
		got = strings.Join(e.Enqueued, ", ")
	}
	return fmt.Sprintf("a task delayed for %d queues reached %s, and not (or not surely) %s: %v; enqueue it again to each of those with WithQueue and WithID(%q)",
		len(e.Enqueued)+len(e.Failed), got, strings.Join(e.Failed, ", "), e.Errs[0], e.ID)
}

// Unwrap returns the failures, so errors.Is sees ErrConnectionLost or a
// context's error through it.
func (e *QueuesError) Unwrap() []error { return e.Errs }

// queueLabel names the queue a publish was for, for the queue label: the
// key on the default exchange or the delay levels' target, else the
// topology's single queue bound with the key, else the key itself.
func (p *Producer) queueLabel(exchange, key string) string {
	switch exchange {
	case "":
		return key
	case routing.DelayEntry:
		if _, q, err := routing.ParseDelayKey(key); err == nil {
			return q
		}
	}
	queue := ""
	for _, b := range p.topo.Bindings {
		if b.Exchange == exchange && b.Key == key {
			if queue != "" {
				return key
			}
			queue = b.Queue
		}
	}
	if queue == "" {
		return key
	}
	return queue
}

// EnqueueBatch publishes every task, pipelined, then waits for all their
// confirms. ids[i] is the id of ts[i]; it is empty where that task failed,
// and the error is then a *BatchError saying which. When ctx ends midway,
// the tasks not yet published fail with its error and are not enqueued;
// those whose confirms have arrived are reported enqueued, with their ids.
//
// The options apply to every task, so WithID, which names one task, is
// refused with ErrInvalid (not a *BatchError, nothing sent) for a batch of
// more than one: enqueue such tasks one by one.
func (p *Producer) EnqueueBatch(ctx context.Context, ts []task.Task, opts ...Option) ([]string, error) {
	ids := make([]string, len(ts))
	if len(ts) > 1 && resolve(opts).id != "" {
		return ids, fmt.Errorf("producer: %w: WithID would give all %d tasks of the batch the same id; enqueue them one by one, each with its own WithID, or let the producer make the ids", ErrInvalid, len(ts))
	}
	errs := make([]error, len(ts))
	pending := make([][]sent, len(ts))
	locks := make([]*lock, len(ts)) // of unique tasks; nil for the others
	failed := 0
	for i, t := range ts {
		id, copies, l, err := p.publish(ctx, t, opts)
		if err != nil {
			errs[i] = enqueueError(t.Name, id, err)
			failed++
			continue
		}
		ids[i], pending[i], locks[i] = id, copies, l
	}
	for i, copies := range pending {
		if copies == nil {
			continue
		}
		if err := p.settle(ctx, ts[i].Name, ids[i], copies, locks[i]); err != nil {
			errs[i] = enqueueError(ts[i].Name, ids[i], err)
			ids[i] = ""
			failed++
		}
	}
	if failed > 0 {
		return ids, &BatchError{Errs: errs, Failed: failed}
	}
	return ids, nil
}

// BatchError reports which tasks of a batch failed.
type BatchError struct {
	Errs   []error // Errs[i] is ts[i]'s error, nil where it was enqueued
	Failed int     // number of non-nil Errs
}

// Error summarises the failures with the first one.
func (e *BatchError) Error() string {
	for _, err := range e.Errs {
		if err != nil {
			return fmt.Sprintf("producer: %d of %d tasks not enqueued; first: %v", e.Failed, len(e.Errs), err)
		}
	}
	return "producer: batch failed"
}

// Unwrap returns the individual errors, so errors.Is sees through a batch.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, e.Failed)
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Close stops the producer, and the result backend it made (not one given
// in Config.Results). Enqueues still waiting fail with ErrClosed or
// ErrConnectionLost.
func (p *Producer) Close() error {
	p.resultsOnce.Do(func() {}) // no backend starts after this
	if p.ownResults {
		_ = p.results.Close()
	}
	err := p.sup.Close() // first: it wakes enqueues waiting for a connection
	p.pub.Close()
	return err
}

// Connected reports whether the producer has a live connection now.
func (p *Producer) Connected() bool { return p.sup.Connected() }

// build turns t into the message(s) to publish: one to its route, or, for
// a task due later, one per target queue into the delay levels.
func (p *Producer) build(ctx context.Context, t task.Task, opts []Option) ([]*broker.Publishing, task.Unique, error) {
	o := resolve(opts)
	var u task.Unique // set once the message is built, which checks it
	now := time.Now()
	id, err := o.identify(t, now)
	if err != nil {
		return nil, u, err
	}
	// The id comes first: a task routed to shards goes to the shard its id
	// hashes to, on that shard's lane, so that each confirm channel feeds
	// as few queues as it can.
	route, lane := o.route, 0
	if route == nil {
		if s, ok := p.routes.ShardsFor(t.Name); ok {
			i := s.Shard(id)
			route, lane = &routing.Route{Exchange: s.Exchange, Key: s.Name(i)}, i+1
		} else {
			r, err := p.routes.Lookup(t.Name)
			if err != nil {
				return nil, u, fmt.Errorf("%w (add a route or use WithQueue)", err)
			}
			route = &r
		}
	}
	m, err := o.message(t, id, now)
	if err != nil {
		return nil, u, err
	}
	if m.Unique != "" {
		u = o.uniqueOf(t)
	}
	pub := broker.Publishing{
		Exchange:    route.Exchange,
		Key:         route.Key,
		MessageID:   id,
		ContentType: m.ContentType,
		Headers:     m.Headers,
		Body:        m.Body,
		Priority:    m.Priority,
		Timestamp:   now,
		Lane:        lane,
	}
	if o.replyTo != "" {
		pub.ReplyTo, pub.CorrelationID = o.replyTo, id
	}
	// Any time to wait goes through the delay levels, which round it up to
	// whole seconds; none, or an ETA past, runs at once, and so does an
	// early delivery, with its eta header for the worker to wait on. A
	// task in another protocol's format goes early too, as that
	// protocol's own clients send it: its consumers may not be warren's.
	delay := m.ETA.Sub(now)
	if m.ETA.IsZero() || delay <= 0 || o.early || t.Format != nil {
		return []*broker.Publishing{&pub}, u, nil
	}
	queues, err := p.targets(*route)
	if err != nil {
		return nil, u, err
	}
	// Every copy is checked before the first binding or publish, so that a
	// task is refused whole; binding a key too long would cost the
	// connection as a publish would.
	if err := p.pub.Check(&pub); err != nil {
		return nil, u, err
	}
	out := make([]*broker.Publishing, len(queues))
	for i, q := range queues {
		d := pub
		d.Exchange, d.Key = routing.DelayEntry, routing.DelayKey(delay, q)
		if err := p.pub.Check(&d); err != nil {
			return nil, u, fmt.Errorf("delayed delivery to queue %q, whose name the delay levels' routing key carries after %d bytes of delay: %w", q, 2*routing.DelayLevels, err)
		}
		out[i] = &d
	}
	for _, q := range queues {
		if err := p.sup.EnsureBinding(ctx, routing.DelayBinding(q)); err != nil {
			return nil, u, err
		}
	}
	return out, u, nil
}

// targets returns the queues a route reaches, for delayed delivery: the
// queue itself on the default exchange, else the queues the topology binds
// to the route's direct exchange with its key.
func (p *Producer) targets(r routing.Route) ([]string, error) {
	if r.Exchange == "" {
		return []string{r.Key}, nil
	}
	var qs []string
	for _, b := range p.topo.Bindings {
		if b.Exchange == r.Exchange && b.Key == r.Key {
			qs = append(qs, b.Queue)
		}
	}
	for _, x := range p.topo.Exchanges {
		if x.Name == r.Exchange && x.Kind != "" && x.Kind != routing.Direct {
			qs = nil // topic and fanout routing is the broker's to compute
		}
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%w: exchange %q key %q (delayed tasks go to queues: name the bindings in Config.Topology, or use WithQueue)", ErrNoDelayTarget, r.Exchange, r.Key)
	}
	return qs, nil
}
