package main

import (
	"context"
	"fmt"

	"github.com/warrenq/warren/routing"
)

const deleteSynopsis = "QUEUE [-yes] [-json]"

// runDelete removes a work queue and its dead-letter queue, messages and
// all: the way to clean up a queue no program uses any more. It refuses
// while workers consume the queue, since a running worker would only
// declare it again.
func runDelete(ctx context.Context, e *env, args []string) error {
	c, err := openQueueCmd(ctx, e, "delete", deleteSynopsis, args)
	if err != nil {
		return err
	}
	defer c.insp.Close()
	o, q, st := c.o, c.queue, c.st
	if st.Consumers > 0 {
		return fmt.Errorf("queue %q has %d consumers: stop the workers that consume it first (a running worker declares its queues again)", q, st.Consumers)
	}
	dead := 0
	if st.Dead != nil {
		dead = *st.Dead
	}
	question := fmt.Sprintf("delete queue %q with its %d ready messages, and %s with its %d dead letters?", q, st.Ready, routing.DeadQueue(q), dead)
	if err := e.confirm(o, c.yes, question); err != nil {
		return err
	}
	ready, dead, err := c.insp.Delete(ctx, q)
	if err != nil {
		return o.explain(notFound(q, err))
	}
	if o.json {
		return writeJSON(e.stdout, struct {
			Queue string `json:"queue"`
			Ready int    `json:"ready"`
			Dead  int    `json:"dead"`
		}{q, ready, dead})
	}
	_, err = fmt.Fprintf(e.stdout, "deleted queue %q (%d ready messages) and %s (%d dead letters)\n", q, ready, routing.DeadQueue(q), dead)
	return err
}
