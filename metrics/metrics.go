// Package metrics holds warren's Prometheus collectors, with the names,
// types and labels of the metrics contract in docs/architecture.md. Producers and workers
// register them on the prometheus.Registerer they are given (never the
// global one); several producers and workers in one process share them.
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/outcome"
)

// Why a task's final result never reached its caller (the reason label of
// warren_results_dropped_total).
const (
	ResultTooLarge   = "too_large"   // over worker.Config.MaxResultBytes: the caller got a FAILURE saying so
	ResultRefused    = "refused"     // the broker nacked it (a full reply queue with reject-publish, say) or it was invalid
	ResultCallerGone = "caller_gone" // unroutable: the reply queue is gone with its caller
	// ResultPublishFailed: the publish failed for a reason that may pass,
	// after the task's dead letter was confirmed: requeueing the task for
	// its result would dead-letter it twice.
	ResultPublishFailed = "publish_failed"
)

// Publish error reasons (label of warren_publish_errors_total).
const (
	ErrUnroutable     = "unroutable"
	ErrNacked         = "nacked"
	ErrConnectionLost = "connection_lost"
	ErrTimeout        = "timeout"
	ErrInvalid        = "invalid" // the message can never be sent as given (conn.ErrInvalid)
	ErrOther          = "other"
)

// Metrics are the collectors. A nil *Metrics records nothing, so code can
// call it unconditionally.
type Metrics struct {
	Published     *prometheus.CounterVec   // task, queue
	Received      *prometheus.CounterVec   // task, queue
	Processed     *prometheus.CounterVec   // task, queue, outcome
	Duration      *prometheus.HistogramVec // task, queue
	Wait          *prometheus.HistogramVec // task, queue
	InFlight      *prometheus.GaugeVec     // queue
	QueueMessages *prometheus.GaugeVec     // queue
	Reconnects    *prometheus.CounterVec   // role
	PublishErrors *prometheus.CounterVec   // reason
	StaleAcks     prometheus.Counter
	// ResultsDropped counts final results that never reached their caller,
	// by task and reason (ResultTooLarge, ResultRefused, ResultCallerGone,
	// ResultPublishFailed).
	ResultsDropped *prometheus.CounterVec

	// Unique tasks, by task name.
	Duplicates     *prometheus.CounterVec // task: enqueues refused because a task with the same key held the lock
	ReleasesFailed *prometheus.CounterVec // task: locks a worker could not release; each frees itself at its TTL

	// Periodic tasks (package schedule), by schedule name.
	ScheduleFires  *prometheus.CounterVec // schedule: fires this process made
	ScheduleMissed *prometheus.CounterVec // schedule: fires missed while no scheduler ran, never made
	ScheduleNext   *prometheus.GaugeVec   // schedule: the next fire, Unix seconds; set by the leader only
	Leader         *prometheus.GaugeVec   // group: 1 while this process fires the group's schedules, else 0
	LeaderChanges  *prometheus.CounterVec // group: times this process became the group's leader

	// LimitWaits is how long a task of a queue under a fleet-wide limit
	// waited, once taken, for what the limit asks: kind "permit" (a
	// concurrency permit) or "rate" (a rate token). Its count is the
	// tokens waited for.
	LimitWaits *prometheus.HistogramVec // queue, kind
}

// New registers the collectors on reg and returns them; nil reg gives nil
// (no metrics). Collectors already registered on reg by another producer or
// worker are shared, not an error.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, nil
	}
	// Latency buckets from 1 ms to about 4.5 min: task handlers and queue
	// waits span milliseconds to minutes.
	buckets := prometheus.ExponentialBuckets(0.001, 2.5, 14)
	m := &Metrics{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_published_total", Help: "Tasks enqueued and confirmed by the broker.",
		}, []string{"task", "queue"}),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_received_total", Help: "Deliveries a worker took.",
		}, []string{"task", "queue"}),
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tasks_processed_total", Help: "Deliveries by final outcome: success, retry, dead, expired, requeued.",
		}, []string{"task", "queue", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warren_task_duration_seconds", Help: "Handler run time.", Buckets: buckets,
		}, []string{"task", "queue"}),
		Wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warren_task_wait_seconds", Help: "Time from enqueue (or due time, for delayed tasks) to handler start.", Buckets: buckets,
		}, []string{"task", "queue"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warren_tasks_in_flight", Help: "Handlers running now.",
		}, []string{"queue"}),
		QueueMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warren_queue_messages", Help: "Ready messages in a queue, polled from the broker.",
		}, []string{"queue"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_broker_reconnects_total", Help: "Reconnects to the broker after a lost connection.",
		}, []string{"role"}),
		PublishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_publish_errors_total", Help: "Publishes (enqueues, retry copies, dead letters) that failed, by reason.",
		}, []string{"reason"}),
		StaleAcks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warren_stale_acks_total", Help: "Acks and nacks dropped because their channel had died (the broker redelivers).",
		}),
		ResultsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_results_dropped_total", Help: "Final task results that never reached their caller: too large, refused by the broker, or the caller gone.",
		}, []string{"task", "reason"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_unique_duplicates_total", Help: "Enqueues of unique tasks refused because a task with the same key was queued, delayed or running.",
		}, []string{"task"}),
		ReleasesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_unique_release_failures_total", Help: "Unique tasks' locks a worker failed to release when the task ended; each frees itself when its time runs out.",
		}, []string{"task"}),
		ScheduleFires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_schedule_fires_total", Help: "Fires of a periodic task made (confirmed) by this process while it led.",
		}, []string{"schedule"}),
		ScheduleMissed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_schedule_missed_total", Help: "Fires of a periodic task that fell due while no scheduler ran and were not made (the missed-fire policy).",
		}, []string{"schedule"}),
		ScheduleNext: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warren_schedule_next_fire_timestamp_seconds", Help: "When a periodic task fires next, in Unix seconds; exported by the leading scheduler only.",
		}, []string{"schedule"}),
		Leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warren_scheduler_leader", Help: "1 while this process is the elected scheduler that fires its group's periodic tasks, else 0.",
		}, []string{"group"}),
		LeaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_scheduler_leader_changes_total", Help: "Times this process became its group's elected scheduler.",
		}, []string{"group"}),
		LimitWaits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warren_limit_wait_seconds", Help: "Time a queue's lane waited for a fleet-wide limit's permit or rate token (kind) before running a task.", Buckets: buckets,
		}, []string{"queue", "kind"}),
	}
	var err error
	register := func(c prometheus.Collector) prometheus.Collector {
		if e := reg.Register(c); e != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(e, &are) {
				return are.ExistingCollector
			}
			err = errors.Join(err, e)
		}
		return c
	}
	m.Published = register(m.Published).(*prometheus.CounterVec)
	m.Received = register(m.Received).(*prometheus.CounterVec)
	m.Processed = register(m.Processed).(*prometheus.CounterVec)
	m.Duration = register(m.Duration).(*prometheus.HistogramVec)
	m.Wait = register(m.Wait).(*prometheus.HistogramVec)
	m.InFlight = register(m.InFlight).(*prometheus.GaugeVec)
	m.QueueMessages = register(m.QueueMessages).(*prometheus.GaugeVec)
	m.Reconnects = register(m.Reconnects).(*prometheus.CounterVec)
	m.PublishErrors = register(m.PublishErrors).(*prometheus.CounterVec)
	m.StaleAcks = register(m.StaleAcks).(prometheus.Counter)
	m.ResultsDropped = register(m.ResultsDropped).(*prometheus.CounterVec)
	m.Duplicates = register(m.Duplicates).(*prometheus.CounterVec)
	m.ReleasesFailed = register(m.ReleasesFailed).(*prometheus.CounterVec)
	m.ScheduleFires = register(m.ScheduleFires).(*prometheus.CounterVec)
	m.ScheduleMissed = register(m.ScheduleMissed).(*prometheus.CounterVec)
	m.ScheduleNext = register(m.ScheduleNext).(*prometheus.GaugeVec)
	m.Leader = register(m.Leader).(*prometheus.GaugeVec)
	m.LeaderChanges = register(m.LeaderChanges).(*prometheus.CounterVec)
	m.LimitWaits = register(m.LimitWaits).(*prometheus.HistogramVec)
	if err != nil {
		return nil, err
	}
	// Series that count rare events exist at 0 from the start: increase()
	// and rate() need a sample before the first event to see it.
	for _, reason := range []string{ErrUnroutable, ErrNacked, ErrConnectionLost, ErrTimeout, ErrInvalid, ErrOther} {
		m.PublishErrors.WithLabelValues(reason)
	}
	return m, nil
}

// ForSchedules creates the fire and miss series of each schedule, and the
// leader series of group (a scheduler group, "default" for the default
// one), at 0.
func (m *Metrics) ForSchedules(group string, names []string) *Metrics {
	if m != nil {
		m.Leader.WithLabelValues(group)
		m.LeaderChanges.WithLabelValues(group)
		for _, n := range names {
			m.ScheduleFires.WithLabelValues(n)
			m.ScheduleMissed.WithLabelValues(n)
		}
	}
	return m
}

// Fired counts one fire of schedule, and its task as published to queue.
func (m *Metrics) Fired(schedule, taskName, queue string) {
	if m == nil {
		return
	}
	m.ScheduleFires.WithLabelValues(schedule).Inc()
	m.Published.WithLabelValues(taskName, queue).Inc()
}

// Missed counts n fires of schedule that will never be made.
func (m *Metrics) Missed(schedule string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.ScheduleMissed.WithLabelValues(schedule).Add(float64(n))
}

// NextFire sets when schedule fires next; the zero time removes the
// series (this process does not lead, or the schedule never fires again).
func (m *Metrics) NextFire(schedule string, at time.Time) {
	if m == nil {
		return
	}
	if at.IsZero() {
		m.ScheduleNext.DeleteLabelValues(schedule)
		return
	}
	m.ScheduleNext.WithLabelValues(schedule).Set(float64(at.UnixNano()) / 1e9)
}

// Leading records whether this process leads group's schedulers now, and
// counts each time it starts to.
func (m *Metrics) Leading(group string, on bool) {
	if m == nil {
		return
	}
	if on {
		m.Leader.WithLabelValues(group).Set(1)
		m.LeaderChanges.WithLabelValues(group).Inc()
		return
	}
	m.Leader.WithLabelValues(group).Set(0)
}

// ForRole creates the reconnect series of role at 0 and returns m.
func (m *Metrics) ForRole(role string) *Metrics {
	if m != nil {
		m.Reconnects.WithLabelValues(role)
	}
	return m
}

// Outcome counts one delivery's final outcome.
func (m *Metrics) Outcome(taskName, queue string, o outcome.Outcome) {
	if m == nil {
		return
	}
	m.Processed.WithLabelValues(taskName, queue, string(o)).Inc()
}

// ResultDropped counts a final result of taskName that never reached its
// caller, for reason (ResultTooLarge, ResultRefused, ResultCallerGone,
// ResultPublishFailed).
func (m *Metrics) ResultDropped(taskName, reason string) {
	if m == nil {
		return
	}
	m.ResultsDropped.WithLabelValues(taskName, reason).Inc()
}

// Duplicate counts an enqueue of taskName refused as a duplicate.
func (m *Metrics) Duplicate(taskName string) {
	if m == nil {
		return
	}
	m.Duplicates.WithLabelValues(taskName).Inc()
}

// ReleaseFailed counts a lock of taskName that a worker could not release.
func (m *Metrics) ReleaseFailed(taskName string) {
	if m == nil {
		return
	}
	m.ReleasesFailed.WithLabelValues(taskName).Inc()
}

// Start records a delivery taken and its wait (negative: unknown).
func (m *Metrics) Start(taskName, queue string, wait time.Duration) {
	if m == nil {
		return
	}
	m.Received.WithLabelValues(taskName, queue).Inc()
	if wait >= 0 {
		m.Wait.WithLabelValues(taskName, queue).Observe(wait.Seconds())
	}
}

// Ran records one handler run.
func (m *Metrics) Ran(taskName, queue string, d time.Duration) {
	if m == nil {
		return
	}
	m.Duration.WithLabelValues(taskName, queue).Observe(d.Seconds())
}

// InFlightAdd moves the in-flight gauge of queue by delta.
func (m *Metrics) InFlightAdd(queue string, delta float64) {
	if m == nil {
		return
	}
	m.InFlight.WithLabelValues(queue).Add(delta)
}

// PublishError counts a failed publish by reason.
func (m *Metrics) PublishError(reason string) {
	if m == nil {
		return
	}
	m.PublishErrors.WithLabelValues(reason).Inc()
}

// CountReconnects returns c with an OnReconnect that counts a reconnect of
// role, then calls c's own.
func (m *Metrics) CountReconnects(role string, c conn.Config) conn.Config {
	own := c.OnReconnect
	c.OnReconnect = func() {
		m.Reconnect(role)
		if own != nil {
			own()
		}
	}
	return c
}

// Reconnect counts a reconnect of role.
func (m *Metrics) Reconnect(role string) {
	if m == nil {
		return
	}
	m.Reconnects.WithLabelValues(role).Inc()
}

// PublishedOne counts a confirmed enqueue.
func (m *Metrics) PublishedOne(taskName, queue string) {
	if m == nil {
		return
	}
	m.Published.WithLabelValues(taskName, queue).Inc()
}

// QueueDepth sets the polled ready count of queue.
func (m *Metrics) QueueDepth(queue string, n int) {
	if m == nil {
		return
	}
	m.QueueMessages.WithLabelValues(queue).Set(float64(n))
}

// LimitWait records a wait of kind ("permit" or "rate") for a task of
// queue under a fleet-wide limit.
func (m *Metrics) LimitWait(queue, kind string, d time.Duration) {
	if m == nil {
		return
	}
	m.LimitWaits.WithLabelValues(queue, kind).Observe(d.Seconds())
}

// StaleAck counts a dropped stale ack.
func (m *Metrics) StaleAck() {
	if m == nil {
		return
	}
	m.StaleAcks.Inc()
}

// PublishErrorReason classifies a publish error for the reason label.
func PublishErrorReason(err error) string {
	switch {
	case errors.Is(err, conn.ErrUnroutable):
		return ErrUnroutable
	case errors.Is(err, conn.ErrNacked):
		return ErrNacked
	case errors.Is(err, conn.ErrInvalid):
		return ErrInvalid
	case errors.Is(err, conn.ErrConnectionLost), errors.Is(err, conn.ErrClosed):
		return ErrConnectionLost
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ErrTimeout
	}
	return ErrOther
}
