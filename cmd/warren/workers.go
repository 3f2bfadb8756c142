package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/warrenq/warren/inspect"
)

const workersSynopsis = "[-queue Q] [-wait D] [-json]"

// runWorkers lists the workers alive: it pings them all over the broker
// and prints who answered within -wait, what each consumes and runs now.
func runWorkers(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("workers", workersSynopsis, true)
	queue := fs.String("queue", "", "only the workers that consume this queue")
	wait := fs.Duration("wait", inspect.DefaultPresenceWait, "how long to wait for the workers' answers")
	pos, err := o.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return o.usagef("unexpected arguments %q: name a queue with -queue", pos)
	}
	if *wait <= 0 {
		return o.usagef("-wait must be positive")
	}
	insp, err := o.dialWith(ctx, inspect.Config{NoManagement: true, PresenceWait: *wait})
	if err != nil {
		return err
	}
	defer insp.Close()
	ws, err := insp.Workers(ctx)
	if err != nil {
		return o.explain(err)
	}
	if *queue != "" {
		ws = slices.DeleteFunc(ws, func(w inspect.Worker) bool { return !slices.Contains(w.Queues, *queue) })
	}
	if o.json {
		if ws == nil {
			ws = []inspect.Worker{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Workers []inspect.Worker `json:"workers"`
		}{ws})
	}
	if len(ws) == 0 {
		fmt.Fprintf(e.stdout, "no worker answered within %v", *wait)
		if *queue != "" {
			fmt.Fprintf(e.stdout, " that consumes %s", *queue)
		}
		fmt.Fprintln(e.stdout, " (a worker announces itself unless started with -presence-interval -1 or built with a warren older than presence)")
		return nil
	}
	now := time.Now()
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "WORKER\tSTATE\tUP\tQUEUES\tRUNNING\tSUCCEEDED\tRETRIED\tDEAD\tVERSION")
	for _, w := range ws {
		state := w.State
		if w.Leading {
			state += ", leads schedules"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%s\n", w.ID, state, since(now, w.Started),
			strings.Join(w.Queues, ","), w.RunningCount, w.Concurrency,
			w.Counts.Succeeded, w.Counts.Retried, w.Counts.Dead, w.Version)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var running int
	for _, w := range ws {
		running += len(w.Running)
	}
	if running == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	tw = newTable(e.stdout)
	fmt.Fprintln(tw, "TASK\tID\tQUEUE\tATTEMPT\tFOR\tWORKER")
	for _, w := range ws {
		for _, r := range w.Running {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", oneLine(r.Task, 40), r.ID, r.Queue, r.Attempt, since(now, r.Started), w.ID)
		}
	}
	return tw.Flush()
}

// since is how long ago t was, to the second, for a table.
func since(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0 // the worker's clock is ahead of ours
	}
	return d.String()
}
