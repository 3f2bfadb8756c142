// Package scheduler fires periodic tasks (package schedule) from exactly
// one process at a time, with RabbitMQ alone.
//
// Election: every candidate consumes the quorum queue warren.scheduler,
// declared with single active consumer, which holds a token message. The
// broker delivers to one consumer only; the one holding the token, unacked,
// is the leader. When its connection dies the broker takes the token back
// and gives it to the next consumer, which leads from then on. The leader
// renews the token every few seconds (publishes a new one, acks the old),
// which keeps consumer_timeout away and is its lease: a leader that does
// not see a token come back within three renewals steps down, for the
// quorum queue may have moved the lead to another consumer without closing
// this one's channel (its node lost touch with the queue's leader).
//
// Progress: each schedule has a fanout exchange warren.schedule.<name>
// bound to the schedule's target queue and to a quorum queue of the same
// name that keeps one message (x-max-length 1). A fire is one publish to
// that exchange, which the broker routes to the work queue and to the
// progress queue. A new leader reads each progress queue (without taking
// the message) to learn the last fire, so a fire is neither repeated nor
// lost across a failover; its task id (schedule.FireID) is the same
// wherever it is computed. Fires, the token and the election consumer share
// one connection: once the broker has closed it to give the token to
// another, the old leader cannot publish.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
)

// ElectionQueue is the default queue whose token makes a process the
// leader. Every candidate sharing an election queue must fire the same
// schedules: the leader fires only its own.
const ElectionQueue = "warren.scheduler"

// Headers of fires and progress records.
const (
	HeaderSchedule = task.HeaderPrefix + "schedule" // the schedule's name
	HeaderFireAt   = task.HeaderPrefix + "fire-at"  // the fire time, Unix microseconds
	// HeaderBaseline marks a progress record that is no fire: a new
	// schedule's starting point, written when a leader first sees it.
	HeaderBaseline = task.HeaderPrefix + "baseline"
	// HeaderHolder names the process that published a token, a fire or a
	// baseline: host/pid/random.
	HeaderHolder = task.HeaderPrefix + "holder"
)

// Name returns the name of the exchange and of the progress queue of the
// schedule called name.
func Name(name string) string { return "warren.schedule." + name }

// Config configures a Scheduler.
type Config struct {
	// Conn reaches the broker; the scheduler has a connection of its own.
	Conn conn.Config
	// Schedules are fired; each must have a Queue.
	Schedules []*schedule.Schedule
	// Election names the election queue; defaults to ElectionQueue.
	// Deployments that share a broker (or a vhost) but not their
	// schedules need one each.
	Election string
	// Topology is the program's: a schedule's queue declared there is
	// bound as declared; any other is used as it exists (or created as a
	// plain classic queue).
	Topology routing.Topology
	// Grace is how late a fire may be and still count as on time for a
	// schedule whose missed fires are skipped. Defaults to 10s.
	Grace time.Duration
	// Renew is how often the leader replaces its token. It is also the
	// lease: a leader that has not received a token back within three
	// renewals steps down (gives the token back and subscribes again), for
	// the broker may have given the lead to another consumer without
	// closing this one's channel (a quorum queue that lost touch with the
	// leader's node). Defaults to 5s: a publish and an ack, and far under
	// RabbitMQ's consumer_timeout.
	Renew time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Metrics records fires, misses, the next fire and leadership; nil:
	// none.
	Metrics *metrics.Metrics
	// OnFire, if set, is called after each fire is confirmed.
	OnFire func(s *schedule.Schedule, at time.Time, id string)
	// OnLeader, if set, is called when the process becomes leader (true)
	// or stops being it (false).
	OnLeader func(bool)
}

// Scheduler is one candidate: it fires the schedules while it leads.
type Scheduler struct {
	cfg    Config
	log    *zap.Logger
	sup    *broker.Supervisor
	pub    *broker.Publisher
	holder string
	leader atomic.Bool

	// loseRenewals makes renewals vanish on their way to the broker, for
	// the test of the lease: on one RabbitMQ 3.10 node nothing moves the
	// lead of a single-active-consumer queue without closing the old
	// consumer's channel, which is what the lease guards against on a
	// cluster.
	loseRenewals atomic.Bool

	probes sync.WaitGroup // clock checks running
}

// New checks cfg and returns a candidate; Run makes it take part.
func New(cfg Config) (*Scheduler, error) {
	if len(cfg.Schedules) == 0 {
		return nil, errors.New("scheduler: no schedules")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Renew <= 0 {
		cfg.Renew = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Election == "" {
		cfg.Election = ElectionQueue
	}
	topo, err := topology(cfg)
	if err != nil {
		return nil, err
	}
	sup, err := broker.New(broker.Config{Conn: cfg.Conn, Role: "scheduler", Topology: topo})
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cfg.Schedules))
	for i, sc := range cfg.Schedules {
		names[i] = sc.Name
	}
	cfg.Metrics.ForSchedules(group(cfg.Election), names).Leading(group(cfg.Election), false)
	host, _ := os.Hostname()
	return &Scheduler{
		cfg: cfg, log: sup.Logger(), sup: sup, pub: broker.NewPublisher(sup, 1),
		holder: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8]),
	}, nil
}

// topology is what the scheduler declares: the election queue, and per
// schedule its exchange, its progress queue and the two bindings.
func topology(cfg Config) (routing.Topology, error) {
	t := routing.Topology{Queues: []routing.Queue{{
		Name: cfg.Election, Quorum: true, NoDeadLetters: true,
		Args: map[string]any{"x-single-active-consumer": true},
	}}}
	seen := map[string]bool{}
	for _, s := range cfg.Schedules {
		if seen[s.Name] {
			return t, fmt.Errorf("scheduler: two schedules named %q", s.Name)
		}
		seen[s.Name] = true
		if s.Queue == "" {
			return t, fmt.Errorf("scheduler: schedule %q has no queue to send its fires to", s.Name)
		}
		n := Name(s.Name)
		t.Exchanges = append(t.Exchanges, routing.Exchange{Name: n, Kind: routing.Fanout})
		t.Queues = append(t.Queues, routing.Queue{Name: n, Quorum: true, NoDeadLetters: true, Args: map[string]any{"x-max-length": int64(1)}})
		target, ok := cfg.Topology.Queue(s.Queue)
		if !ok {
			target = routing.Queue{Name: s.Queue, KeepExisting: true}
		}
		t = t.Merge(routing.Topology{Queues: []routing.Queue{target}})
		t.Bindings = append(t.Bindings, routing.Binding{Exchange: n, Queue: n}, routing.Binding{Exchange: n, Queue: s.Queue})
	}
	if err := t.Validate(); err != nil {
		return t, fmt.Errorf("scheduler: %w", err)
	}
	return t, nil
}

// group is the metrics' name for the group electing through queue
// election: what follows "warren.scheduler.", or "default".
func group(election string) string {
	if g, ok := strings.CutPrefix(election, ElectionQueue+"."); ok && g != "" {
		return g
	}
	if election == ElectionQueue {
		return "default"
	}
	return election
}

// Leader reports whether this process fires the schedules now.
func (s *Scheduler) Leader() bool { return s.leader.Load() }

// Run takes part in the election until ctx is done, and fires the
// schedules while it leads. It returns nil when ctx is done.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.sup.Close()
	defer s.pub.Close()
	defer s.probes.Wait()
	cons := s.sup.NewConsumer(s.cfg.Election, 4, nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cons.Run(ctx) }()
	defer func() {
		wg.Wait()
		// The held token goes back to the queue, and to the next
		// candidate, with the channel.
		cons.Close()
	}()

	l := &leading{s: s, cons: cons}
	offered := false
	renew := time.NewTicker(s.cfg.Renew)
	defer renew.Stop()
	clock := time.NewTicker(10 * time.Minute) // the leader's clock, again now and then
	defer clock.Stop()
	for {
		if !offered && cons.Consuming() {
			// No token waiting: put one in. One held by a leader is not
			// ready, so this may add a second; the leader acks extras.
			offered = s.offerToken(ctx) == nil
		}
		wait := time.Second // leadership and the token are checked this often
		if l.held != nil && l.loaded {
			if next := l.next(); !next.IsZero() {
				wait = min(wait, max(next.Sub(s.cfg.Now()), 0))
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			s.setLeader(false)
			return nil
		case d := <-cons.Deliveries():
			l.token(d)
		case <-clock.C:
			if l.held != nil {
				s.checkClockSoon(ctx)
			}
		case <-renew.C:
			if l.held != nil && !s.loseRenewals.Load() {
				if err := s.publishToken(ctx); err != nil {
					s.log.Warn("scheduler: renewing the token failed", zap.Error(err))
				}
			}
		case <-timer.C:
		}
		timer.Stop()
		if l.held != nil && !l.held.Live() {
			s.log.Warn("scheduler: lost the lead (its channel closed)")
			l.reset()
			offered = false
		}
		if l.held != nil && !l.leased() {
			s.log.Warn("scheduler: no token came back within the lease; stepping down",
				zap.Duration("lease", s.lease()), zap.Time("last_token", l.lastToken))
			cons.Drop()
			l.reset()
			offered = false
		}
		if l.held != nil {
			l.run(ctx)
		}
	}
}

func (s *Scheduler) setLeader(v bool) {
	if s.leader.Swap(v) == v {
		return
	}
	s.cfg.Metrics.Leading(group(s.cfg.Election), v)
	if !v {
		for _, sc := range s.cfg.Schedules {
			s.cfg.Metrics.NextFire(sc.Name, time.Time{}) // the leader's to say
		}
	}
	if s.cfg.OnLeader != nil {
		s.cfg.OnLeader(v)
	}
}

// offerToken publishes a token to the election queue if none is ready.
func (s *Scheduler) offerToken(ctx context.Context) error {
	st, err := s.sup.InspectQueue(ctx, s.cfg.Election)
	if err != nil || st.Ready > 0 {
		return err
	}
	return s.publishToken(ctx)
}

// lease is how long a leader leads without a token coming back.
func (s *Scheduler) lease() time.Duration { return 3 * s.cfg.Renew }

// publishToken puts a token in the election queue.
func (s *Scheduler) publishToken(ctx context.Context) error {
	return s.publish(ctx, &broker.Publishing{
		Key: s.cfg.Election, MessageID: uuid.NewString(), Timestamp: s.cfg.Now(),
		Headers: map[string]any{HeaderHolder: s.holder},
	})
}

// publish sends m and waits, a bounded time, for its confirm.
func (s *Scheduler) publish(ctx context.Context, m *broker.Publishing) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := s.pub.Publish(ctx, m)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// leading is the state of a leader: the token it holds and each
// schedule's last fire.
type leading struct {
	s         *Scheduler
	cons      *broker.Consumer
	held      *broker.Delivery
	lastToken time.Time // when a token last arrived
	loaded    bool
	last      map[string]time.Time
}

// leased reports whether a token arrived within the lease.
func (l *leading) leased() bool { return time.Since(l.lastToken) <= l.s.lease() }

func (l *leading) reset() {
	l.held, l.loaded, l.last = nil, false, nil
	l.s.setLeader(false)
}

// token takes a token delivery: the first makes this process the leader;
// a later one on the same channel replaces the one held (a renewal, or an
// extra token a candidate added), which is acked.
func (l *leading) token(d *broker.Delivery) {
	if l.held != nil && l.held.Live() && l.held.Gen == d.Gen {
		_ = l.held.Ack()
		l.held, l.lastToken = d, time.Now()
		return
	}
	l.reset()
	l.held, l.lastToken = d, time.Now()
	l.s.log.Info("scheduler: leading", zap.String("holder", l.s.holder), zap.Int("schedules", len(l.s.cfg.Schedules)))
}

// next returns the earliest next fire over the schedules.
func (l *leading) next() time.Time {
	now := l.s.cfg.Now()
	var first time.Time
	for _, sc := range l.s.cfg.Schedules {
		from := l.last[sc.Name]
		if from.Before(now) {
			from = now
		}
		if at := sc.Next(from); !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// run loads the progress if need be, then fires what is due.
func (l *leading) run(ctx context.Context) {
	if !l.loaded {
		if err := l.load(ctx); err != nil {
			l.s.log.Warn("scheduler: reading the schedules' progress failed; trying again", zap.Error(err))
			return
		}
		l.loaded = true
		l.s.setLeader(true)
	}
	now := l.s.cfg.Now()
	for _, sc := range l.s.cfg.Schedules {
		if !l.leased() {
			return // the loop steps down
		}
		at, ok, missed := sc.Due(l.last[sc.Name], now, l.s.cfg.Grace)
		if missed > 0 {
			l.s.log.Warn("scheduler: fires missed while no scheduler ran", zap.String("schedule", sc.Name),
				zap.Int("missed", missed), zap.Stringer("policy", sc.Missed))
			l.s.cfg.Metrics.Missed(sc.Name, missed)
		}
		if !ok {
			if missed > 0 {
				// Skipped: the progress moves past them, so that they are
				// not counted again.
				l.last[sc.Name] = now
			}
			l.s.cfg.Metrics.NextFire(sc.Name, sc.Next(maxTime(l.last[sc.Name], now)))
			continue
		}
		id, err := l.fire(ctx, sc, at)
		if err != nil {
			// Whether the broker routed it is unknown: the progress
			// queue says, and is read again before the next fire.
			l.s.log.Warn("scheduler: fire failed; reading the progress again before trying again", zap.String("schedule", sc.Name), zap.Time("at", at), zap.Error(err))
			l.loaded = false
			return
		}
		l.last[sc.Name] = at
		l.s.cfg.Metrics.Fired(sc.Name, sc.Task.Name, sc.Queue)
		l.s.cfg.Metrics.NextFire(sc.Name, sc.Next(maxTime(at, now)))
		l.s.log.Info("scheduler: fired", zap.String("schedule", sc.Name), zap.String("task", sc.Task.Name),
			zap.Time("at", at), zap.String("id", id), zap.Duration("late", now.Sub(at)))
		if l.s.cfg.OnFire != nil {
			l.s.cfg.OnFire(sc, at, id)
		}
	}
}

// load reads each schedule's last fire from its progress queue, and
// writes a baseline for a schedule that has none: it starts now, and a
// leader that takes over before its first fire knows that. It declares
// the topology again first: a work queue deleted and declared anew by its
// workers has lost its binding to the schedule's exchange.
func (l *leading) load(ctx context.Context) error {
	if err := l.s.sup.Redeclare(ctx); err != nil {
		return err
	}
	l.s.checkClockSoon(ctx)
	records, err := l.progress(ctx)
	if err != nil {
		return err
	}
	last := map[string]time.Time{}
	now := l.s.cfg.Now()
	for name, r := range records {
		last[name] = r.At
		if ahead := r.At.Sub(now); ahead > clockSlack {
			// Either the leader that wrote it read a clock ahead, or this
			// one's is behind: fires would come early, or this leader
			// would wait that long before its first.
			l.s.log.Warn("scheduler: the last fire recorded is ahead of this process's clock: synchronise the hosts' clocks (NTP)",
				zap.String("schedule", name), zap.Time("recorded", r.At), zap.String("recorded_by", r.Holder), zap.Duration("ahead", ahead))
		}
	}
	for _, sc := range l.s.cfg.Schedules {
		if _, ok := last[sc.Name]; ok {
			continue
		}
		if err := l.s.publish(ctx, &broker.Publishing{
			Key: Name(sc.Name), MessageID: uuid.NewString(), Timestamp: now, Live: l.held.Live,
			Headers: map[string]any{HeaderSchedule: sc.Name, HeaderFireAt: now.UnixMicro(), HeaderBaseline: true, HeaderHolder: l.s.holder},
		}); err != nil {
			return err
		}
		last[sc.Name] = now
	}
	l.last = last
	return nil
}

// progress reads each schedule's last fire without taking it. Empty queues
// are read again, twice, a moment apart: a leader that died while reading
// one held its record, which the broker gives back when it sees that
// leader's connection close, the moment it gives the token to this one; a
// baseline written before the record is back would push it out.
func (l *leading) progress(ctx context.Context) (map[string]Record, error) {
	records := map[string]Record{}
	for pass := 0; pass < 3; pass++ {
		if pass > 0 {
			select {
			case <-time.After(250 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		rd, err := l.s.sup.OpenReader(ctx)
		if err != nil {
			return nil, err
		}
		missing := false
		for _, sc := range l.s.cfg.Schedules {
			if _, ok := records[sc.Name]; ok {
				continue
			}
			r, ok, err := ReadProgress(rd, sc.Name)
			if err != nil {
				_ = rd.Close()
				return nil, err
			}
			if ok {
				records[sc.Name] = r
			} else {
				missing = true
			}
		}
		_ = rd.Close() // gives every record back: they were only read
		if !missing {
			break
		}
	}
	return records, nil
}

// clockSlack is how far ahead of this process's clock a recorded fire may
// be, or how far this clock may be off the broker's, before the scheduler
// says the clocks disagree.
const clockSlack = 2 * time.Second

// checkClockSoon runs checkClock beside the run loop, which must not wait
// for it: fires and renewals go on meanwhile. Run waits for it on return.
func (s *Scheduler) checkClockSoon(ctx context.Context) {
	s.probes.Add(1)
	go func() {
		defer s.probes.Done()
		s.checkClock(ctx)
	}()
}

// checkClock compares this process's clock, by which it fires, with the
// broker's (to the second: see broker.BrokerTime), and warns when they
// differ by more than clockSlack: every fire would be that early or late.
func (s *Scheduler) checkClock(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	before := s.cfg.Now()
	bt, err := s.sup.BrokerTime(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Info("scheduler: reading the broker's clock failed; the leader's clock is not checked this time", zap.Error(err))
		}
		return
	}
	after := s.cfg.Now()
	// The broker's second holds the moment it dead-lettered the probe,
	// between before and after: off only if outside that, with slack.
	s.log.Debug("scheduler: clock checked against the broker's", zap.Time("broker_time", bt), zap.Time("local_time", after))
	switch {
	case bt.Add(time.Second).Before(before.Add(-clockSlack)):
		s.log.Warn("scheduler: this process's clock runs ahead of the broker's: fires will be early; synchronise the hosts' clocks (NTP)",
			zap.Duration("ahead", before.Sub(bt.Add(time.Second))), zap.Time("broker_time", bt))
	case bt.After(after.Add(clockSlack)):
		s.log.Warn("scheduler: this process's clock runs behind the broker's: fires will be late; synchronise the hosts' clocks (NTP)",
			zap.Duration("behind", bt.Sub(after)), zap.Time("broker_time", bt))
	}
}

// Record is a schedule's progress record as read from its queue.
type Record struct {
	At       time.Time // the last fire, or the baseline
	Baseline bool      // At is when a leader first saw the schedule, not a fire
	Holder   string    // the process that wrote it
}

// ReadProgress reads the progress record of the schedule called name with
// rd, giving it back; ok is false when there is none.
func ReadProgress(rd *broker.Reader, name string) (r Record, ok bool, err error) {
	d, ok, err := rd.Get(Name(name))
	if err != nil || !ok {
		return Record{}, false, err
	}
	defer func() { _ = d.Nack(true) }()
	at, isRecord := fireAt(d, ok)
	if !isRecord {
		return Record{}, false, nil
	}
	baseline, _ := d.Headers[HeaderBaseline].(bool)
	holder, _ := d.Headers[HeaderHolder].(string)
	return Record{At: at, Baseline: baseline, Holder: holder}, true, nil
}

// fireAt returns the fire time a progress record carries.
func fireAt(d *broker.Delivery, ok bool) (time.Time, bool) {
	if !ok {
		return time.Time{}, false
	}
	us, isInt := d.Headers[HeaderFireAt].(int64)
	return time.UnixMicro(us), isInt
}

// fire publishes one fire of sc at at to its exchange, which routes it to
// the work queue and the progress queue together, and waits for the
// confirm. It is sent only while this process still holds the token.
func (l *leading) fire(ctx context.Context, sc *schedule.Schedule, at time.Time) (string, error) {
	body, contentType, err := sc.Task.Encode()
	if err != nil {
		return "", err
	}
	id := sc.FireID(at)
	m := task.Message{ID: id, Task: sc.Task.Name, MaxAttempts: sc.MaxAttempts, EnqueuedAt: at}
	if sc.Expiry > 0 {
		m.Expires = at.Add(sc.Expiry)
	}
	// The confirm is awaited as long as the connection lives, not for a
	// bounded time: a fire given up on while the broker may still route
	// it would be sent again.
	c, err := l.s.pub.Publish(ctx, &broker.Publishing{
		Exchange: Name(sc.Name), MessageID: id, ContentType: contentType, Body: body,
		Headers:   m.BuildHeaders(map[string]any{HeaderSchedule: sc.Name, HeaderFireAt: at.UnixMicro(), HeaderHolder: l.s.holder}),
		Timestamp: l.s.cfg.Now(), Live: l.held.Live,
	})
	if err != nil {
		return id, err
	}
	return id, c.Wait(ctx)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
