package main

import (
	"context"
	"fmt"

	"github.com/warrenq/warren/routing"
)

const purgeSynopsis = "QUEUE [-yes] [-json]"

// runPurge deletes the ready messages of a work queue. Its dead letters
// stay (warren dead purge), and so do the messages workers hold unacked:
// the broker purges only what is ready.
func runPurge(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("purge", purgeSynopsis, true)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	q, err := o.oneQueue(o.parse(fs, args))
	if err != nil {
		return err
	}
	sup, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer sup.Close()

	cctx, cancel := o.call(ctx)
	st, err := sup.InspectQueue(cctx, q)
	cancel()
	if err != nil {
		return o.explain(notFound(q, err))
	}
	purged := 0
	if st.Ready > 0 {
		question := fmt.Sprintf("delete the %d ready messages of queue %q? Messages being worked on and the dead letters in %s stay", st.Ready, q, routing.DeadQueue(q))
		if err := e.confirm(o, *yes, question); err != nil {
			return err
		}
		cctx, cancel := o.call(ctx)
		defer cancel()
		r, err := sup.OpenReader(cctx)
		if err != nil {
			return o.explain(err)
		}
		defer r.Close()
		purged, err = bounded(cctx, func() { _ = r.Close() }, func() (int, error) { return r.Purge(q) })
		if err != nil {
			return o.explain(notFound(q, err))
		}
	}
	if o.json {
		return writeJSON(e.stdout, struct {
			Queue  string `json:"queue"`
			Purged int    `json:"purged"`
		}{q, purged})
	}
	_, err = fmt.Fprintf(e.stdout, "purged %d messages from queue %q\n", purged, q)
	return err
}
