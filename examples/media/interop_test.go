package media_test

// Interoperability with Kombu (Celery's transport library), against the real
// broker: a Python producer enqueues process_media with or without warren's
// headers and a warren worker runs it; a task enqueued by warren is read by
// a plain Kombu consumer. The Python side is testdata/kombu_*.py, the same
// code docs/protocol.md shows.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/examples/media"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// requireKombu skips the test locally when Kombu is missing and fails it in
// CI, where the interop tests must never pass by skipping.
func requireKombu(t *testing.T) {
	t.Helper()
	testenv.RequirePython(t, "kombu", "--with-kombu")
}

// runPython runs a testdata script with args and returns its stdout.
func runPython(t *testing.T, script string, args ...string) []byte {
	t.Helper()
	return testenv.RunPython(t, nil, script, args...)
}

// testbed is one test's copy of the media topology under names of its own.
type testbed struct {
	b        *brokertest.Broker
	exchange string
	queue    string
	key      string
	kombuURL string
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	b := brokertest.New(t)
	ku, err := testenv.KombuURL(b.URL)
	if err != nil {
		t.Fatalf("kombu URL for %s: %v", b.URL, err)
	}
	return &testbed{b: b, exchange: b.Exchange(media.Exchange), queue: b.Queue(media.Queue), key: media.Key, kombuURL: ku}
}

// topology is media.Topology under the test's names; withDefault keeps the
// queue's default task (process_media), as media.Topology has it.
func (tb *testbed) topology(withDefault bool) routing.Topology {
	q := routing.Queue{Name: tb.queue}
	if withDefault {
		q.DefaultTask = media.ProcessMedia.Name()
	}
	return routing.Topology{
		Exchanges: []routing.Exchange{{Name: tb.exchange, Kind: routing.Direct}},
		Queues:    []routing.Queue{q},
		Bindings:  []routing.Binding{{Exchange: tb.exchange, Queue: tb.queue, Key: tb.key}},
	}
}

// kombuPublish publishes body with testdata/kombu_publish.py, which also
// declares exchange, queue and binding as Kombu's docs do: plainly, or with
// warren's headers when taskName is set.
func (tb *testbed) kombuPublish(t *testing.T, body, taskName, id string) {
	t.Helper()
	args := []string{"--url", tb.kombuURL, "--exchange", tb.exchange, "--key", tb.key, "--queue", tb.queue, "--body", body}
	want := "published"
	if taskName != "" {
		args = append(args, "--task", taskName, "--id", id)
		want += " " + id
	}
	if out := runPython(t, "kombu_publish.py", args...); strings.TrimSpace(string(out)) != want {
		t.Fatalf("kombu_publish.py printed %q, want %q", out, want)
	}
}

// received is what the wrapped process_media handler saw.
type received struct {
	Payload media.Media
	Msg     task.Message // copy of the envelope from task.FromContext
	HasMsg  bool
}

// runningWorker is a worker.Worker consuming the testbed's queue with
// media.ProcessMedia registered through a recording wrapper.
type runningWorker struct {
	w  *worker.Worker
	mu sync.Mutex
	rs []received
}

func (rw *runningWorker) received() []received {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return append([]received(nil), rw.rs...)
}

// startWorker runs a worker on topo until the test ends and waits until it
// is ready (topology declared, consuming).
func startWorker(t *testing.T, tb *testbed, topo routing.Topology) *runningWorker {
	t.Helper()
	rw := &runningWorker{}
	reg := task.NewRegistry()
	reg.MustRegister(media.ProcessMedia.Handler(func(ctx context.Context, m media.Media) error {
		r := received{Payload: m}
		if msg, ok := task.FromContext(ctx); ok {
			r.Msg, r.HasMsg = *msg, true
		}
		rw.mu.Lock()
		rw.rs = append(rw.rs, r)
		rw.mu.Unlock()
		return media.Process(ctx, m)
	}))
	w, err := worker.New(worker.Config{
		Conn:            conn.Config{URL: tb.b.URL},
		Queues:          []string{tb.queue},
		Registry:        reg,
		Topology:        topo,
		ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	rw.w = w
	warrentest.Run(t, w)
	return rw
}

// waitHandled waits until the worker has handled and acked n tasks, and
// checks that none was dead-lettered.
func (rw *runningWorker) waitHandled(t *testing.T, tb *testbed, n int) []received {
	t.Helper()
	var last worker.Stats // printed through the pointer on timeout
	brokertest.Eventually(t, 20*time.Second, func() bool {
		last = rw.w.Stats()
		return last.Succeeded >= uint64(n) || last.Dead > 0
	}, "worker did not finish %d task(s); stats %+v", n, &last)
	if s := rw.w.Stats(); s.Dead != 0 || s.Succeeded != uint64(n) {
		t.Fatalf("stats %+v, want %d succeeded and none dead; dead letters: %s", s, n, deadLetters(tb))
	}
	if d := tb.b.Ready(routing.DeadQueue(tb.queue)); d != 0 {
		t.Fatalf("%d message(s) in %s, want 0", d, routing.DeadQueue(tb.queue))
	}
	rs := rw.received()
	if len(rs) != n {
		t.Fatalf("handler ran %d time(s), want %d: %+v", len(rs), n, rs)
	}
	return rs
}

// deadLetters describes the first dead letter, for failure messages.
func deadLetters(tb *testbed) string {
	d, ok := tb.b.Get(routing.DeadQueue(tb.queue))
	if !ok {
		return "none"
	}
	return fmt.Sprintf("headers %v body %s", d.Headers, d.Body)
}

var lolcat = media.Media{Name: "/tmp/lolcat1.avi", Size: 1301013}

const lolcatJSON = `{"name": "/tmp/lolcat1.avi", "size": 1301013}`

// A plain Kombu producer, knowing nothing of warren, publishes the bare JSON
// payload to the exchange with the routing key, declaring the queue as
// Kombu's docs do. Kombu's declaration matches warren's (no
// PRECONDITION_FAILED: the script exits 0), and the queue's default task
// runs the message as process_media.
func TestKombuPlainPublishRunsDefaultTask(t *testing.T) {
	t.Parallel()
	requireKombu(t)
	tb := newTestbed(t)
	rw := startWorker(t, tb, tb.topology(true))

	tb.kombuPublish(t, lolcatJSON, "", "")

	r := rw.waitHandled(t, tb, 1)[0]
	if r.Payload != lolcat {
		t.Errorf("payload %+v, want %+v", r.Payload, lolcat)
	}
	if !r.HasMsg {
		t.Fatal("task.FromContext found no message in the handler's context")
	}
	if r.Msg.Task != media.ProcessMedia.Name() {
		t.Errorf("task %q, want the queue's default %q", r.Msg.Task, media.ProcessMedia.Name())
	}
	if r.Msg.ID != "" {
		t.Errorf("id %q; a message without message_id or id header has none", r.Msg.ID)
	}
	if _, ok := r.Msg.Headers[task.HeaderTask]; ok {
		t.Errorf("the plain publish carried a task header: %v", r.Msg.Headers)
	}
	if r.Msg.ContentType != task.ContentTypeJSON || r.Msg.Queue != tb.queue {
		t.Errorf("content type %q queue %q, want %q and %q", r.Msg.ContentType, r.Msg.Queue, task.ContentTypeJSON, tb.queue)
	}
}

// The other order: Kombu declares exchange, queue and binding first (and
// its message waits in the queue), then the worker declares the same
// topology on start. The worker becoming ready proves its declaration was
// accepted, and the waiting message runs.
func TestKombuDeclaresFirstThenWorkerStarts(t *testing.T) {
	t.Parallel()
	requireKombu(t)
	tb := newTestbed(t)

	tb.kombuPublish(t, lolcatJSON, "", "")
	if n := tb.b.Ready(tb.queue); n != 1 {
		t.Fatalf("%d message(s) in the queue Kombu declared, want 1", n)
	}

	rw := startWorker(t, tb, tb.topology(true))
	if r := rw.waitHandled(t, tb, 1)[0]; r.Payload != lolcat {
		t.Errorf("payload %+v, want %+v", r.Payload, lolcat)
	}
}

// Kombu publishes with warren's headers (task, id) and message_id. The
// queue has no default task here, so the message runs only because the
// worker read its task header; the handler sees the id through
// task.FromContext.
func TestKombuPublishWithWarrenHeaders(t *testing.T) {
	t.Parallel()
	requireKombu(t)
	tb := newTestbed(t)
	rw := startWorker(t, tb, tb.topology(false))

	id := uuid.NewString()
	before := time.Now().Add(-2 * time.Second) // AMQP timestamps have whole seconds
	tb.kombuPublish(t, `{"name": "/tmp/lolcat2.avi", "size": 42}`, media.ProcessMedia.Name(), id)

	r := rw.waitHandled(t, tb, 1)[0]
	if want := (media.Media{Name: "/tmp/lolcat2.avi", Size: 42}); r.Payload != want {
		t.Errorf("payload %+v, want %+v", r.Payload, want)
	}
	if !r.HasMsg {
		t.Fatal("task.FromContext found no message in the handler's context")
	}
	if r.Msg.ID != id {
		t.Errorf("task.FromContext id %q, want %q", r.Msg.ID, id)
	}
	if r.Msg.Task != media.ProcessMedia.Name() {
		t.Errorf("task %q, want %q", r.Msg.Task, media.ProcessMedia.Name())
	}
	if r.Msg.Headers[task.HeaderID] != id || r.Msg.Retries != 0 {
		t.Errorf("headers %v retries %d, want id %s and 0 retries", r.Msg.Headers, r.Msg.Retries, id)
	}
	if ts := r.Msg.Timestamp; ts.Before(before) || ts.After(time.Now().Add(2*time.Second)) {
		t.Errorf("timestamp %v, want the publish time (about %v)", ts, before)
	}
}

// kombuSaw is what testdata/kombu_consume.py prints.
type kombuSaw struct {
	Body            string          `json:"body"`
	Payload         json.RawMessage `json:"payload"`
	ContentType     string          `json:"content_type"`
	ContentEncoding *string         `json:"content_encoding"`
	DeliveryMode    int             `json:"delivery_mode"`
	MessageID       string          `json:"message_id"`
	Timestamp       *float64        `json:"timestamp"`
	Priority        *int            `json:"priority"`
	Headers         map[string]any  `json:"headers"`
}

// A task enqueued by warren, on a queue no worker consumes, is read by a
// plain Kombu consumer: the body is the JSON payload, the properties and
// headers are those of the wire protocol.
func TestKombuConsumesWarrenTask(t *testing.T) {
	t.Parallel()
	requireKombu(t)
	tb := newTestbed(t)
	topo := tb.topology(false)
	p, err := producer.New(producer.Config{
		Conn:     conn.Config{URL: tb.b.URL},
		Topology: topo,
		Routes:   routing.NewTable().Add(media.ProcessMedia.Name(), routing.Route{Exchange: tb.exchange, Key: tb.key}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := time.Now().Add(-2 * time.Second) // AMQP timestamps have whole seconds
	id, err := producer.Enqueue(ctx, p, media.ProcessMedia, lolcat)
	if err != nil {
		t.Fatal(err)
	}

	out := runPython(t, "kombu_consume.py", "--url", tb.kombuURL, "--queue", tb.queue,
		"--exchange", tb.exchange, "--key", tb.key, "--timeout", "30")
	var saw kombuSaw
	if err := json.Unmarshal(out, &saw); err != nil {
		t.Fatalf("kombu_consume.py output %q: %v", out, err)
	}
	t.Logf("Kombu saw: %s", out)

	var body, decoded media.Media
	if err := json.Unmarshal([]byte(saw.Body), &body); err != nil || body != lolcat {
		t.Errorf("body %q decodes to %+v (%v), want %+v", saw.Body, body, err, lolcat)
	}
	if err := json.Unmarshal(saw.Payload, &decoded); err != nil || decoded != lolcat {
		t.Errorf("Kombu decoded the payload to %s (%v), want %+v", saw.Payload, err, lolcat)
	}
	if saw.ContentType != task.ContentTypeJSON {
		t.Errorf("content_type %q, want %q", saw.ContentType, task.ContentTypeJSON)
	}
	if saw.DeliveryMode != 2 {
		t.Errorf("delivery_mode %d, want 2 (persistent)", saw.DeliveryMode)
	}
	if _, err := uuid.Parse(id); err != nil {
		t.Errorf("Enqueue returned id %q, not a UUID: %v", id, err)
	}
	if saw.MessageID != id {
		t.Errorf("message_id %q, want the id Enqueue returned, %q", saw.MessageID, id)
	}
	if saw.Headers["id"] != id {
		t.Errorf("headers[id] = %v, want %q", saw.Headers["id"], id)
	}
	if saw.Headers["task"] != media.ProcessMedia.Name() {
		t.Errorf("headers[task] = %v, want %q", saw.Headers["task"], media.ProcessMedia.Name())
	}
	for _, h := range []string{task.HeaderRetries, task.HeaderETA, task.HeaderExpires} {
		if v, ok := saw.Headers[h]; ok {
			t.Errorf("header %s = %v on a fresh task without options; absent means the default", h, v)
		}
	}
	if saw.Timestamp == nil {
		t.Error("no timestamp property")
	} else if ts := time.Unix(int64(*saw.Timestamp), 0); ts.Before(before) || ts.After(time.Now().Add(2*time.Second)) {
		t.Errorf("timestamp %v, want the enqueue time (about %v)", ts, before)
	}
	if n := tb.b.Ready(tb.queue); n != 0 {
		t.Errorf("%d message(s) left in %s after Kombu acked, want 0", n, tb.queue)
	}
}

// docs/protocol.md quotes the Python the tests above run; the quotes must
// not drift from the scripts.
func TestProtocolDocQuotesKombuScripts(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "# --- quoted in docs/protocol.md: begin ---\n", "# --- quoted in docs/protocol.md: end ---\n"
	for _, script := range []string{"kombu_publish.py", "kombu_consume.py"} {
		src, err := os.ReadFile("testdata/" + script)
		if err != nil {
			t.Fatal(err)
		}
		s := string(src)
		i, j := strings.Index(s, begin), strings.Index(s, end)
		if i < 0 || j < i {
			t.Errorf("%s: no quoted block between %q and %q", script, begin, end)
			continue
		}
		if quote := s[i : j+len(end)]; !strings.Contains(string(doc), quote) {
			t.Errorf("docs/protocol.md does not quote %s's block verbatim; copy it:\n%s", script, quote)
		}
	}
}
