package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, x, topo := b.Direct("jobs", "jobs")
	def := task.Define[Job]("roundtrip")
	type got struct {
		job Job
		msg task.Message
	}
	results := make(chan got, 1)
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		m, _ := task.FromContext(ctx)
		results <- got{j, *m}
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo, Routes: routing.NewTable().Add(def.Name(), routing.Route{Exchange: x, Key: "jobs"})})

	want := Job{N: 42, Note: "héllo, \"world\""}
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, want)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-results:
		if g.job != want {
			t.Errorf("handler got %+v, want %+v", g.job, want)
		}
		if g.msg.ID != id || g.msg.Task != def.Name() || g.msg.Queue != q || g.msg.Retries != 0 {
			t.Errorf("message = id %q task %q queue %q retries %d; want id %q task %q queue %q retries 0",
				g.msg.ID, g.msg.Task, g.msg.Queue, g.msg.Retries, id, def.Name(), q)
		}
		if g.msg.ContentType != task.ContentTypeJSON {
			t.Errorf("content type %q", g.msg.ContentType)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task not handled within 10s")
	}
	warrentest.Eventually(t, 5*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "success not counted: %+v", w.Stats())
}

func TestSeveralQueues(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	queues := []string{b.Queue("a"), b.Queue("b"), b.Queue("c")}
	def := task.Define[Job]("multi")
	var mu sync.Mutex
	seen := map[string][]int{}
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		m, _ := task.FromContext(ctx)
		mu.Lock()
		seen[m.Queue] = append(seen[m.Queue], j.N)
		mu.Unlock()
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: queues, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	ctx := warrentest.Context(t, 20*time.Second)
	for i := 0; i < 30; i++ {
		if _, err := producer.Enqueue(ctx, p, def, Job{N: i}, producer.WithQueue(queues[i%3])); err != nil {
			t.Fatal(err)
		}
	}
	warrentest.Eventually(t, 15*time.Second, func() bool { return w.Stats().Succeeded == 30 }, "handled %+v", w.Stats())
	mu.Lock()
	defer mu.Unlock()
	for i, q := range queues {
		if len(seen[q]) != 10 {
			t.Errorf("queue %d handled %d tasks, want 10", i, len(seen[q]))
		}
		for _, n := range seen[q] {
			if n%3 != i {
				t.Errorf("queue %d handled task %d, which was sent to queue %d", i, n, n%3)
			}
		}
	}
}

func TestConcurrencyLimitHolds(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("conc")
	def := task.Define[Job]("conc")
	const limit = 3
	var running, peak atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		running.Add(-1)
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Concurrency: limit, Prefetch: 50})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	tasks := make([]task.Task, 40)
	for i := range tasks {
		tasks[i] = def.New(Job{N: i})
	}
	if _, err := p.EnqueueBatch(warrentest.Context(t, 10*time.Second), tasks, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 20*time.Second, func() bool { return w.Stats().Succeeded == 40 }, "handled %+v", w.Stats())
	if got := peak.Load(); got != limit {
		t.Errorf("peak concurrency %d, want exactly %d (the limit, reached with 40 queued tasks)", got, limit)
	}
}

func TestPrefetchWindowHolds(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("prefetch")
	def := task.Define[Job]("prefetch")
	release := make(chan struct{})
	var started atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		started.Add(1)
		<-release
		return nil
	}))
	const prefetch, total = 5, 20
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Concurrency: 2, Prefetch: prefetch})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	for i := 0; i < total; i++ {
		if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: i}, producer.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return started.Load() == 2 }, "2 handlers should run")
	// The broker holds back everything beyond the window: 5 unacked, 15 ready.
	warrentest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == total-prefetch }, "ready = %d, want %d", b.Ready(q), total-prefetch)
	time.Sleep(200 * time.Millisecond) // give a window overrun the chance to show
	if r := b.Ready(q); r != total-prefetch {
		t.Errorf("ready = %d after settling, want %d: more than the prefetch window was delivered", r, total-prefetch)
	}
	if s := started.Load(); s != 2 {
		t.Errorf("%d handlers started, want 2 (the concurrency)", s)
	}
	close(release)
	warrentest.Eventually(t, 15*time.Second, func() bool { return w.Stats().Succeeded == total }, "handled %+v", w.Stats())
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("graceful")
	def := task.Define[Job]("graceful")
	release := make(chan struct{})
	var started, finished atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		started.Add(1)
		<-release
		finished.Add(1)
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Concurrency: 2, Prefetch: 10, ShutdownTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := warrentest.Run(t, w)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	tasks := make([]task.Task, 10)
	for i := range tasks {
		tasks[i] = def.New(Job{N: i})
	}
	if _, err := p.EnqueueBatch(warrentest.Context(t, 10*time.Second), tasks, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return started.Load() == 2 }, "2 tasks should be running")

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// Unstarted deliveries go back to the queue while the running two finish.
	warrentest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == 8 }, "ready = %d, want the 8 unstarted", b.Ready(q))
	select {
	case <-stopped:
		t.Fatal("Run returned while handlers were still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop after its handlers finished")
	}
	if f := finished.Load(); f != 2 {
		t.Errorf("%d tasks finished, want the 2 in flight", f)
	}
	s := w.Stats()
	if s.Succeeded != 2 {
		t.Errorf("stats %+v: want 2 succeeded (acked)", s)
	}
	if r := b.Ready(q); r != 8 {
		t.Errorf("ready = %d after shutdown, want 8", r)
	}
}

func TestShutdownTimeoutRequeuesUnfinished(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("hard")
	def := task.Define[Job]("hard")
	var started atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		started.Add(1)
		<-ctx.Done() // a long task that honours cancellation
		return ctx.Err()
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Concurrency: 3, ShutdownTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := warrentest.Run(t, w)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	for i := 0; i < 3; i++ {
		if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: i}, producer.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return started.Load() == 3 }, "3 tasks should run")
	t0 := time.Now()
	stop()
	if el := time.Since(t0); el > 10*time.Second {
		t.Errorf("stop took %v with a 300ms shutdown timeout", el)
	}
	s := w.Stats()
	if s.Requeued != 3 || s.Dead != 0 || s.Succeeded != 0 {
		t.Errorf("stats %+v: want 3 requeued, none dead or succeeded", s)
	}
	warrentest.Eventually(t, 5*time.Second, func() bool { return b.Ready(q) == 3 }, "ready = %d, want 3 requeued", b.Ready(q))
	if n := b.Ready(routing.DeadQueue(q)); n != 0 {
		t.Errorf("%d dead letters; interrupted tasks must not be dead-lettered", n)
	}
}

func TestDefaultTaskRunsHeaderlessMessage(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("plain")
	def := task.Define[Job]("plain_default")
	got := make(chan Job, 1)
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error { got <- j; return nil }))
	topo := routing.Topology{Queues: []routing.Queue{{Name: q, DefaultTask: def.Name()}}}
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	b.Publish("", q, amqp.Publishing{ContentType: "application/json", Body: []byte(`{"n": 7}`)})
	select {
	case j := <-got:
		if j.N != 7 {
			t.Errorf("got %+v, want N=7", j)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("headerless message not handled by the queue's default task")
	}
}

func TestBadInputIsDeadLettered(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("poison")
	def := task.Define[Job]("good")
	var handled atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		handled.Add(1)
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)

	cases := []struct {
		name   string
		msg    amqp.Publishing
		reason string
		errHas string
	}{
		{"unknown task", amqp.Publishing{Headers: amqp.Table{"task": "nope"}, ContentType: "application/json", Body: []byte(`{}`)}, "unknown_task", "nope"},
		{"no task header, no default", amqp.Publishing{ContentType: "application/json", Body: []byte(`{}`)}, "unknown_task", "no task name"},
		{"malformed JSON", amqp.Publishing{Headers: amqp.Table{"task": "good"}, ContentType: "application/json", Body: []byte(`{"n": `)}, "undecodable", "good"},
		{"wrong JSON type", amqp.Publishing{Headers: amqp.Table{"task": "good"}, ContentType: "application/json", Body: []byte(`{"n": "seven"}`)}, "undecodable", "good"},
		{"unknown content type", amqp.Publishing{Headers: amqp.Table{"task": "good"}, ContentType: "application/x-msgpack", Body: []byte{0x81}}, "undecodable", "content type"},
		{"retries not a number", amqp.Publishing{Headers: amqp.Table{"task": "good", "retries": "x"}, ContentType: "application/json", Body: []byte(`{}`)}, "undecodable", "retries"},
		{"garbage eta", amqp.Publishing{Headers: amqp.Table{"task": "good", "eta": "tomorrow-ish"}, ContentType: "application/json", Body: []byte(`{}`)}, "undecodable", "eta"},
		{"gzip encoding", amqp.Publishing{Headers: amqp.Table{"task": "good"}, ContentType: "application/json", ContentEncoding: "gzip", Body: []byte(`{}`)}, "undecodable", "content_encoding"},
		{"max attempts not a number", amqp.Publishing{Headers: amqp.Table{"task": "good", "x-warren-max-attempts": "lots"}, ContentType: "application/json", Body: []byte(`{}`)}, "undecodable", "max-attempts"},
		{"task header not a string", amqp.Publishing{Headers: amqp.Table{"task": int32(5)}, ContentType: "application/json", Body: []byte(`{}`)}, "undecodable", "task"},
	}
	for i, c := range cases {
		c.msg.MessageId = fmt.Sprintf("poison-%d", i)
		c.msg.Headers = withDeath(c.msg.Headers)
		b.Publish("", q, c.msg)
	}
	// A good task after the poison still runs: nothing blocks the queue.
	b.Publish("", q, amqp.Publishing{Headers: amqp.Table{"task": "good"}, ContentType: "application/json", Body: []byte(`{"n":1}`)})

	dq := routing.DeadQueue(q)
	warrentest.Eventually(t, 15*time.Second, func() bool { return b.Ready(dq) == len(cases) }, "dead letters = %d, want %d", b.Ready(dq), len(cases))
	warrentest.Eventually(t, 5*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "the good task should succeed: %+v", w.Stats())
	warrentest.Eventually(t, 5*time.Second, func() bool { return w.Stats().Dead == uint64(len(cases)) }, "dead letters counted: %+v", w.Stats())
	if s := w.Stats(); s.Dead != uint64(len(cases)) {
		t.Errorf("stats %+v: want %d dead", s, len(cases))
	}
	dead := map[string]amqp.Delivery{}
	for {
		d, ok := b.Get(dq)
		if !ok {
			break
		}
		dead[d.MessageId] = d
	}
	for i, c := range cases {
		d, ok := dead[fmt.Sprintf("poison-%d", i)]
		if !ok {
			t.Errorf("%s: not in %s", c.name, dq)
			continue
		}
		h := d.Headers
		if h[worker.HeaderReason] != c.reason {
			t.Errorf("%s: reason %v, want %s", c.name, h[worker.HeaderReason], c.reason)
		}
		if e, _ := h[worker.HeaderError].(string); !strings.Contains(e, c.errHas) {
			t.Errorf("%s: error header %q does not mention %q", c.name, e, c.errHas)
		}
		if h[worker.HeaderQueue] != q || h[worker.HeaderAttempts] != int64(1) {
			t.Errorf("%s: queue %v attempts %v", c.name, h[worker.HeaderQueue], h[worker.HeaderAttempts])
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(h[worker.HeaderDiedAt])); err != nil {
			t.Errorf("%s: died-at %v: %v", c.name, h[worker.HeaderDiedAt], err)
		}
		if _, has := h["x-death"]; has {
			t.Errorf("%s: x-death kept on the dead letter", c.name)
		}
		if !bytes.Equal(d.Body, c.msg.Body) || d.ContentType != c.msg.ContentType {
			t.Errorf("%s: body or content type changed: %q %q", c.name, d.Body, d.ContentType)
		}
		if d.DeliveryMode != amqp.Persistent {
			t.Errorf("%s: dead letter not persistent", c.name)
		}
	}
	if r := b.Ready(q); r != 0 {
		t.Errorf("%d messages left in the work queue", r)
	}
	if n := handled.Load(); n != 1 {
		t.Errorf("handler ran %d times, want once (only the good task)", n)
	}
}

// withDeath adds the headers RabbitMQ's own dead-lettering leaves, which
// warren must drop from its copies.
func withDeath(h amqp.Table) amqp.Table {
	out := amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "queue": "elsewhere"}}, "x-first-death-queue": "elsewhere"}
	for k, v := range h {
		out[k] = v
	}
	return out
}

// An operator deletes <queue>.dead under a running worker: the next dead
// letter re-declares it instead of requeueing the task in a loop.
func TestDeletedDeadQueueIsRedeclared(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("redeclare")
	reg := task.NewRegistry()
	reg.MustRegister(task.Define[Job]("known").Handler(func(context.Context, Job) error { return nil }))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	ch := b.Channel()
	if _, err := ch.QueueDelete(routing.DeadQueue(q), false, false, false); err != nil {
		t.Fatal(err)
	}
	b.Publish("", q, amqp.Publishing{Headers: amqp.Table{"task": "nobody"}, Body: []byte(`{}`)})
	warrentest.Eventually(t, 10*time.Second, func() bool { return b.Ready(routing.DeadQueue(q)) == 1 }, "dead letter never arrived in the re-declared queue")
	// The dead letter is confirmed before the original is acked and counted,
	// so the counter may trail the queue by a moment.
	warrentest.Eventually(t, 5*time.Second, func() bool { return w.Stats().Dead == 1 }, "dead letter never counted")
	if s := w.Stats(); s.Dead != 1 || s.Requeued != 0 {
		t.Errorf("stats %+v: want 1 dead, no requeue loop", s)
	}
}

func TestQueueWithoutDeadLettersIsRefused(t *testing.T) {
	reg := task.NewRegistry()
	_, err := worker.New(worker.Config{Queues: []string{"q"}, Registry: reg,
		Topology: routing.Topology{Queues: []routing.Queue{{Name: "q", NoDeadLetters: true}}}})
	if err == nil || !strings.Contains(err.Error(), "q.dead") {
		t.Errorf("err = %v, want a refusal naming q.dead", err)
	}
}

// A handler that ends its goroutine without returning (runtime.Goexit, as
// t.FailNow does) leaves its delivery unacked, but its handler slot is
// freed: with one slot, the next task still runs.
func TestHandlerGoexitFreesItsSlot(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("goexit")
	var ran atomic.Int64
	reg := task.NewRegistry()
	reg.MustRegister(task.Define[Job]("goexit").Handler(func(_ context.Context, j Job) error {
		ran.Add(1)
		if j.N == 0 {
			runtime.Goexit()
		}
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	for n := range 2 {
		b.Publish("", q, amqp.Publishing{Headers: amqp.Table{"task": "goexit"}, Body: fmt.Appendf(nil, `{"n":%d}`, n)})
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "the task after a Goexit never ran: ran %d, stats %+v", ran.Load(), w.Stats())
}
