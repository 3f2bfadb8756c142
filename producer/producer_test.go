package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
)

type Note struct {
	Text string `json:"text"`
}

var noteTask = task.Define[Note]("note")

// producerWithQueue gives a test its broker, a queue of its own named
// after base, and a producer made with cfg whose topology declares that
// queue.
func producerWithQueue(t *testing.T, base string, cfg producer.Config) (*brokertest.Broker, string, *producer.Producer) {
	t.Helper()
	b := brokertest.New(t)
	q := b.Queue(base)
	cfg.Conn.URL, cfg.Topology = b.URL, routing.Topology{Queues: []routing.Queue{{Name: q}}}
	return b, q, warrentest.NewProducer(t, cfg)
}

func TestEnqueueWireFormat(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, x, topo := b.Direct("wire", "k")
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo, Routes: routing.NewTable().Add("note", routing.Route{Exchange: x, Key: "k"})})
	before := time.Now().Add(-time.Second)
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, noteTask, Note{Text: "hi"},
		producer.WithPriority(3), producer.WithHeaders(map[string]any{"tenant": "acme", "task": "spoofed"}))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := b.Get(q)
	if !ok {
		t.Fatal("message not in queue after a confirmed enqueue")
	}
	var n Note
	if err := json.Unmarshal(d.Body, &n); err != nil || n.Text != "hi" {
		t.Errorf("body %s: %v", d.Body, err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"message_id", d.MessageId, id},
		{"header id", d.Headers["id"], id},
		{"header task", d.Headers["task"], "note"},
		{"header tenant", d.Headers["tenant"], "acme"},
		{"content_type", d.ContentType, "application/json"},
		{"delivery_mode", d.DeliveryMode, amqp.Persistent},
		{"priority", d.Priority, uint8(3)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if _, has := d.Headers["retries"]; has {
		t.Errorf("retries header set on a first attempt: %v", d.Headers["retries"])
	}
	if d.Timestamp.Before(before) || d.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %v is not the enqueue time", d.Timestamp)
	}
	// The id carries the enqueue time, in the timestamp's second, so the
	// enqueued-at header is left out; a worker reads the time back.
	at, ok := task.IDTime(id)
	if !ok || at.Before(before) || at.After(time.Now()) || at.Unix() != d.Timestamp.Unix() {
		t.Errorf("id %q carries %v (%v), want the enqueue time in the second of %v", id, at, ok, d.Timestamp)
	}
	if v, has := d.Headers[task.HeaderEnqueuedAt]; has {
		t.Errorf("%s = %v sent beside an id that carries the time", task.HeaderEnqueuedAt, v)
	}
	m := task.Message{ID: d.MessageId, Timestamp: d.Timestamp}
	if err := m.ParseHeaders(d.Headers); err != nil || !m.EnqueuedAt.Equal(at) {
		t.Errorf("EnqueuedAt read back = %v (%v), want %v", m.EnqueuedAt, err, at)
	}
	// With the caller's own id the time needs the header.
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, noteTask, Note{}, producer.WithID("order-42")); err != nil {
		t.Fatal(err)
	}
	d, ok = b.Get(q)
	if us, isInt := d.Headers[task.HeaderEnqueuedAt].(int64); !ok || !isInt || time.UnixMicro(us).Before(before) {
		t.Errorf("with WithID: %s = %v, want the enqueue time in microseconds", task.HeaderEnqueuedAt, d.Headers[task.HeaderEnqueuedAt])
	}
}

func TestUnroutableIsAnError(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	x := b.Exchange("lonely")
	topo := routing.Topology{Exchanges: []routing.Exchange{{Name: x}}} // no queue bound
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo})
	_, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{}), producer.WithRoute(x, "nowhere"))
	if !errors.Is(err, producer.ErrUnroutable) {
		t.Fatalf("err = %v, want ErrUnroutable", err)
	}
	if !strings.Contains(err.Error(), x) || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("error %q should name the exchange and the key", err)
	}
	// The channel stays usable: an unroutable message is not a channel error.
	q := b.Queue("after")
	b.DeclareQueue(q)
	if _, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{}), producer.WithQueue(q)); err != nil {
		t.Fatalf("enqueue after an unroutable one: %v", err)
	}
	if _, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{}), producer.WithQueue(b.Queue("never-declared"))); !errors.Is(err, producer.ErrUnroutable) {
		t.Errorf("enqueue to a missing queue: err = %v, want ErrUnroutable", err)
	}
}

func TestMissingExchangeIsAnError(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	_, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{}), producer.WithRoute(b.Exchange("missing"), "k"))
	if err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Fatalf("err = %v, want the broker's NOT_FOUND", err)
	}
	// The producer recovers its channel for the next enqueue.
	q := b.Queue("ok")
	b.DeclareQueue(q)
	if _, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{}), producer.WithQueue(q)); err != nil {
		t.Fatalf("enqueue after a channel error: %v", err)
	}
}

func TestNoRouteIsAnError(t *testing.T) {
	t.Parallel()
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: brokertest.URL(t)}})
	_, err := p.Enqueue(warrentest.Context(t, 5*time.Second), noteTask.New(Note{}))
	if !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("err = %v, want routing.ErrNoRoute", err)
	}
}

func TestConcurrentEnqueueAndBatch(t *testing.T) {
	t.Parallel()
	b, q, p := producerWithQueue(t, "many", producer.Config{})
	ctx := warrentest.Context(t, 30*time.Second)
	var wg sync.WaitGroup
	ids := make(chan string, 1000)
	errs := make(chan error, 1000)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				id, err := p.Enqueue(ctx, noteTask.New(Note{Text: "x"}), producer.WithQueue(q))
				if err != nil {
					errs <- err
					return
				}
				ids <- id
			}
		}()
	}
	batch := make([]task.Task, 500)
	for i := range batch {
		batch[i] = noteTask.New(Note{Text: "b"})
	}
	bids, err := p.EnqueueBatch(ctx, batch, producer.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	for _, id := range bids {
		seen[id] = true
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct ids, want 1000", len(seen))
	}
	if n := b.Ready(q); n != 1000 {
		t.Errorf("queue holds %d messages, want 1000", n)
	}
}

func TestBatchReportsEachFailure(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("batch")
	b.DeclareQueue(q)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Routes: routing.NewTable().Add("note", routing.ToQueue(q))})
	ghost := task.Define[Note]("ghost") // no route
	ts := []task.Task{noteTask.New(Note{}), ghost.New(Note{}), noteTask.New(Note{})}
	ids, err := p.EnqueueBatch(warrentest.Context(t, 10*time.Second), ts)
	var be *producer.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want *BatchError", err)
	}
	if be.Failed != 1 || be.Errs[1] == nil || be.Errs[0] != nil || be.Errs[2] != nil {
		t.Errorf("BatchError = %+v, want only index 1 failed", be)
	}
	if !errors.Is(err, routing.ErrNoRoute) {
		t.Errorf("errors.Is(err, ErrNoRoute) = false for %v", err)
	}
	if ids[0] == "" || ids[1] != "" || ids[2] == "" {
		t.Errorf("ids = %q", ids)
	}
	if n := b.Ready(q); n != 2 {
		t.Errorf("queue holds %d, want 2", n)
	}
}

func TestEnqueueWaitsForBrokerThenReportsWhy(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: the producer keeps re-dialling, and an
	// enqueue gives up with its context, saying what the last dial said.
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: "amqp://guest:secret-pw@127.0.0.1:1/"}})
	_, err := p.Enqueue(warrentest.Context(t, 500*time.Millisecond), noteTask.New(Note{}), producer.WithQueue("q"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q should carry the last dial error", err)
	}
	if strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("error %q leaks the password", err)
	}
}

func TestClosedProducer(t *testing.T) {
	t.Parallel()
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: brokertest.URL(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = p.Enqueue(warrentest.Context(t, 5*time.Second), noteTask.New(Note{}), producer.WithQueue("q"))
	if !errors.Is(err, producer.ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}

func TestBadURL(t *testing.T) {
	t.Parallel()
	_, err := producer.New(producer.Config{Conn: conn.Config{URL: "http://user:hunter2@host/"}})
	if err == nil {
		t.Fatal("New accepted an http:// URL")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q leaks the password", err)
	}
}

// Returns are matched to the exact publish even when ids repeat (a
// caller's WithID, redeliveries): a routable and an unroutable publish with
// one id, in flight together on one channel, each get their own outcome.
func TestReturnsMatchTheirPublishWhenIDsRepeat(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("exists")
	b.DeclareQueue(q)
	missing := b.Queue("missing")
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Channels: 1})
	ctx := warrentest.Context(t, 30*time.Second)
	for round := 0; round < 50; round++ {
		id := fmt.Sprintf("same-id-%d", round)
		var wg sync.WaitGroup
		var okErr, badErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, okErr = p.Enqueue(ctx, noteTask.New(Note{}), producer.WithQueue(q), producer.WithID(id))
		}()
		go func() {
			defer wg.Done()
			_, badErr = p.Enqueue(ctx, noteTask.New(Note{}), producer.WithQueue(missing), producer.WithID(id))
		}()
		wg.Wait()
		if okErr != nil {
			t.Fatalf("round %d: routable publish failed: %v", round, okErr)
		}
		if !errors.Is(badErr, producer.ErrUnroutable) {
			t.Fatalf("round %d: unroutable publish: err = %v, want ErrUnroutable", round, badErr)
		}
	}
	if n := b.Ready(q); n != 50 {
		t.Errorf("queue holds %d, want 50", n)
	}
}

// Close does not wait for a broker that does not answer: enqueues waiting
// for a connection fail with ErrClosed.
func TestCloseWhileWaitingForTheBroker(t *testing.T) {
	t.Parallel()
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: "amqp://guest:guest@127.0.0.1:1/"}})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := p.Enqueue(context.Background(), noteTask.New(Note{}), producer.WithQueue("q"))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it start waiting
	closed := make(chan struct{})
	go func() { _ = p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked while an enqueue waited for the broker")
	}
	select {
	case err := <-errc:
		if !errors.Is(err, producer.ErrClosed) {
			t.Errorf("waiting enqueue: err = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting enqueue never returned")
	}
}

// WithID names one task: a batch of several with it is refused whole
// before anything is sent, since every task would carry the same id and
// handlers would take all but one for duplicates.
func TestBatchRefusesOneIDForManyTasks(t *testing.T) {
	t.Parallel()
	b, q, p := producerWithQueue(t, "batch-id", producer.Config{})
	ctx := warrentest.Context(t, 10*time.Second)
	ids, err := p.EnqueueBatch(ctx, []task.Task{noteTask.New(Note{}), noteTask.New(Note{})}, producer.WithQueue(q), producer.WithID("order-42"))
	if !errors.Is(err, producer.ErrInvalid) || !strings.Contains(err.Error(), "WithID") {
		t.Fatalf("err = %v, want ErrInvalid about WithID", err)
	}
	if len(ids) != 2 || ids[0] != "" || ids[1] != "" {
		t.Errorf("ids = %q, want two empty ones", ids)
	}
	if n := b.Ready(q); n > 0 { // -1 if the producer has not yet declared it
		t.Errorf("queue holds %d: a refused batch was sent", n)
	}
	// A batch of one may name its task.
	ids, err = p.EnqueueBatch(ctx, []task.Task{noteTask.New(Note{})}, producer.WithQueue(q), producer.WithID("order-43"))
	if err != nil || len(ids) != 1 || ids[0] != "order-43" {
		t.Fatalf("batch of one with WithID: ids %q, err %v", ids, err)
	}
	if d, ok := b.Get(q); !ok || d.MessageId != "order-43" {
		t.Errorf("queue gave %q (%v), want order-43", d.MessageId, ok)
	}
}

// NewMessage builds the envelope an enqueue publishes, as a worker reads it
// back from the headers.
func TestNewMessageIsWhatEnqueueSends(t *testing.T) {
	t.Parallel()
	eta := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	m, err := producer.NewMessage(noteTask.New(Note{Text: "hi"}), producer.WithID("id-1"), producer.WithETA(eta),
		producer.WithMaxAttempts(3), producer.WithPriority(2), producer.WithHeaders(map[string]any{"tenant": "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	var back task.Message
	if err := back.ParseHeaders(m.Headers); err != nil {
		t.Fatal(err)
	}
	if m.ID != "id-1" || back.ID != "id-1" || back.Task != "note" || !back.ETA.Equal(eta) || back.MaxAttempts != 3 ||
		m.Priority != 2 || m.Headers["tenant"] != "acme" || string(m.Body) != `{"text":"hi"}` || m.ContentType != task.ContentTypeJSON {
		t.Errorf("message %+v, parsed back %+v", m, back)
	}
	if _, err := producer.NewMessage(task.Task{Payload: 1}); err == nil {
		t.Error("a task without a name was accepted")
	}
}
