package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// getTask takes one message from queue and checks it is task name in the
// wire format, with payload body.
func getTask(t *testing.T, b *brokertest.Broker, queue, name, id, body string) amqp.Delivery {
	t.Helper()
	d, ok := b.Get(queue)
	if !ok {
		t.Fatalf("queue %s is empty", queue)
	}
	if d.Headers[task.HeaderTask] != name || d.Headers[task.HeaderID] != id || d.MessageId != id {
		t.Errorf("headers %v, message_id %q; want task %q, id %q", d.Headers, d.MessageId, name, id)
	}
	if d.ContentType != task.ContentTypeJSON || d.DeliveryMode != amqp.Persistent || d.Timestamp.IsZero() {
		t.Errorf("content type %q, delivery mode %d, timestamp %v", d.ContentType, d.DeliveryMode, d.Timestamp)
	}
	if string(d.Body) != body {
		t.Errorf("body %s, want %s", d.Body, body)
	}
	return d
}

func TestEnqueueToQueue(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	r := cli(t, nil, "enqueue", "process_media", "-queue", q, "-json", `{"name": "/tmp/lolcat1.avi", "size": 1301013}`, "-broker", b.URL).want(t, exitOK)
	id := strings.TrimSpace(r.stdout)
	if !uuidRE.MatchString(id) {
		t.Fatalf("stdout %q is not one task id", r.stdout)
	}
	getTask(t, b, q, "process_media", id, `{"name":"/tmp/lolcat1.avi","size":1301013}`)
	if n := b.Ready(q); n != 0 {
		t.Errorf("%d more messages in the queue", n)
	}
}

func TestEnqueueToExchangeWithIDAndJSONOutput(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, x, topo := b.Direct("video", "video")
	declare(t, b, topo)
	// Flags after the task name, and before it.
	r := cli(t, nil, "enqueue", "-broker", b.URL, "process_media", "-exchange", x, "-key", "video", "-id", "order-42", "-json", `[1,2]`, "-output", "json").want(t, exitOK)
	if n := len(lines(r.stdout)); n != 1 {
		t.Errorf("-output json printed %d lines, want one object on one line as in bulk:\n%s", n, r.stdout)
	}
	var got enqueued
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if got.ID != "order-42" || got.Task != "process_media" || got.Exchange != x || got.Key != "video" {
		t.Errorf("output %+v", got)
	}
	getTask(t, b, q, "process_media", "order-42", `[1,2]`)
}

func TestEnqueueFromFile(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	f := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(f, []byte("{\n  \"name\": \"a.avi\",\n  \"size\": 1\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cli(t, nil, "enqueue", "process_media", "-queue", q, "-file", f, "-broker", b.URL).want(t, exitOK)
	getTask(t, b, q, "process_media", strings.TrimSpace(r.stdout), `{"name":"a.avi","size":1}`)
}

func TestEnqueueDelayed(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	start := time.Now()
	r := cli(t, nil, "enqueue", "process_media", "-queue", q, "-delay", "3s", "-json", `{}`, "-broker", b.URL).want(t, exitOK)
	id := strings.TrimSpace(r.stdout)
	if n := b.Ready(q); n != 0 && time.Since(start) < 2*time.Second {
		t.Fatalf("a task delayed 3s is in the queue at once (%d ready)", n)
	}
	brokertest.Eventually(t, 20*time.Second, func() bool { return b.Ready(q) == 1 }, "delayed task never arrived")
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("a task delayed 3s arrived after %v", el)
	}
	d := getTask(t, b, q, "process_media", id, `{}`)
	if _, ok := d.Headers[task.HeaderETA].(string); !ok {
		t.Errorf("no eta header: %v", d.Headers)
	}
}

func TestEnqueueETAInThePastRunsNow(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	r := cli(t, nil, "enqueue", "t", "-queue", q, "-eta", "2020-01-01T00:00:00Z", "-json", `1`, "-broker", b.URL).want(t, exitOK)
	getTask(t, b, q, "t", strings.TrimSpace(r.stdout), `1`)
}

// Bad input fails with a message that names the queue, exchange or task and
// says what to do, and leaves the broker as it was: nothing enqueued,
// nothing declared.
func TestEnqueueBadInput(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, x, lonely := b.Queue("video"), b.Exchange("media"), b.Exchange("lonely")
	declare(t, b, routing.Topology{
		Exchanges: []routing.Exchange{{Name: x}, {Name: lonely}},
		Queues:    []routing.Queue{{Name: q}},
		Bindings:  []routing.Binding{{Exchange: x, Queue: q, Key: "video"}},
	})
	missingQ, missingX := b.Queue("nosuch"), b.Exchange("nosuch")
	long := strings.Repeat("x", 300)
	// A valid queue name too long for the delay levels' routing key, which
	// adds 44 bytes to it.
	longQ := b.Queue(strings.Repeat("q", 200))
	b.DeclareQueue(longQ)
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		says  []string
	}{
		{"unknown queue", []string{"-queue", missingQ, "-json", `{}`}, "", exitFailed,
			[]string{missingQ, "does not exist", "process_media was not enqueued", "worker -queues"}},
		{"unknown exchange", []string{"-exchange", missingX, "-key", "video", "-json", `{}`}, "", exitFailed,
			[]string{missingX, "does not exist", "not enqueued"}},
		{"exchange without a binding for the key", []string{"-exchange", x, "-key", "audio", "-json", `{}`}, "", exitFailed,
			[]string{"no queue is bound", x, `"audio"`, "check -key"}},
		{"exchange without bindings", []string{"-exchange", lonely, "-key", "", "-json", `{}`}, "", exitFailed,
			[]string{"no queue is bound", lonely}},
		{"unknown queue, delayed", []string{"-queue", missingQ, "-delay", "5s", "-json", `{}`}, "", exitFailed,
			[]string{missingQ, "does not exist"}},
		{"invalid JSON", []string{"-queue", q, "-json", `{"name": `}, "", exitUsage,
			[]string{"payload of task process_media is not valid JSON"}},
		{"two JSON documents", []string{"-queue", q, "-json", `{} {}`}, "", exitUsage,
			[]string{"not valid JSON", "more than one"}},
		{"empty payload", []string{"-queue", q, "-json", ``}, "", exitUsage, []string{"not valid JSON"}},
		{"missing file", []string{"-queue", q, "-file", "/nonexistent/p.json"}, "", exitFailed, []string{"/nonexistent/p.json"}},
		{"no target", []string{"-json", `{}`}, "", exitUsage, []string{"-queue Q, or -exchange E -key K"}},
		{"queue and exchange", []string{"-queue", q, "-exchange", x, "-key", "k", "-json", `{}`}, "", exitUsage, []string{"not both"}},
		{"key without exchange", []string{"-key", "k", "-json", `{}`}, "", exitUsage, []string{"-queue"}},
		{"delayed, exchange without a binding for the key", []string{"-exchange", x, "-key", "audio", "-delay", "1m", "-json", `{}`}, "", exitFailed,
			[]string{"no queue is bound", x, `"audio"`}},
		{"delayed, unknown exchange", []string{"-exchange", missingX, "-key", "video", "-eta", time.Now().Add(time.Hour).Format(time.RFC3339), "-json", `{}`}, "", exitFailed,
			[]string{missingX, "does not exist"}},
		{"delay and eta", []string{"-queue", q, "-delay", "1m", "-eta", "2030-01-01T00:00:00Z", "-json", `{}`}, "", exitUsage, []string{"not both"}},
		{"negative delay", []string{"-queue", q, "-delay", "-1s", "-json", `{}`}, "", exitUsage, []string{"-delay"}},
		{"bad eta", []string{"-queue", q, "-eta", "tomorrow", "-json", `{}`}, "", exitUsage, []string{"RFC 3339"}},
		{"two payloads", []string{"-queue", q, "-json", `{}`, "-stdin"}, "", exitUsage, []string{"one way"}},
		{"id with stdin", []string{"-queue", q, "-id", "x"}, "{}\n", exitUsage, []string{"-id"}},
		{"empty stdin", []string{"-queue", q}, "\n\n", exitFailed, []string{"no payload on stdin"}},
		{"bad output", []string{"-queue", q, "-json", `{}`, "-output", "yaml"}, "", exitUsage, []string{"-output"}},
		{"id too long", []string{"-queue", q, "-id", long, "-json", `{}`}, "", exitUsage, []string{"-id is 300 bytes", "at most 255"}},
		{"queue name too long", []string{"-queue", long, "-json", `{}`}, "", exitUsage, []string{"-queue is 300 bytes", "at most 255"}},
		{"exchange name too long", []string{"-exchange", long, "-key", "k", "-json", `{}`}, "", exitUsage, []string{"-exchange is 300 bytes"}},
		{"routing key too long", []string{"-exchange", x, "-key", long, "-json", `{}`}, "", exitUsage, []string{"-key is 300 bytes"}},
		{"queue name too long to delay", []string{"-queue", longQ, "-delay", "5s", "-json", `{}`}, "", exitFailed,
			[]string{"process_media not enqueued", longQ, "over the limit of 255", "retrying will not help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, strings.NewReader(tc.stdin), append([]string{"enqueue", "process_media", "-broker", b.URL}, tc.args...)...).want(t, tc.code)
			for _, s := range tc.says {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not say %q:\n%s", s, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	t.Run("no task", func(t *testing.T) {
		cli(t, nil, "enqueue", "-queue", q, "-json", `{}`, "-broker", b.URL).want(t, exitUsage)
	})
	if n := b.Ready(q); n != 0 {
		t.Errorf("%d tasks enqueued by bad commands", n)
	}
	if n := b.Ready(longQ); n != 0 {
		t.Errorf("%d tasks in %s", n, longQ)
	}
	if n := b.Ready(missingQ); n != -1 {
		t.Errorf("the missing queue was created")
	}
	if exchangeExists(t, b, missingX) {
		t.Errorf("the missing exchange was created")
	}
}

func TestEnqueueStdin(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "bulk")
	const n = 700 // several batches
	var in strings.Builder
	bad := map[int]bool{}
	want := map[string]bool{}
	for i := 1; i <= n; i++ {
		switch {
		case i == 5 || i == 600:
			fmt.Fprintf(&in, "{\"n\": %d,\n", i) // broken
			bad[i] = true
		case i == 10:
			in.WriteString("   \n") // blank: skipped, still counted as a line
		default:
			fmt.Fprintf(&in, "{\"n\": %d}\n", i)
			want[fmt.Sprintf(`{"n":%d}`, i)] = true
		}
	}
	r := cli(t, strings.NewReader(in.String()), "enqueue", "count", "-queue", q, "-broker", b.URL).want(t, exitFailed)
	ids := lines(r.stdout)
	if len(ids) != len(want) {
		t.Fatalf("%d ids printed, want %d", len(ids), len(want))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !uuidRE.MatchString(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	for l := range bad {
		if !strings.Contains(r.stderr, fmt.Sprintf("line %d: invalid JSON payload", l)) {
			t.Errorf("stderr does not report line %d:\n%s", l, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("2 of %d tasks not enqueued", len(want)+2)) {
		t.Errorf("no summary:\n%s", r.stderr)
	}
	if got := b.Ready(q); got != len(want) {
		t.Fatalf("queue holds %d, want %d", got, len(want))
	}
	for range want {
		d, ok := b.Get(q)
		if !ok {
			t.Fatal("queue ran dry")
		}
		if !want[string(d.Body)] || !seen[d.MessageId] || d.Headers[task.HeaderTask] != "count" {
			t.Fatalf("unexpected message %s id %s headers %v", d.Body, d.MessageId, d.Headers)
		}
		delete(want, string(d.Body))
	}
}

func TestEnqueueStdinJSONOutput(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "bulk")
	in := "{\"a\":1}\nnot json\n\n{\"a\":2}\n"
	// -stdin reads stdin even from a terminal.
	r := cli(t, tty{strings.NewReader(in)}, "enqueue", "t", "-queue", q, "-stdin", "-output", "json", "-broker", b.URL).want(t, exitFailed)
	var recs []enqueued
	for _, l := range lines(r.stdout) {
		var rec enqueued
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Line < recs[j].Line })
	if len(recs) != 3 || recs[0].Line != 1 || recs[0].ID == "" || recs[1].Line != 2 || !strings.Contains(recs[1].Error, "invalid JSON") || recs[2].Line != 4 || recs[2].ID == "" {
		t.Fatalf("records %+v", recs)
	}
	if n := b.Ready(q); n != 2 {
		t.Errorf("queue holds %d, want 2", n)
	}
}

func TestEnqueueStdinAllGood(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "bulk")
	r := cli(t, strings.NewReader("{}\n[]\n\"x\"\n"), "enqueue", "t", "-queue", q, "-broker", b.URL).want(t, exitOK)
	if len(lines(r.stdout)) != 3 || r.stderr != "" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	if n := b.Ready(q); n != 3 {
		t.Errorf("queue holds %d, want 3", n)
	}
}

// A terminal on stdin and no payload: a usage error, not a wait for input.
func TestEnqueueNoPayloadOnATerminal(t *testing.T) {
	t.Parallel()
	r := cli(t, tty{strings.NewReader("")}, "enqueue", "t", "-queue", "q").want(t, exitUsage)
	if !strings.Contains(r.stderr, "no payload for task t") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// The broker goes away in the middle of a stream: the lines before are
// enqueued, the ones after are reported, and the command ends instead of
// waiting -timeout for every further line.
func TestEnqueueStdinBrokerGoesAway(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "bulk")
	proxy, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	pr, pw := io.Pipe()
	done := make(chan result, 1)
	go func() {
		done <- cli(t, pr, "enqueue", "t", "-queue", q, "-timeout", "1s", "-broker", brokertest.WithHost(b.URL, proxy.Addr()))
	}()
	write := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := fmt.Fprintf(pw, "{\"n\":%d}\n", i); err != nil {
				t.Error(err)
			}
		}
	}
	write(1, 10)
	brokertest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == 10 }, "first lines not enqueued")
	proxy.SetRefuse(true)
	proxy.Cut()
	write(11, 20)
	_ = pw.Close()
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("enqueue did not end after the broker went away")
	}
	r.want(t, exitFailed)
	if got := len(lines(r.stdout)); got != 10 {
		t.Errorf("%d ids printed, want 10", got)
	}
	// It stops at the first batch that timed out whole. Lines the CLI
	// wrote to the connection before it noticed the cut (the cut and the
	// next reads race) end as connection lost instead; each kind of ending
	// gives its hint once.
	timedOut := strings.Count(r.stderr, "raise -timeout")
	lost := strings.Count(r.stderr, "may or may not be enqueued")
	if !strings.Contains(r.stderr, "line 11: ") || !strings.Contains(r.stderr, "tasks not enqueued (lines above)") ||
		timedOut > 1 || lost > 1 || timedOut+lost == 0 {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if n := b.Ready(q); n != 10 {
		t.Errorf("queue holds %d, want 10", n)
	}
}

// A task due later that goes to an exchange is published to it at once
// with its eta header (the worker holds it until then), since which queues
// an exchange reaches only the broker knows.
func TestEnqueueDelayedToExchange(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, x, topo := b.Direct("video", "video")
	declare(t, b, topo)
	etaOf := func(d amqp.Delivery) time.Time {
		t.Helper()
		s, _ := d.Headers[task.HeaderETA].(string)
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("eta header %q: %v", s, err)
		}
		return at
	}

	due := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	r := cli(t, nil, "enqueue", "process_media", "-exchange", x, "-key", "video", "-eta", due.Format(time.RFC3339), "-id", "later-1",
		"-json", `{"name":"a.avi"}`, "-broker", b.URL).want(t, exitOK)
	if r.stdout != "later-1\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	d := getTask(t, b, q, "process_media", "later-1", `{"name":"a.avi"}`)
	if at := etaOf(d); !at.Equal(due) {
		t.Errorf("eta %v", at)
	}

	// Bulk, with -delay: every task due an hour after it was enqueued.
	start := time.Now()
	r = cli(t, strings.NewReader("{\"n\":1}\n{\"n\":2}\n"), "enqueue", "count", "-exchange", x, "-key", "video", "-delay", "1h", "-broker", b.URL).want(t, exitOK)
	ids := lines(r.stdout)
	if len(ids) != 2 {
		t.Fatalf("stdout %q", r.stdout)
	}
	// Each line's task, in either order: two delayed publishes travel the
	// delay levels independently, and may land in the queue either way.
	for range ids {
		d, ok := b.Get(q)
		if !ok {
			t.Fatalf("queue %s is empty", q)
		}
		i := slices.Index(ids, d.MessageId)
		if i < 0 || d.Headers[task.HeaderTask] != "count" || d.Headers[task.HeaderID] != d.MessageId || string(d.Body) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Errorf("headers %v, message_id %q, body %s; want task count, one of the ids %v with its line's body", d.Headers, d.MessageId, d.Body, ids)
			continue
		}
		if at := etaOf(d); at.Before(start.Add(time.Hour-time.Second)) || at.After(time.Now().Add(time.Hour+time.Second)) {
			t.Errorf("task %d: eta %v, want an hour after %v", i+1, at, start)
		}
	}
	if n := b.Ready(q); n != 0 {
		t.Errorf("%d more messages", n)
	}
}
