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
			Name     string     `json:"name"`
			Task     string     `json:"task"`
			When     string     `json:"when"`
			Queue    string     `json:"queue,omitempty"`
			Last     *time.Time `json:"last_fire,omitempty"`
			Baseline bool       `json:"last_is_baseline,omitempty"`
			FiredBy  string     `json:"fired_by,omitempty"`
			Next     *time.Time `json:"next_fire,omitempty"`
		}
		out := struct {
			Election   string `json:"election"`
			Candidates int    `json:"candidates"`
			Leader     string `json:"leader,omitempty"`
			Schedules  []row  `json:"schedules"`
		}{rep.Election, rep.Candidates, rep.Leader, []row{}}
		for _, s := range rep.Schedules {
			out.Schedules = append(out.Schedules, row{s.Name, s.Task, s.When, s.Queue, timeOrNil(s.Last), s.Baseline, s.FiredBy, timeOrNil(s.Next)})
		}
		return writeJSON(e.stdout, out)
	}
	leader := "the latest fire was made by " + rep.Leader
	if rep.Leader == "" {
		leader = "no fire names its leader yet"
	}
	fmt.Fprintf(e.stdout, "election %s: %d candidates; %s\n", rep.Election, rep.Candidates, leader)
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

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
