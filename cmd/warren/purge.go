package main

import (
	"context"
	"fmt"

	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/routing"
)

const purgeSynopsis = "QUEUE [-yes] [-json]"

// runPurge deletes the ready messages of a work queue. Its dead letters
// stay (warren dead purge), and so do the messages workers hold unacked:
// the broker purges only what is ready.
func runPurge(ctx context.Context, e *env, args []string) error {
	c, err := openQueueCmd(ctx, e, "purge", purgeSynopsis, args)
	if err != nil {
		return err
	}
	defer c.insp.Close()
	o, q, st := c.o, c.queue, c.st
	purged := 0
	if st.Ready > 0 {
		question := fmt.Sprintf("delete the %d ready messages of queue %q? Messages being worked on and the dead letters in %s stay", st.Ready, q, routing.DeadQueue(q))
		if err := e.confirm(o, c.yes, question); err != nil {
			return err
		}
		purged, err = c.insp.Purge(ctx, q)
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

// queueCmd is a command that acts on one existing work queue (purge,
// delete): its flags, the queue as it stands, and the Inspector to act
// with, which the caller closes.
type queueCmd struct {
	o     *opts
	yes   bool
	queue string
	st    inspect.Queue
	insp  *inspect.Inspector
}

// openQueueCmd parses args (QUEUE and -yes, -json), connects, and reads
// the queue, which must exist.
func openQueueCmd(ctx context.Context, e *env, cmd, synopsis string, args []string) (*queueCmd, error) {
	fs, o := e.flagSet(cmd, synopsis, true)
	c := &queueCmd{o: o}
	fs.BoolVar(&c.yes, "yes", false, "do not ask for confirmation")
	q, err := o.oneQueue(o.parse(fs, args))
	if err != nil {
		return nil, err
	}
	insp, err := o.dial(ctx)
	if err != nil {
		return nil, err
	}
	st, err := insp.Queue(ctx, q)
	if err != nil {
		insp.Close()
		return nil, o.explain(notFound(q, err))
	}
	c.queue, c.st, c.insp = q, st, insp
	return c, nil
}
