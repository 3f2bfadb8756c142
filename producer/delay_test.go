package producer_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/warrentest"
)

// arrivals consumes q with a plain consumer and reports each body's text
// with its arrival time.
func arrivals(t *testing.T, url, q string) <-chan [2]any {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	dels, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan [2]any, 16)
	go func() {
		for d := range dels {
			var n Note
			_ = json.Unmarshal(d.Body, &n)
			out <- [2]any{n.Text, time.Now()}
		}
	}()
	return out
}

// arrivalsOnceDeclared is arrivals for a queue that p's connect declares:
// it waits for that by sending a first task through it.
func arrivalsOnceDeclared(t *testing.T, p *producer.Producer, url, q string) <-chan [2]any {
	t.Helper()
	if _, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{Text: "now"}), producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	got := arrivals(t, url, q)
	if a := <-got; a[0] != "now" {
		t.Fatalf("first arrival %v", a[0])
	}
	return got
}

// A 1s delay enqueued after a 2h and a 30s one arrives after about 1s: no
// delay ever waits behind a longer one.
func TestDelaysArriveInDueOrder(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, x, topo := b.Direct("delayed", "k")
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo, Routes: routing.NewTable().Add("note", routing.Route{Exchange: x, Key: "k"})})
	ctx := warrentest.Context(t, 10*time.Second)
	got := arrivalsOnceDeclared(t, p, b.URL, q)
	start := time.Now()
	for _, c := range []struct {
		text  string
		delay time.Duration
	}{{"2h", 2 * time.Hour}, {"30s", 30 * time.Second}, {"1s", time.Second}} {
		if _, err := producer.Enqueue(ctx, p, noteTask, Note{Text: c.text}, producer.WithDelay(c.delay)); err != nil {
			t.Fatal(err)
		}
	}
	want := []struct {
		text     string
		min, max time.Duration
	}{
		{"1s", time.Second, 2500 * time.Millisecond},
		// The broker's TTLs let a message out of the levels a little early:
		// 30 s (four levels) was seen here at 29.74-29.95 s on RabbitMQ
		// 3.10 (docs/guarantees.md, Delays).
		{"30s", 30*time.Second - 500*time.Millisecond, 31500 * time.Millisecond},
	}
	for _, w := range want {
		select {
		case a := <-got:
			el := a[1].(time.Time).Sub(start)
			t.Logf("%s arrived after %v", a[0], el)
			if a[0] != w.text || el < w.min || el > w.max {
				t.Errorf("arrival %v after %v, want %s within [%v, %v]", a[0], el, w.text, w.min, w.max)
			}
		case <-time.After(35 * time.Second):
			t.Fatalf("%s never arrived", w.text)
		}
	}
	select {
	case a := <-got:
		t.Errorf("%v arrived early", a[0])
	case <-time.After(200 * time.Millisecond):
	}
}

func TestDelayTargets(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("targets")
	b.DeclareQueue(q)
	x := b.Exchange("unknown-bindings")
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: routing.Topology{Exchanges: []routing.Exchange{{Name: x}}}})
	ctx := warrentest.Context(t, 10*time.Second)

	// The route's queues are not in the topology: the producer cannot tell
	// where the delay levels should deliver, and says so.
	_, err := p.Enqueue(ctx, noteTask.New(Note{}), producer.WithRoute(x, "k"), producer.WithDelay(time.Minute))
	if !errors.Is(err, producer.ErrNoDelayTarget) {
		t.Errorf("err = %v, want ErrNoDelayTarget", err)
	}
	// Early delivery sends it to the route at once, with its eta header
	// for the worker that takes it to hold it until then.
	warrentest.Eventually(t, 10*time.Second, p.Connected, "producer not connected") // it declares x
	if err := b.Channel().QueueBind(q, "k", x, false, nil); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	id, err := p.Enqueue(ctx, noteTask.New(Note{Text: "early"}), producer.WithRoute(x, "k"), producer.WithETA(due), producer.WithEarlyDelivery())
	if err != nil {
		t.Fatal(err)
	}
	d, ok := b.Get(q)
	if !ok || d.MessageId != id {
		t.Fatalf("early delivery not in %s at once: %v, %+v", q, ok, d)
	}
	if eta, _ := d.Headers["eta"].(string); eta != due.Format(time.RFC3339Nano) {
		t.Errorf("eta header %q, want %s", eta, due.Format(time.RFC3339Nano))
	}
	// A queue that does not exist is named.
	missing := b.Queue("missing")
	_, err = p.Enqueue(ctx, noteTask.New(Note{}), producer.WithQueue(missing), producer.WithDelay(time.Minute))
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want one naming %s", err, missing)
	}
	// An ETA in the past enqueues at once, with the eta header.
	if _, err := p.Enqueue(ctx, noteTask.New(Note{}), producer.WithQueue(q), producer.WithETA(time.Now().Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	d, ok = b.Get(q)
	if !ok {
		t.Fatal("past-ETA task not enqueued at once")
	}
	if _, has := d.Headers["eta"]; !has {
		t.Error("eta header missing")
	}
	// WithQueue + WithDelay binds the queue to the delay levels by itself.
	if _, err := p.Enqueue(ctx, noteTask.New(Note{Text: "later"}), producer.WithQueue(q), producer.WithDelay(time.Second)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 5*time.Second, func() bool { return b.Ready(q) == 1 }, "delayed task never reached %s", q)
}

// A delayed message whose queue has no delivery binding is kept by the
// delivery exchange's alternate exchange, not dropped.
func TestUnboundDelayedMessageIsKept(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}}) // declares the delay levels
	if _, err := p.Enqueue(warrentest.Context(t, 5*time.Second), noteTask.New(Note{}), producer.WithQueue("x"), producer.WithETA(time.Now().Add(-time.Second))); !errors.Is(err, producer.ErrUnroutable) {
		t.Fatalf("setup: %v", err)
	}
	id := "unbound-" + b.Queue("id")
	b.Publish(routing.DelayEntry, routing.DelayKey(time.Second, b.Queue("nobody-binds-me")), amqp.Publishing{MessageId: id, Body: []byte(`{}`)})
	ch := b.Channel()
	// Hold other messages unacked while scanning (a nack would put them
	// back at the head), then give them back.
	found := false
	var others []amqp.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for !found && time.Now().Before(deadline) {
		d, ok, err := ch.Get(routing.DelayUnroutable, false)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !ok:
			time.Sleep(50 * time.Millisecond)
		case d.MessageId == id:
			found = true
			_ = d.Ack(false)
		default:
			others = append(others, d)
		}
	}
	for _, d := range others {
		_ = d.Nack(false, true)
	}
	if !found {
		t.Fatalf("message %s not in %s", id, routing.DelayUnroutable)
	}
}

// Queue names may contain dots: a task delayed for "other.<q>" must not
// also reach "<q>" through the delivery exchange's topic bindings.
func TestDelayedDeliveryWithDottedNames(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("video")
	dotted := "other." + q
	b.Track(dotted)
	b.Track(dotted + ".dead")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}, {Name: dotted}}}
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo})
	ctx := warrentest.Context(t, 10*time.Second)
	if _, err := p.Enqueue(ctx, noteTask.New(Note{Text: "for-dotted"}), producer.WithQueue(dotted), producer.WithDelay(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(ctx, noteTask.New(Note{Text: "for-plain"}), producer.WithQueue(q), producer.WithDelay(time.Second)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 5*time.Second, func() bool { return b.Ready(dotted) == 1 && b.Ready(q) == 1 }, "ready: %s=%d %s=%d", dotted, b.Ready(dotted), q, b.Ready(q))
	time.Sleep(300 * time.Millisecond) // a stray copy would arrive with the others
	for _, c := range []struct{ queue, want string }{{q, "for-plain"}, {dotted, "for-dotted"}} {
		d, ok := b.Get(c.queue)
		var n Note
		_ = json.Unmarshal(d.Body, &n)
		if !ok || n.Text != c.want {
			t.Errorf("%s got %q, want %q", c.queue, n.Text, c.want)
		}
		if extra := b.Ready(c.queue); extra != 0 {
			t.Errorf("%s holds %d more: a delayed task reached the wrong queue", c.queue, extra)
		}
	}
}

// Any delay or ETA in the future goes through the delay levels, rounded up
// to whole seconds, as WithDelay says: 100 ms waits a second, not nothing.
func TestShortDelaysRoundUpToASecond(t *testing.T) {
	t.Parallel()
	b, q, p := producerWithQueue(t, "short", producer.Config{})
	ctx := warrentest.Context(t, 10*time.Second)
	got := arrivalsOnceDeclared(t, p, b.URL, q)
	start := time.Now()
	if _, err := p.Enqueue(ctx, noteTask.New(Note{Text: "100ms"}), producer.WithQueue(q), producer.WithDelay(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(ctx, noteTask.New(Note{Text: "eta+300ms"}), producer.WithQueue(q), producer.WithETA(time.Now().Add(300*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case a := <-got:
			el := a[1].(time.Time).Sub(start)
			t.Logf("%s arrived after %v", a[0], el)
			// The levels' TTL runs from the publish, after start; a margin
			// for the broker's millisecond clock.
			if el < 990*time.Millisecond || el > 5*time.Second {
				t.Errorf("%s arrived after %v, want after about 1s", a[0], el)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a short delay never arrived")
		}
	}
}
