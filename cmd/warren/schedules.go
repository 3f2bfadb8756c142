package main

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenq/warren/schedule"
)

const schedulesSynopsis = "FILE [-group NAME] [-json]"

// runSchedules shows a schedule file's periodic tasks as the broker knows
// them: each one's last and next fire, and the election's candidates and
// leader. The file says what the schedules are; the broker only keeps
// their progress.
func runSchedules(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("schedules", schedulesSynopsis, true)
	group := fs.String("group", "", "the workers' -scheduler-group (empty: the default)")
	pos, err := o.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return o.usagef("name the schedule file the workers run with, e.g. warren schedules schedules.yaml")
	}
	ss, err := schedule.ParseFile(pos[0])
	if err != nil {
		return err
	}
	insp, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer insp.Close()
	rep, err := insp.Schedules(ctx, *group, ss)
	if err != nil {
		return o.explain(err)
	}
	if o.json {
		type row struct {
			Name      string     `json:"name"`
			Task      string     `json:"task"`
			When      string     `json:"when"`
			Queue     string     `json:"queue,omitempty"`
			Last      *time.Time `json:"last_fire,omitempty"`
			FirstSeen *time.Time `json:"first_seen,omitempty"` // seen by a leader, not fired yet
			By        string     `json:"by,omitempty"`         // the process that wrote last_fire or first_seen
			Next      *time.Time `json:"next_fire,omitempty"`
		}
		out := struct {
			Election  string `json:"election"`
			Consuming bool   `json:"consuming"`
			Leader    string `json:"leader,omitempty"`
			Schedules []row  `json:"schedules"`
		}{rep.Election, rep.Consuming, rep.Leader, []row{}}
		for _, s := range rep.Schedules {
			r := row{Name: s.Name, Task: s.Task, When: s.When, Queue: s.Queue, By: s.FiredBy, Next: timeOrNil(s.Next)}
			if s.Baseline {
				r.FirstSeen = timeOrNil(s.Last)
			} else {
				r.Last = timeOrNil(s.Last)
			}
			out.Schedules = append(out.Schedules, r)
		}
		return writeJSON(e.stdout, out)
	}
	consuming := "a worker is consuming it"
	if !rep.Consuming {
		consuming = "no worker is consuming it"
	}
	leader := "the latest fire was made by " + rep.Leader
	if rep.Leader == "" {
		leader = "no fire names its leader yet"
	}
	fmt.Fprintf(e.stdout, "election %s: %s; %s\n", rep.Election, consuming, leader)
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "NAME\tTASK\tWHEN\tQUEUE\tLAST FIRE\tNEXT FIRE")
	for _, s := range rep.Schedules {
		last := "never"
		switch {
		case s.Baseline:
			last = "none (seen " + s.Last.UTC().Format(time.RFC3339) + ")"
		case !s.Last.IsZero():
			last = s.Last.UTC().Format(time.RFC3339)
		}
		next := "never"
		if !s.Next.IsZero() {
			next = s.Next.UTC().Format(time.RFC3339)
		}
		queue := s.Queue
		if queue == "" {
			queue = "(the worker's)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Task, s.When, queue, last, next)
	}
	return tw.Flush()
}

// timeOrNil returns t in UTC, as the table prints it, or nil if zero.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
