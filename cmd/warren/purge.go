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
	insp, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer insp.Close()

	st, err := insp.Queue(ctx, q)
	if err != nil {
		return o.explain(notFound(q, err))
	}
	purged := 0
	if st.Ready > 0 {
		question := fmt.Sprintf("delete the %d ready messages of queue %q? Messages being worked on and the dead letters in %s stay", st.Ready, q, routing.DeadQueue(q))
		if err := e.confirm(o, *yes, question); err != nil {
			return err
		}
		purged, err = insp.Purge(ctx, q)
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
