package inspect

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/schedule"
)

// ScheduleState is what the broker tells of one periodic task.
type ScheduleState struct {
	Name string
	Task string
	When string // the cron expression and its time zone, or "every D"
	// Queue is where its fires go; empty when the worker's only queue
	// stands in for it.
	Queue string
	// Last is the last fire, or with Baseline set the moment a leader first
	// saw the schedule; zero when no leader has seen it yet.
	Last     time.Time
	Baseline bool
	FiredBy  string    // the process that wrote Last (host/pid/random)
	Next     time.Time // the next fire after Last and now; zero if none
}

// ScheduleReport is the answer of Schedules.
type ScheduleReport struct {
	Election string // the election queue
	// Consuming says whether a worker consumes the election queue: a
	// leader, or a candidate about to lead. RabbitMQ 3.10 counts only the
	// active consumer of a single-active-consumer queue, so how many
	// candidates stand by is not known here.
	Consuming bool
	// Leader is the process that made the latest fire or baseline of any
	// schedule: the leader then, and most likely now.
	Leader    string
	Schedules []ScheduleState
}

// Schedules reads, for the schedules ss of the scheduler group group
// (empty: the default one), the progress each one's leader recorded on the
// broker, and the election's candidates. It reads without taking: the
// records stay for the next leader.
func (i *Inspector) Schedules(ctx context.Context, group string, ss []*schedule.Schedule) (*ScheduleReport, error) {
	cctx, cancel := i.call(ctx)
	defer cancel()
	sup, err := i.connected(cctx)
	if err != nil {
		return nil, err
	}
	rep := &ScheduleReport{Election: scheduler.ElectionQueue}
	if group != "" {
		rep.Election += "." + group
	}
	st, err := sup.InspectQueue(cctx, rep.Election)
	switch {
	case err == nil:
		rep.Consuming = st.Consumers > 0
	case !broker.IsNotFound(err):
		return nil, err
	}
	rd, err := sup.OpenReader(cctx)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	now := time.Now()
	var latest time.Time
	for _, s := range ss {
		row := ScheduleState{Name: s.Name, Task: s.Task.Name, When: when(s), Queue: s.Queue}
		r, ok, err := scheduler.ReadProgress(rd, s.Name)
		if err != nil && !broker.IsNotFound(err) {
			return nil, fmt.Errorf("schedule %q: %w", s.Name, err)
		}
		from := now
		if ok {
			row.Last, row.Baseline, row.FiredBy = r.At, r.Baseline, r.Holder
			if r.At.After(latest) {
				latest, rep.Leader = r.At, r.Holder
			}
			if r.At.After(from) {
				from = r.At
			}
		}
		row.Next = s.Next(from)
		rep.Schedules = append(rep.Schedules, row)
		if err != nil {
			// The progress queue is gone, and the reader's channel with it.
			if rd, err = sup.OpenReader(cctx); err != nil {
				return nil, err
			}
			defer rd.Close()
		}
	}
	return rep, nil
}

// shortDuration writes d as a file would: 5m, not 5m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// when says when s fires, as its file would.
func when(s *schedule.Schedule) string {
	if s.Cron == "" {
		return "every " + shortDuration(s.Every)
	}
	if s.Location != nil && s.Location != time.UTC {
		return s.Cron + " " + s.Location.String()
	}
	return s.Cron
}
