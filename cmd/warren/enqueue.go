package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

const enqueueSynopsis = "TASK (-queue Q | -exchange E -key K) [-delay D | -eta T] [-json PAYLOAD | -file F | -stdin] [-id ID] [-output text|json]"

// batchSize is how many stdin payloads are published before their
// confirms are awaited together.
const batchSize = 256

// enqueueTarget is where the tasks go, and how.
type enqueueTarget struct {
	task          string
	queue         string // -queue, through the default exchange
	exchange, key string // -exchange, -key
	opts          []producer.Option
	id            string // -id
	jsonOut       bool
	streaming     bool   // payloads from stdin, one per line
	body          []byte // the payload otherwise
}

func runEnqueue(ctx context.Context, e *env, args []string) error {
	o, t, err := parseEnqueue(e, args)
	if err != nil {
		return err
	}
	insp, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer insp.Close()
	if err := checkTarget(ctx, o, insp, t); err != nil {
		return err
	}
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: o.broker, TLS: o.tls}})
	if err != nil {
		return err
	}
	defer p.Close()
	if t.streaming {
		return enqueueStream(ctx, e, o, p, t)
	}
	cctx, cancel := o.call(ctx)
	defer cancel()
	taskID, err := p.Enqueue(cctx, task.Task{Name: t.task, Payload: json.RawMessage(t.body)}, t.opts...)
	if err != nil {
		return withHint(enqueueErr(o, t, err))
	}
	if t.jsonOut {
		// One object on one line, as the bulk form prints per task.
		return json.NewEncoder(e.stdout).Encode(enqueued{ID: taskID, Task: t.task, Queue: t.queue, Exchange: t.exchange, Key: t.key})
	}
	_, err = fmt.Fprintln(e.stdout, taskID)
	return err
}

// parseEnqueue checks the whole command line before anything touches the
// broker.
func parseEnqueue(e *env, args []string) (*opts, *enqueueTarget, error) {
	fs, o := e.flagSet("enqueue", enqueueSynopsis, false)
	t := &enqueueTarget{}
	fs.StringVar(&t.queue, "queue", "", "publish to this queue, through the default exchange")
	fs.StringVar(&t.exchange, "exchange", "", "publish to this exchange, with -key")
	fs.StringVar(&t.key, "key", "", "routing key, with -exchange")
	delay := fs.Duration("delay", 0, "hold the task back this long, rounded up to whole seconds")
	eta := fs.String("eta", "", "hold the task back until this RFC 3339 time, e.g. 2026-11-25T08:00:00Z")
	payload := fs.String("json", "", "the payload: one JSON document")
	file := fs.String("file", "", "read the payload, one JSON document, from this file")
	stdin := fs.Bool("stdin", false, "read payloads from stdin, one JSON document per line (the default when stdin is not a terminal)")
	id := fs.String("id", "", "task id (default: a new UUID); not with stdin")
	output := fs.String("output", "text", "text: the id(s), one per line; json: a JSON object per task")
	pos, err := o.parse(fs, args)
	if err != nil {
		return nil, nil, err
	}

	// Check the whole command line before touching the broker.
	switch {
	case len(pos) == 0:
		return nil, nil, o.usagef("name the task to enqueue, e.g. warren enqueue process_media -queue video -json '{...}'")
	case len(pos) > 1:
		return nil, nil, o.usagef("one task name, got %q (quote the payload and pass it with -json)", pos)
	case pos[0] == "":
		return nil, nil, o.usagef("the task name is empty")
	}
	t.task = pos[0]
	set := func(name string) bool {
		found := false
		fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
		return found
	}
	switch {
	case t.queue != "" && (set("exchange") || set("key")):
		return nil, nil, o.usagef("give -queue, or -exchange with -key, not both")
	case set("key") && !set("exchange"):
		return nil, nil, o.usagef("-key needs -exchange (or use -queue)")
	case t.queue == "" && !set("exchange"):
		return nil, nil, o.usagef("say where task %s goes: -queue Q, or -exchange E -key K", t.task)
	case t.queue == "" && t.exchange == "":
		return nil, nil, o.usagef("-exchange is empty: to publish through the default exchange, use -queue")
	}
	// Names and ids travel as AMQP short strings; one too long would make
	// the client library close the connection mid-publish.
	for _, f := range []struct{ flag, v string }{{"-id", *id}, {"-queue", t.queue}, {"-exchange", t.exchange}, {"-key", t.key}} {
		if len(f.v) > routing.MaxName {
			return nil, nil, o.usagef("%s is %d bytes; AMQP allows at most %d", f.flag, len(f.v), routing.MaxName)
		}
	}
	switch *output {
	case "text":
	case "json":
		t.jsonOut = true
	default:
		return nil, nil, o.usagef("-output %q: want text or json", *output)
	}
	if set("delay") && *eta != "" {
		return nil, nil, o.usagef("give -delay or -eta, not both")
	}
	if set("delay") {
		if *delay < 0 || *delay > routing.MaxDelay {
			return nil, nil, o.usagef("-delay %s: want 0 to %s", *delay, routing.MaxDelay)
		}
		t.opts = append(t.opts, producer.WithDelay(*delay))
	}
	if *eta != "" {
		at, err := time.Parse(time.RFC3339, *eta)
		if err != nil {
			return nil, nil, o.usagef("-eta %q: want an RFC 3339 time with an offset, e.g. 2026-11-25T08:00:00Z", *eta)
		}
		if d := time.Until(at); d > routing.MaxDelay {
			return nil, nil, o.usagef("-eta %s is %s away; the delay levels hold at most %s", *eta, d.Round(time.Second), routing.MaxDelay)
		}
		t.opts = append(t.opts, producer.WithETA(at))
	}
	sources := 0
	for _, s := range []string{"json", "file", "stdin"} {
		if set(s) {
			sources++
		}
	}
	if sources > 1 {
		return nil, nil, o.usagef("give the payload one way: -json, -file or -stdin")
	}
	t.streaming = *stdin || (sources == 0 && e.stdin != nil && !isTerminal(e.stdin))
	if sources == 0 && !t.streaming {
		return nil, nil, o.usagef("no payload for task %s: give -json '{...}' or -file F, or pipe one JSON payload per line on stdin", t.task)
	}
	if t.streaming && *id != "" {
		return nil, nil, o.usagef("-id names one task; with payloads from stdin every task gets its own id")
	}
	switch {
	case set("json"):
		t.body = []byte(*payload)
	case set("file"):
		if t.body, err = os.ReadFile(*file); err != nil {
			return nil, nil, fmt.Errorf("read the payload of task %s: %w", t.task, err)
		}
	}
	if !t.streaming {
		if err := validJSON(t.body); err != nil {
			return nil, nil, o.usagef("the payload of task %s is not valid JSON: %v", t.task, err)
		}
	}
	if *id != "" {
		t.id = *id
		t.opts = append(t.opts, producer.WithID(*id))
	}
	if t.queue != "" {
		t.opts = append(t.opts, producer.WithQueue(t.queue))
	} else {
		t.opts = append(t.opts, producer.WithRoute(t.exchange, t.key))
		// Which queues an exchange reaches only the broker knows, and the
		// delay levels deliver to queues: a task due later goes to the
		// exchange now, and the worker holds it until its ETA.
		t.opts = append(t.opts, producer.WithEarlyDelivery())
	}
	return o, t, nil
}

// enqueued is the JSON record of one enqueue (-output json).
type enqueued struct {
	Line     int    `json:"line,omitempty"` // with stdin: the input line
	ID       string `json:"id,omitempty"`
	Task     string `json:"task"`
	Queue    string `json:"queue,omitempty"`
	Exchange string `json:"exchange,omitempty"`
	Key      string `json:"key,omitempty"`
	Error    string `json:"error,omitempty"`
}

// validJSON says why b is not exactly one JSON document, if it is not.
func validJSON(b []byte) error {
	if json.Valid(b) {
		return nil
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("it is empty")
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("more than one JSON document, or trailing data after it")
	}
	return nil
}

// checkTarget makes sure the queue or exchange exists before anything is
// published: a publish to a missing exchange kills the channel, and the
// error the producer would see says only that the connection was lost.
func checkTarget(ctx context.Context, o *opts, insp *inspect.Inspector, t *enqueueTarget) error {
	if t.queue != "" {
		_, err := insp.Queue(ctx, t.queue)
		if errors.Is(err, conn.ErrNotFound) {
			return fmt.Errorf("queue %q does not exist, so task %s was not enqueued: check the name, or start a worker for it (worker -queues %s), which declares it", t.queue, t.task, t.queue)
		}
		return o.explain(err)
	}
	err := insp.CheckExchange(ctx, t.exchange)
	if errors.Is(err, conn.ErrNotFound) {
		return fmt.Errorf("exchange %q does not exist, so task %s was not enqueued: check the name, or start a worker or producer whose topology declares it", t.exchange, t.task)
	}
	return o.explain(err)
}

// enqueueErr says what a failed enqueue means for the task, and what to
// do about it (hint). With many tasks, the hint is printed once.
func enqueueErr(o *opts, t *enqueueTarget, err error) (msg error, hint string) {
	switch {
	case errors.Is(err, producer.ErrUnroutable) && t.queue != "":
		return fmt.Errorf("task %s not enqueued: queue %q does not exist (deleted meanwhile?)", t.task, t.queue),
			"check the queue name, or start a worker for it"
	case errors.Is(err, producer.ErrUnroutable):
		return fmt.Errorf("task %s not enqueued: no queue is bound to exchange %q with routing key %q, so the broker returned it", t.task, t.exchange, t.key),
			"check -key, or start a worker whose topology binds a queue to the exchange with that key"
	case errors.Is(err, producer.ErrInvalid):
		return fmt.Errorf("task %s not enqueued: %w", t.task, err), ""
	case errors.Is(err, producer.ErrConnectionLost) && t.streaming:
		return err, "a line whose connection was lost before the confirm may or may not be enqueued: enqueueing it again may run it twice"
	case errors.Is(err, producer.ErrConnectionLost):
		return err, "the task may or may not be enqueued: enqueue it again with -id and the same id, so that its handler can tell a duplicate"
	case errors.Is(err, context.DeadlineExceeded):
		return err, o.timeoutHint()
	}
	return err, ""
}

// withHint joins an error and its hint into one message.
func withHint(err error, hint string) error {
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w\n%s", err, hint)
}

// line is one payload read from stdin, or why it is not one.
type line struct {
	n       int
	payload json.RawMessage
	err     error
}

// inFlight is how many batches may wait for their confirms at once.
const inFlight = 4

// enqueueStream enqueues one task per non-blank stdin line, pipelined: a
// few batches wait for their confirms while the next ones are read and
// published, and the lines read meanwhile make the next batch, so a fast
// pipe fills batches and a slow one is sent line by line. Output keeps the
// input's order; a failed line is reported with its number.
func enqueueStream(ctx context.Context, e *env, o *opts, p *producer.Producer, t *enqueueTarget) error {
	lines := make(chan line, batchSize)
	stop := make(chan struct{})
	defer close(stop)
	go readLines(e.stdin, lines, stop)
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	var total, failed int
	var hints []string // each once, in the order they first came
	seen := map[string]bool{}
	summary := func() {
		fmt.Fprintf(e.stderr, "warren enqueue: %d of %d tasks not enqueued (lines above)\n", failed, total)
		for _, h := range hints {
			fmt.Fprintln(e.stderr, h)
		}
	}
	report := func(l line, id string, err error, hint string) {
		total++
		if err != nil {
			failed++
		}
		if hint != "" && !seen[hint] {
			seen[hint] = true
			hints = append(hints, hint)
		}
		if t.jsonOut {
			rec := enqueued{Line: l.n, ID: id, Task: t.task, Queue: t.queue, Exchange: t.exchange, Key: t.key}
			if err != nil {
				rec.Error = err.Error()
			}
			b, _ := json.Marshal(rec)
			fmt.Fprintf(out, "%s\n", b)
		} else if err != nil {
			out.Flush() // keep stdout and stderr in step for a reader of both
			fmt.Fprintf(e.stderr, "warren enqueue: line %d: %v\n", l.n, err)
		} else {
			fmt.Fprintln(out, id)
		}
	}
	var flights []*flight
	// finish reports the oldest batch in flight, or all of them.
	finish := func(all bool) error {
		var first error
		for len(flights) > 0 && (all || len(flights) >= inFlight) {
			if err := flights[0].finish(o, t, report); err != nil && first == nil {
				first = err
			}
			flights = flights[1:]
			out.Flush()
		}
		return first
	}
	for open := true; open; {
		var batch []line
		select {
		case l, ok := <-lines:
			if ok {
				batch = append(batch, l)
			}
			open = ok
		case <-ctx.Done():
			open = false
		}
	fill:
		for open && len(batch) < batchSize {
			select {
			case l, ok := <-lines:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, l)
			default:
				break fill
			}
		}
		if len(batch) == 0 || ctx.Err() != nil {
			break
		}
		flights = append(flights, startBatch(ctx, o, p, t, batch))
		if err := finish(false); err != nil {
			_ = finish(true)
			summary()
			return fmt.Errorf("stopped after line %d; the lines after it were not enqueued: %w", batch[len(batch)-1].n, err)
		}
	}
	err := finish(true)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after %d lines (%d not enqueued): %w", total, failed, ctx.Err())
	case err != nil:
		summary()
		return err
	case total == 0:
		return errors.New("no payload on stdin: pipe one JSON payload per line, or give -json or -file for one task")
	case failed > 0:
		summary()
		return errReported
	}
	return nil
}

// flight is one batch of stdin lines being enqueued.
type flight struct {
	batch []line
	done  chan struct{}
	ids   []string // set when done is closed: ids[i] of the batch's i-th valid line
	errs  []error  // errs[i] is its error; nil (the slice or the entry) if enqueued
}

// startBatch publishes the valid lines of batch with EnqueueBatch, which
// waits for their confirms in the background.
func startBatch(ctx context.Context, o *opts, p *producer.Producer, t *enqueueTarget, batch []line) *flight {
	f := &flight{batch: batch, done: make(chan struct{})}
	tasks := make([]task.Task, 0, len(batch))
	for _, l := range batch {
		if l.err == nil {
			tasks = append(tasks, task.Task{Name: t.task, Payload: l.payload})
		}
	}
	if len(tasks) == 0 {
		close(f.done)
		return f
	}
	go func() {
		defer close(f.done)
		cctx, cancel := o.call(ctx)
		defer cancel()
		ids, err := p.EnqueueBatch(cctx, tasks, t.opts...)
		f.ids = ids
		var be *producer.BatchError
		switch {
		case errors.As(err, &be):
			f.errs = be.Errs
		case err != nil:
			f.errs = make([]error, len(tasks))
			for i := range f.errs {
				f.errs[i] = err
			}
		}
	}()
	return f
}

// finish waits for f and reports every line of its batch in order. It
// returns an error when the whole batch timed out: the broker is gone, and
// waiting -timeout for every further batch would help no one.
func (f *flight) finish(o *opts, t *enqueueTarget, report func(l line, id string, err error, hint string)) error {
	<-f.done
	valid, timedOut, i := 0, 0, 0
	for _, l := range f.batch {
		if l.err != nil {
			report(l, "", l.err, "")
			continue
		}
		valid++
		if f.errs != nil && f.errs[i] != nil {
			if errors.Is(f.errs[i], context.DeadlineExceeded) {
				timedOut++
			}
			err, hint := enqueueErr(o, t, f.errs[i])
			report(l, "", err, hint)
		} else {
			report(l, f.ids[i], nil, "")
		}
		i++
	}
	if timedOut > 0 && timedOut == valid {
		return fmt.Errorf("no confirm from the broker within %s for a whole batch of tasks", o.timeout)
	}
	return nil
}

// readLines sends stdin's non-blank lines, numbered from 1, and closes out
// at the end of input. A read error ends the input as a failed line. It
// gives up when stop is closed.
func readLines(r io.Reader, out chan<- line, stop <-chan struct{}) {
	defer close(out)
	send := func(l line) bool {
		select {
		case out <- l:
			return true
		case <-stop:
			return false
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		b, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(b); len(t) > 0 {
			l := line{n: n}
			if verr := validJSON(t); verr != nil {
				l.err = fmt.Errorf("invalid JSON payload: %v", verr)
			} else {
				l.payload = json.RawMessage(t)
			}
			if !send(l) {
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			send(line{n: n, err: fmt.Errorf("read stdin: %v", err)})
			return
		}
	}
}
