package worker

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
)

// Leading reports whether this worker fires the schedules now: it has
// schedules and won the election.
func (w *Worker) Leading() bool { return w.sched != nil && w.sched.Leader() }

// newScheduler returns the scheduler candidate for cfg's schedules, or nil
// if there are none.
func newScheduler(cfg Config, topo routing.Topology, m *metrics.Metrics) (*scheduler.Scheduler, error) {
	if len(cfg.Schedules) == 0 {
		return nil, nil
	}
	schedules := make([]*schedule.Schedule, len(cfg.Schedules))
	for i, s := range cfg.Schedules {
		if s.Queue == "" {
			if len(cfg.Queues) != 1 {
				return nil, fmt.Errorf("worker: schedule %q names no queue, and the worker consumes %d: give it one", s.Name, len(cfg.Queues))
			}
			c := *s
			c.Queue = cfg.Queues[0]
			s = &c
		}
		schedules[i] = s
	}
	election := scheduler.ElectionQueue
	if cfg.SchedulerGroup != "" {
		election += "." + cfg.SchedulerGroup
	}
	sc, err := scheduler.New(scheduler.Config{Conn: cfg.Conn, Schedules: schedules, Topology: topo, Election: election, Metrics: m})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return sc, nil
}

// clockSlack is how far before its fire time a periodic task may arrive
// before the worker says the clock that fired it runs ahead: fire times
// are whole seconds or milliseconds, and hosts' clocks differ by a little.
const clockSlack = 2 * time.Second

// checkFireClock warns when a periodic task's fire arrives before its fire
// time by this worker's clock: the leader that fired it reads its clock
// ahead of this one's (or this one's behind), and every schedule fires
// that much early. At most one line a minute.
func (w *Worker) checkFireClock(m *task.Message, received time.Time) {
	us, ok := m.Headers[scheduler.HeaderFireAt].(int64)
	if !ok {
		return
	}
	ahead := time.UnixMicro(us).Sub(received)
	if ahead <= clockSlack {
		return
	}
	now := time.Now().UnixNano()
	last := w.clockWarned.Load()
	if now-last < int64(time.Minute) || !w.clockWarned.CompareAndSwap(last, now) {
		return
	}
	schedule, _ := m.Headers[scheduler.HeaderSchedule].(string)
	holder, _ := m.Headers[scheduler.HeaderHolder].(string)
	w.log.Warn("a periodic task arrived before its fire time: the clock of the worker that fired it runs ahead of this worker's (or this one's behind); synchronise the hosts' clocks (NTP)",
		zap.String("schedule", schedule), zap.Duration("ahead", ahead), zap.String("fired_by", holder))
}
