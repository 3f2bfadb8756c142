package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/warrenq/warren/inspect"
)

const peekSynopsis = "QUEUE [-n N] [-json]"

// messageJSON is one message in "peek -json".
type messageJSON struct {
	ID          string          `json:"id"`
	Task        string          `json:"task"`
	Queue       string          `json:"queue"`
	Retries     int             `json:"retries"`
	ETA         *time.Time      `json:"eta,omitempty"`
	Expires     *time.Time      `json:"expires,omitempty"`
	Undecodable string          `json:"undecodable,omitempty"`
	ContentType string          `json:"content_type,omitempty"`
	Encoding    string          `json:"encoding,omitempty"`
	Redelivered bool            `json:"redelivered"`
	Timestamp   *time.Time      `json:"timestamp,omitempty"`
	Headers     map[string]any  `json:"headers"`
	Payload     json.RawMessage `json:"payload,omitempty"`     // the body, when it is JSON
	Body        []byte          `json:"body_base64,omitempty"` // the body otherwise
}

// runPeek shows the next ready messages of a work queue and leaves them
// there. What a peek costs (the redelivered mark, a quorum queue's
// delivery count) is inspect.Peek's to say; the usage repeats it.
func runPeek(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("peek", peekSynopsis, true)
	n := fs.Int("n", 10, "show at most this many, oldest first (at most "+strconv.Itoa(inspect.MaxPeek)+")")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: warren peek %s\n", peekSynopsis)
		fs.PrintDefaults()
		fmt.Fprint(e.stderr, "\nThe messages stay in the queue, but come back marked redelivered, and on a\n"+
			"quorum queue each peek counts toward the delivery limit (x-delivery-count).\n")
	}
	q, err := o.oneQueue(o.parse(fs, args))
	if err != nil {
		return err
	}
	if *n < 1 || *n > inspect.MaxPeek {
		return o.usagef("-n must be 1 to %d", inspect.MaxPeek)
	}
	insp, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer insp.Close()
	// Counted first: while Peek holds messages unacked, they are not ready.
	st, err := insp.Queue(ctx, q)
	if err != nil {
		return o.explain(notFound(q, err))
	}
	ms, err := insp.Peek(ctx, q, *n)
	if err != nil {
		return o.explain(notFound(q, err))
	}
	ready := max(st.Ready, len(ms))

	if o.json {
		out := struct {
			Queue    string        `json:"queue"`
			Ready    int           `json:"ready"`
			Messages []messageJSON `json:"messages"`
		}{Queue: q, Ready: ready, Messages: make([]messageJSON, 0, len(ms))}
		for _, m := range ms {
			out.Messages = append(out.Messages, toMessageJSON(m))
		}
		return writeJSON(e.stdout, out)
	}
	if len(ms) == 0 {
		_, err := fmt.Fprintf(e.stdout, "no ready messages in queue %q\n", q)
		return err
	}
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "ID\tTASK\tRETRIES\tETA\tREDELIVERED\tPAYLOAD")
	for _, m := range ms {
		eta := "-"
		if !m.ETA.IsZero() {
			eta = m.ETA.UTC().Format(time.RFC3339)
		}
		payload := "(" + strconv.Itoa(len(m.Body)) + " bytes " + dash(m.ContentType) + ")"
		if isJSON(m.ContentType, m.Body) {
			payload = oneLine(string(m.Body), 60)
		}
		if m.Undecodable != "" {
			payload = "undecodable: " + oneLine(m.Undecodable, 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\t%s\n", dash(m.ID), dash(m.Task), m.Retries, eta, m.Redelivered, payload)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ready > len(ms) {
		fmt.Fprintf(e.stdout, "%d of %d ready messages of %s\n", len(ms), ready, q)
	}
	return nil
}

func toMessageJSON(m inspect.Message) messageJSON {
	j := messageJSON{ID: m.ID, Task: m.Task, Queue: m.Queue, Retries: m.Retries, Undecodable: m.Undecodable,
		ContentType: m.ContentType, Encoding: m.Encoding, Redelivered: m.Redelivered, Headers: m.Headers}
	for _, t := range []struct {
		src time.Time
		dst **time.Time
	}{{m.ETA, &j.ETA}, {m.Expires, &j.Expires}, {m.Timestamp, &j.Timestamp}} {
		if !t.src.IsZero() {
			u := t.src.UTC()
			*t.dst = &u
		}
	}
	if j.Headers == nil {
		j.Headers = map[string]any{}
	}
	if isJSON(m.ContentType, m.Body) {
		j.Payload = m.Body
	} else {
		j.Body = m.Body
	}
	return j
}
