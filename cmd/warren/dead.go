package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/routing"
)

const (
	deadSynopsis       = "list|replay|delete|purge QUEUE [flags]"
	deadListSynopsis   = "QUEUE [-n N] [-json]"
	deadReplaySynopsis = "QUEUE [-n N] [-task T] [-json]"
	deadDeleteSynopsis = "QUEUE [-id ID ...|-all] [-yes] [-json]"
	deadPurgeSynopsis  = "QUEUE [-yes] [-json]"
)

func runDead(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			deadUsage(e.stderr)
			return nil
		}
		return &usageError{cmd: "dead", synopsis: deadSynopsis, msg: "name an action: list, replay, delete or purge"}
	}
	var err error
	switch args[0] {
	case "list":
		err = runDeadList(ctx, e, args[1:])
	case "replay":
		err = runDeadReplay(ctx, e, args[1:])
	case "delete":
		err = runDeadDelete(ctx, e, args[1:])
	case "purge":
		err = runDeadPurge(ctx, e, args[1:])
	default:
		return &usageError{cmd: "dead", synopsis: deadSynopsis, msg: fmt.Sprintf("unknown action %q: want list, replay, delete or purge", args[0])}
	}
	if err != nil {
		return &namedError{cmd: "dead " + args[0], err: err}
	}
	return nil
}

// deadUsage is "warren dead -h": each action with its arguments and what
// it does, since the actions' own -h are one step further away.
func deadUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: warren dead %s\n\n", deadSynopsis)
	tw := newTable(w)
	fmt.Fprintf(tw, "  list %s\tthe oldest N (default 20): id, task, reason, attempts, time of death, last error\n", deadListSynopsis)
	fmt.Fprintf(tw, "  replay %s\tmove them back to QUEUE, attempts reset (all, or N; only task T)\n", deadReplaySynopsis)
	fmt.Fprintf(tw, "  delete %s\tdelete the letters with these ids, or all (asks first unless -yes)\n", deadDeleteSynopsis)
	fmt.Fprintf(tw, "  purge %s\tdelete them all at once (asks first unless -yes)\n", deadPurgeSynopsis)
	_ = tw.Flush()
	fmt.Fprint(w, "\nQUEUE is the work queue (video), not its dead-letter queue (video.dead).\n"+
		"A replay confirms each copy before it removes the dead letter: a crash may duplicate a task, never lose one.\n"+
		"Every action takes -broker and -timeout too; 'warren dead ACTION -h' shows its flags.\n")
}

// openDead connects a deadletter client. Its calls would wait for the
// connection until their context ends, so a connection is tried first:
// an unreachable broker or a refused login fails at once, with what to do.
func openDead(ctx context.Context, o *opts) (*deadletter.Client, error) {
	probe, err := o.dial(ctx)
	if err != nil {
		return nil, err
	}
	_ = probe.Close()
	dl, err := deadletter.New(deadletter.Config{Conn: conn.Config{URL: o.broker, TLS: o.tls}})
	if err != nil {
		return nil, o.usagef("%v (check -broker or WARREN_BROKER_URL)", err)
	}
	return dl, nil
}

// openCounted connects a deadletter client and counts q's dead letters,
// for the actions that ask before they remove any. abort closes the
// client, to end a call that outlives -timeout.
func openCounted(ctx context.Context, o *opts, q string) (dl *deadletter.Client, abort func(), count int, err error) {
	dl, err = openDead(ctx, o)
	if err != nil {
		return nil, nil, 0, err
	}
	abort = func() { _ = dl.Close() }
	cctx, cancel := o.call(ctx)
	defer cancel()
	count, err = bounded(cctx, abort, func() (int, error) { return dl.Count(cctx, q) })
	if err != nil {
		_ = dl.Close()
		return nil, nil, 0, deadErr(o, q, err)
	}
	return dl, abort, count, nil
}

// deadErr says what to do about a failed dead-letter call on queue.
func deadErr(o *opts, queue string, err error) error {
	if errors.Is(err, conn.ErrUnroutable) {
		// Replay publishes to the queue the task died in, mandatory.
		return fmt.Errorf("%w\nthe work queue that task died in does not exist any more: start a worker for it (it declares its queues) and replay again", err)
	}
	if errors.Is(err, conn.ErrConnectionLost) {
		return fmt.Errorf("%w\nthe letter being moved when the connection was lost may now be in both queues, and its task run twice", err)
	}
	return o.explain(notFound(routing.DeadQueue(queue), err))
}

// letterJSON is one dead letter in "dead list -json".
type letterJSON struct {
	ID          string          `json:"id"`
	Task        string          `json:"task"`
	Queue       string          `json:"queue"`
	Reason      string          `json:"reason"`
	Error       string          `json:"error"`
	FirstError  string          `json:"first_error,omitempty"`
	Attempts    int             `json:"attempts"`
	DiedAt      *time.Time      `json:"died_at"`
	ContentType string          `json:"content_type,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`     // the body, when it is JSON
	Body        []byte          `json:"body_base64,omitempty"` // the body otherwise
}

func runDeadList(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("dead list", deadListSynopsis, true)
	n := fs.Int("n", 20, "list at most this many, oldest first")
	q, err := o.oneQueue(o.parse(fs, args))
	if err != nil {
		return err
	}
	if *n < 1 {
		return o.usagef("-n must be at least 1")
	}
	dl, err := openDead(ctx, o)
	if err != nil {
		return err
	}
	defer dl.Close()
	abort := func() { _ = dl.Close() }

	cctx, cancel := o.call(ctx)
	defer cancel()
	// Counted first: while List holds letters unacked, they are not ready.
	total, err := bounded(cctx, abort, func() (int, error) { return dl.Count(cctx, q) })
	if err != nil {
		return deadErr(o, q, err)
	}
	letters, err := bounded(cctx, abort, func() ([]deadletter.Letter, error) { return dl.List(cctx, q, *n) })
	if err != nil {
		return deadErr(o, q, err)
	}
	if total < len(letters) {
		total = len(letters)
	}

	if o.json {
		out := struct {
			Queue     string       `json:"queue"`
			DeadQueue string       `json:"dead_queue"`
			Total     int          `json:"total"`
			Letters   []letterJSON `json:"letters"`
		}{Queue: q, DeadQueue: routing.DeadQueue(q), Total: total, Letters: make([]letterJSON, 0, len(letters))}
		for _, l := range letters {
			out.Letters = append(out.Letters, toLetterJSON(l))
		}
		return writeJSON(e.stdout, out)
	}
	if len(letters) == 0 {
		_, err := fmt.Fprintf(e.stdout, "no dead letters in %s\n", routing.DeadQueue(q))
		return err
	}
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "ID\tTASK\tREASON\tATTEMPTS\tDIED-AT\tERROR")
	for _, l := range letters {
		died := "-"
		if !l.DiedAt.IsZero() {
			died = l.DiedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", dash(l.ID), dash(l.Task), dash(string(l.Reason)), l.Attempts, died, dash(oneLine(l.Error, 72)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if total > len(letters) {
		fmt.Fprintf(e.stdout, "%d of %d dead letters of %s; -n %d shows more\n", len(letters), total, q, total)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func toLetterJSON(l deadletter.Letter) letterJSON {
	j := letterJSON{ID: l.ID, Task: l.Task, Queue: l.Queue, Reason: string(l.Reason), Error: l.Error, FirstError: l.FirstError, Attempts: l.Attempts, ContentType: l.ContentType}
	if !l.DiedAt.IsZero() {
		t := l.DiedAt.UTC()
		j.DiedAt = &t
	}
	if isJSON(l.ContentType, l.Body) {
		j.Payload = l.Body
	} else {
		j.Body = l.Body
	}
	return j
}

func runDeadReplay(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("dead replay", deadReplaySynopsis, true)
	n := fs.Int("n", 0, "move at most this many; 0 moves all")
	taskName := fs.String("task", "", "move only the dead letters of this task")
	q, err := o.oneQueue(o.parse(fs, args))
	if err != nil {
		return err
	}
	if *n < 0 {
		return o.usagef("-n must be 0 (all) or more")
	}
	limit := *n
	if limit == 0 {
		limit = int(^uint(0) >> 1)
	}
	var keep func(deadletter.Letter) bool
	if *taskName != "" {
		keep = func(l deadletter.Letter) bool { return l.Task == *taskName }
	}
	dl, err := openDead(ctx, o)
	if err != nil {
		return err
	}
	defer dl.Close()

	// Replay honours its context between letters and returns how many it
	// moved, so a timeout leaves a clear count: each letter is moved whole
	// (confirmed copy, then removed) or not at all.
	cctx, cancel := o.call(ctx)
	defer cancel()
	moved, err := dl.Replay(cctx, q, limit, keep)
	what := "dead letters"
	if *taskName != "" {
		what = fmt.Sprintf("dead letters of task %s", *taskName)
	}
	if o.json {
		out := struct {
			Queue string `json:"queue"`
			Task  string `json:"task,omitempty"`
			Moved int    `json:"moved"`
			Error string `json:"error,omitempty"`
		}{Queue: q, Task: *taskName, Moved: moved}
		if err != nil {
			out.Error = deadErr(o, q, err).Error()
		}
		if werr := writeJSON(e.stdout, out); werr != nil {
			return werr
		}
	} else if moved > 0 || err == nil {
		fmt.Fprintf(e.stdout, "moved %d %s from %s back to their queue\n", moved, what, routing.DeadQueue(q))
	}
	switch {
	case err != nil && moved > 0:
		return fmt.Errorf("%w\nthe ones not moved are still in %s: run the replay again (raise -timeout for many)", deadErr(o, q, err), routing.DeadQueue(q))
	case err != nil:
		return deadErr(o, q, err)
	}
	return nil
}

// idList is a flag that may be given many times (-id a -id b).
type idList []string

func (l *idList) String() string      { return strings.Join(*l, ",") }
func (l *idList) Set(id string) error { *l = append(*l, id); return nil }

func runDeadDelete(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("dead delete", deadDeleteSynopsis, true)
	var ids idList
	fs.Var(&ids, "id", "delete the dead letter with this task `ID` (repeat for more)")
	all := fs.Bool("all", false, "delete every dead letter there is when asked")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	q, err := o.oneQueue(o.parse(fs, args))
	if err != nil {
		return err
	}
	switch {
	case len(ids) == 0 && !*all:
		return o.usagef("say which dead letters: -id ID (repeat for more) or -all")
	case len(ids) > 0 && *all:
		return o.usagef("-id and -all exclude each other")
	}
	// want holds the ids not yet found; each is removed once, so a letter
	// duplicated by an interrupted replay loses one copy per -id.
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" {
			return o.usagef("-id is empty")
		}
		want[id] = true
	}
	dl, _, count, err := openCounted(ctx, o, q)
	if err != nil {
		return err
	}
	defer dl.Close()
	dq := routing.DeadQueue(q)
	// -all deletes the letters counted and asked about, not those that
	// die meanwhile.
	n, keep := count, func(deadletter.Letter) bool { return true }
	question := fmt.Sprintf("delete the %d dead letters in %s? They cannot be replayed afterwards", count, dq)
	if !*all {
		n = len(want)
		keep = func(l deadletter.Letter) bool {
			if !want[l.ID] {
				return false
			}
			delete(want, l.ID)
			return true
		}
		question = fmt.Sprintf("delete %d dead letters (%s) from %s? They cannot be replayed afterwards", len(want), strings.Join(unique(ids), ", "), dq)
	}
	deleted := 0
	if count > 0 {
		if err := e.confirm(o, *yes, question); err != nil {
			return err
		}
		// Delete honours its context between letters, like Replay, so a
		// timeout still counts what went.
		cctx, cancel := o.call(ctx)
		deleted, err = dl.Delete(cctx, q, n, keep)
		cancel()
	}
	var missing []string
	if err == nil && !*all {
		missing = unique(ids)
		missing = slices.DeleteFunc(missing, func(id string) bool { return !want[id] })
	}
	if o.json {
		out := struct {
			Queue   string   `json:"queue"`
			Deleted int      `json:"deleted"`
			Missing []string `json:"missing,omitempty"`
			Error   string   `json:"error,omitempty"`
		}{Queue: q, Deleted: deleted, Missing: missing}
		if err != nil {
			out.Error = deadErr(o, q, err).Error()
		}
		if werr := writeJSON(e.stdout, out); werr != nil {
			return werr
		}
	} else if deleted > 0 || err == nil {
		fmt.Fprintf(e.stdout, "deleted %d dead letters from %s\n", deleted, dq)
	}
	switch {
	case err != nil:
		return deadErr(o, q, err)
	case len(missing) > 0:
		return fmt.Errorf("no dead letter with id %s in %s (\"warren dead list %s\" shows their ids)", strings.Join(missing, ", "), dq, q)
	}
	return nil
}

// unique returns ids without repeats, in the order first given.
func unique(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func runDeadPurge(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("dead purge", deadPurgeSynopsis, true)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	q, err := o.oneQueue(o.parse(fs, args))
	if err != nil {
		return err
	}
	dl, abort, count, err := openCounted(ctx, o, q)
	if err != nil {
		return err
	}
	defer dl.Close()
	dq := routing.DeadQueue(q)
	purged := 0
	if count > 0 {
		if err := e.confirm(o, *yes, fmt.Sprintf("delete the %d dead letters in %s? They cannot be replayed afterwards", count, dq)); err != nil {
			return err
		}
		cctx, cancel := o.call(ctx)
		purged, err = bounded(cctx, abort, func() (int, error) { return dl.Purge(cctx, q) })
		cancel()
		if err != nil {
			return deadErr(o, q, err)
		}
	}
	if o.json {
		return writeJSON(e.stdout, struct {
			Queue  string `json:"queue"`
			Purged int    `json:"purged"`
		}{q, purged})
	}
	_, err = fmt.Fprintf(e.stdout, "purged %d dead letters from %s\n", purged, dq)
	return err
}
