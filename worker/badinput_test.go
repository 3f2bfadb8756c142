package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// poisonCase is one message a worker must dead-letter unrun.
type poisonCase struct {
	name   string
	msg    amqp.Publishing
	reason string
	errHas string                                           // the x-warren-error header must contain it
	check  func(t *testing.T, name string, d amqp.Delivery) // more checks on the dead letter; nil for none
}

// testMaxBody is the body limit of the matrix's worker: small, so that the
// oversized case is cheap to send round after round.
const testMaxBody = 256 << 10

// jsonMsg returns a JSON message whose headers also carry those RabbitMQ's
// own dead-lettering leaves, which warren's copies must drop.
func jsonMsg(h amqp.Table, body string) amqp.Publishing {
	return amqp.Publishing{Headers: withDeath(h), ContentType: "application/json", Body: []byte(body)}
}

// rawJSON is jsonMsg for headers that already carry what they need.
func rawJSON(h amqp.Table, body string) amqp.Publishing {
	return amqp.Publishing{Headers: h, ContentType: "application/json", Body: []byte(body)}
}

// bigTable returns n headers of 32 encoded bytes each ("h00000": 20 bytes).
func bigTable(n int) amqp.Table {
	h := amqp.Table{}
	for i := range n {
		h[fmt.Sprintf("h%05d", i)] = strings.Repeat("v", 20)
	}
	return h
}

// padTo returns h plus a string header "pad" that makes size exactly n.
func padTo(h amqp.Table, n int, size func(map[string]any) int) amqp.Table {
	h = maps.Clone(h)
	h["pad"] = strings.Repeat("p", n-size(h)-(1+len("pad")+5))
	return h
}

// userSize is worker.UserHeaderSize without the entry count.
func userSize(h map[string]any) int {
	n, _ := worker.UserHeaderSize(h)
	return n
}

// summarised checks the dead letter of a message whose header table was
// over the limit: the task name survives, everything else is counted.
func summarised(dropped int) func(t *testing.T, name string, d amqp.Delivery) {
	return func(t *testing.T, name string, d amqp.Delivery) {
		if got := d.Headers[worker.HeaderDroppedHeaders]; got != int64(dropped) {
			t.Errorf("%s: %s = %v, want %d", name, worker.HeaderDroppedHeaders, got, dropped)
		}
		if d.Headers["task"] != "good" {
			t.Errorf("%s: task header %v not kept in the summary", name, d.Headers["task"])
		}
		if n := worker.HeaderTableSize(d.Headers); n > 8<<10 {
			t.Errorf("%s: summarised dead letter still has %d bytes of headers", name, n)
		}
	}
}

func poisonMatrix() []poisonCase {
	good := amqp.Table{"task": "good"}
	// 4000 headers and a pad filling the 128 KiB frame but for 64 bytes for
	// the other properties: a copy with the full table and the headers a
	// dead letter adds could not be published.
	huge := bigTable(4000)
	huge["task"] = "good"
	huge = padTo(withDeath(huge), 128<<10-14-64, worker.HeaderTableSize)
	atLimit := padTo(withDeath(amqp.Table{"task": "nope"}), worker.DefaultMaxHeaderBytes, userSize)
	blob := withDeath(amqp.Table{"task": "good", "blob": strings.Repeat("b", 100<<10)})
	oversized := `{"note":"` + strings.Repeat("a", testMaxBody) + `"}`
	return []poisonCase{
		// The retry issue's cases.
		{name: "unknown task", msg: jsonMsg(amqp.Table{"task": "nope"}, `{}`), reason: "unknown_task", errHas: `unknown task: "nope"`},
		{name: "no task name", msg: jsonMsg(nil, `{}`), reason: "unknown_task", errHas: "no task name"},
		{name: "malformed JSON", msg: jsonMsg(good, `{"n": `), reason: "undecodable", errHas: "invalid JSON at byte 6 of 6"},
		{name: "wrong JSON type", msg: jsonMsg(good, `{"n": "seven"}`), reason: "undecodable", errHas: "cannot unmarshal string"},
		{name: "unknown content type", msg: amqp.Publishing{Headers: withDeath(good), ContentType: "application/x-msgpack", Body: []byte{0x81}}, reason: "undecodable", errHas: `unknown content type: "application/x-msgpack"`},
		{name: "retries not a number", msg: jsonMsg(amqp.Table{"task": "good", "retries": "x"}, `{}`), reason: "undecodable", errHas: `header "retries" is string x`},
		{name: "garbage eta", msg: jsonMsg(amqp.Table{"task": "good", "eta": "tomorrow-ish"}, `{}`), reason: "undecodable", errHas: `"tomorrow-ish" is not an RFC 3339 time`},
		{name: "max attempts not a number", msg: jsonMsg(amqp.Table{"task": "good", "x-warren-max-attempts": "lots"}, `{}`), reason: "undecodable", errHas: "x-warren-max-attempts"},
		{name: "task header not a string", msg: jsonMsg(amqp.Table{"task": int32(5)}, `{}`), reason: "undecodable", errHas: `header "task" is int32 5`},
		// This cases.
		{name: "wrong content_encoding", msg: amqp.Publishing{Headers: withDeath(good), ContentType: "application/json", ContentEncoding: "gzip", Body: []byte(`{}`)}, reason: "undecodable", errHas: `content_encoding "gzip" is not supported`},
		{name: "oversized body", msg: jsonMsg(good, oversized), reason: "too_large",
			errHas: fmt.Sprintf("body is %d bytes, over the limit of %d bytes", len(oversized), testMaxBody)},
		{name: "invalid UTF-8 in a string", msg: jsonMsg(good, "{\"n\":1,\"note\":\"caf\xe9\"}"), reason: "undecodable", errHas: "not valid UTF-8 at byte 18 of 21"},
		{name: "truncated UTF-8 sequence", msg: jsonMsg(good, "{\"note\":\"\xe2\x82\"}"), reason: "undecodable", errHas: "not valid UTF-8 at byte 9 of 13"},
		{name: "100k nested arrays", msg: jsonMsg(good, strings.Repeat("[", 100_000)), reason: "undecodable", errHas: "nests too deeply (10000 levels)"},
		{name: "40k nested objects in a field", msg: jsonMsg(good, `{"note":`+strings.Repeat(`{"a":`, 40_000)), reason: "undecodable", errHas: "nests too deeply"},
		{name: "4000 headers filling the frame", msg: rawJSON(huge, `{}`), reason: "too_large",
			errHas: fmt.Sprintf("headers are %d bytes in 4001 entries, over the limit of %d bytes", userSize(huge), worker.DefaultMaxHeaderBytes),
			check:  summarised(len(huge) - 1)}, // all but the task header
		{name: "one 100 KiB header", msg: rawJSON(blob, `{}`), reason: "too_large",
			errHas: fmt.Sprintf("headers are %d bytes in 1 entries", userSize(blob)), check: summarised(len(blob) - 1)},
		{name: "headers at the limit, unknown task", msg: rawJSON(atLimit, `{}`), reason: "unknown_task", errHas: `"nope"`,
			check: func(t *testing.T, name string, d amqp.Delivery) {
				// At the limit the copy keeps every header and still fits.
				if p, _ := d.Headers["pad"].(string); len(p) != len(atLimit["pad"].(string)) {
					t.Errorf("%s: pad header of %d bytes, want it kept whole (%d)", name, len(p), len(atLimit["pad"].(string)))
				}
				if _, has := d.Headers[worker.HeaderDroppedHeaders]; has {
					t.Errorf("%s: headers at the limit were summarised", name)
				}
			}},
		{name: "10 KB retries header", msg: jsonMsg(amqp.Table{"task": "good", "retries": strings.Repeat("9", 10_000)}, `{}`), reason: "undecodable", errHas: "(10000 bytes), want a non-negative integer",
			check: func(t *testing.T, name string, d amqp.Delivery) {
				if e, _ := d.Headers[worker.HeaderError].(string); len(e) > 300 {
					t.Errorf("%s: error header of %d bytes, want the value clipped", name, len(e))
				}
			}},
	}
}

// poisonPublisher streams the matrix to q, case after case, as a plain
// client would: one confirmed message every interval, but never more than
// ahead messages in front of the worker's dead letters, so that no backlog
// builds up that would measure the queue's length instead of the worker.
type poisonPublisher struct {
	sent  atomic.Int32
	first chan struct{} // closed when the first round is confirmed
	err   error
}

// poisonID names the seq-th message of the stream: round and case.
func poisonID(seq, cases int) string { return fmt.Sprintf("poison-%d-%d", seq/cases, seq%cases) }

func (pp *poisonPublisher) run(ctx context.Context, url, q string, cases []poisonCase, every time.Duration, ahead int, dead func() int) {
	conn, err := amqp.Dial(url)
	if err != nil {
		pp.err = err
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		pp.err = err
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		for seq-dead() >= ahead { // the worker is behind: wait
			select {
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
		c := cases[seq%len(cases)]
		m := c.msg
		m.MessageId = poisonID(seq, len(cases))
		m.DeliveryMode = amqp.Persistent
		dc, err := ch.PublishWithDeferredConfirm("", q, true, false, m)
		if err == nil {
			if ok, werr := dc.WaitContext(context.WithoutCancel(ctx)); !ok || werr != nil {
				err = fmt.Errorf("not confirmed: ok=%v err=%v", ok, werr)
			}
		}
		if err != nil {
			pp.err = fmt.Errorf("%s (%s): %w", m.MessageId, c.name, err)
			return
		}
		if pp.sent.Add(1) == int32(len(cases)) {
			close(pp.first)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// latencies measures enqueue-to-handle time of good tasks.
type latencies struct {
	mu      sync.Mutex
	handled map[string]time.Time
	runs    map[string]int
}

func (l *latencies) handle(ctx context.Context, _ Job) error {
	m, _ := task.FromContext(ctx)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, seen := l.handled[m.ID]; !seen {
		l.handled[m.ID] = now
	}
	l.runs[m.ID]++
	return nil
}

// enqueueGood enqueues n good tasks, one every gap, and returns their
// enqueue-to-handle latencies once all are handled.
func (l *latencies) enqueueGood(t *testing.T, p *producer.Producer, def *task.Def[Job], q, prefix string, n int, gap time.Duration) []time.Duration {
	t.Helper()
	start := make(map[string]time.Time, n)
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		start[id] = time.Now()
		if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, def, Job{N: i}, producer.WithQueue(q), producer.WithID(id)); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
		time.Sleep(gap)
	}
	warrentest.Eventually(t, 30*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for id := range start {
			if _, ok := l.handled[id]; !ok {
				return false
			}
		}
		return true
	}, "good tasks %s-* not all handled", prefix)
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]time.Duration, 0, n)
	for id, s := range start {
		out = append(out, l.handled[id].Sub(s))
	}
	slices.Sort(out)
	return out
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p*float64(len(sorted)-1))]
}

// The bad-input matrix against a live worker: every case ends in
// <queue>.dead with its reason and a precise error, the handler never runs
// for it, the worker neither reconnects nor requeues, and good tasks in the
// same queue are not delayed beyond a generous bound while the poison flows.
// Not parallel, so that the latency figures are not other tests' load.
func TestBadInputMatrix(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("badinput")
	def := task.Define[Job]("good")
	lat := &latencies{handled: map[string]time.Time{}, runs: map[string]int{}}
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(lat.handle))
	var reconnects atomic.Int32
	const concurrency = 4
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL, OnReconnect: func() { reconnects.Add(1) }},
		Queues: []string{q}, Registry: reg, Concurrency: concurrency,
		MaxBodyBytes: testMaxBody})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})

	const goods, gap, poisonEvery = 100, 20 * time.Millisecond, 20 * time.Millisecond
	lat.enqueueGood(t, p, def, q, "warmup", 5, 0)
	cases := poisonMatrix()

	// Each case alone: the time from its publish to its dead letter's
	// confirm and ack, with the worker otherwise idle.
	t.Logf("each case alone, from its confirmed publish to its dead letter counted (polled every 10ms):")
	for i, c := range cases {
		m := c.msg
		m.MessageId = fmt.Sprintf("poison-alone-%d", i)
		start, before := time.Now(), w.Stats().Dead
		b.Publish("", q, m)
		warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Dead > before }, "%s: not dead-lettered within 10s: %+v", c.name, w.Stats())
		t.Logf("  %-36s %6d B body %7d B headers  %v", c.name, len(m.Body), worker.HeaderTableSize(m.Headers), time.Since(start).Round(10*time.Microsecond))
	}
	base := lat.enqueueGood(t, p, def, q, "base", goods, gap)

	ctx, stopPoison := context.WithCancel(context.Background())
	pp := &poisonPublisher{first: make(chan struct{})}
	poisonDone := make(chan struct{})
	go func() {
		defer close(poisonDone)
		aloneDead := int(w.Stats().Dead)
		pp.run(ctx, b.URL, q, cases, poisonEvery, concurrency, func() int { return int(w.Stats().Dead) - aloneDead })
	}()
	select {
	case <-pp.first:
	case <-poisonDone:
		t.Fatalf("poison publisher: %v", pp.err)
	case <-time.After(30 * time.Second):
		t.Fatal("first poison round not confirmed within 30s")
	}
	poisonStart := time.Now()
	under := lat.enqueueGood(t, p, def, q, "during", goods, gap)
	stopPoison()
	<-poisonDone
	poisonFor := time.Since(poisonStart)
	if pp.err != nil {
		t.Fatalf("poison publisher: %v", pp.err)
	}
	sent := int(pp.sent.Load())
	nPoison := sent + len(cases) // + the cases alone

	t.Logf("good task enqueue-to-handle latency, %d tasks each (one every %v; concurrency %d):", goods, gap, concurrency)
	t.Logf("  baseline:          p50 %v  p95 %v  max %v", pct(base, .5), pct(base, .95), pct(base, 1))
	t.Logf("  with poison flow:  p50 %v  p95 %v  max %v", pct(under, .5), pct(under, .95), pct(under, 1))
	t.Logf("  poison: %d messages (%.1f rounds of the %d cases) in %v, %.0f/s, in the same queue, at most %d ahead of the worker",
		sent, float64(sent)/float64(len(cases)), len(cases), poisonFor.Round(time.Millisecond), float64(sent)/poisonFor.Seconds(), concurrency)
	// Generous, for a shared machine under -race: a good task may queue
	// behind up to 4 poison messages of up to 256 KiB. A stall (a
	// reconnect, a requeue pause, a decoder spinning) costs seconds.
	if lim := pct(base, .95) + time.Second; pct(under, .95) > lim {
		t.Errorf("p95 latency with poison %v, over the bound %v (baseline p95 + 1s)", pct(under, .95), lim)
	}
	if lim := pct(base, 1) + 2*time.Second; pct(under, 1) > lim {
		t.Errorf("max latency with poison %v, over the bound %v (baseline max + 2s)", pct(under, 1), lim)
	}

	dead := deadLetters(t, b, q, nPoison)
	if len(dead) != nPoison {
		t.Errorf("%d dead letters, want %d", len(dead), nPoison)
	}
	byID := map[string]amqp.Delivery{}
	for _, d := range dead {
		byID[d.MessageId] = d
	}
	for seq := -len(cases); seq < sent; seq++ { // the cases alone, then the stream
		c, id := cases[(seq+len(cases))%len(cases)], poisonID(seq, len(cases))
		if seq < 0 {
			id = fmt.Sprintf("poison-alone-%d", seq+len(cases))
		}
		d, ok := byID[id]
		if !ok {
			t.Errorf("%s (%s): not dead-lettered", id, c.name)
			continue
		}
		if got := d.Headers[worker.HeaderReason]; got != c.reason {
			t.Errorf("%s: reason %v, want %s", c.name, got, c.reason)
		}
		if e, _ := d.Headers[worker.HeaderError].(string); !strings.Contains(e, c.errHas) {
			t.Errorf("%s: error %q does not contain %q", c.name, e, c.errHas)
		}
		if d.Headers[worker.HeaderQueue] != q || d.Headers[worker.HeaderAttempts] != int64(1) {
			t.Errorf("%s: queue %v attempts %v", c.name, d.Headers[worker.HeaderQueue], d.Headers[worker.HeaderAttempts])
		}
		if _, has := d.Headers["x-death"]; has {
			t.Errorf("%s: x-death kept", c.name)
		}
		if !bytes.Equal(d.Body, c.msg.Body) || d.ContentType != c.msg.ContentType || d.ContentEncoding != c.msg.ContentEncoding {
			t.Errorf("%s: body or content type/encoding changed (%d bytes, %q, %q)", c.name, len(d.Body), d.ContentType, d.ContentEncoding)
		}
		if c.check != nil {
			c.check(t, c.name, d)
		}
	}

	wantGood := 5 + 2*goods
	warrentest.Eventually(t, 10*time.Second, func() bool { s := w.Stats(); return s.Dead == uint64(nPoison) && s.Succeeded == uint64(wantGood) },
		"stats %+v: want %d dead, %d succeeded", w.Stats(), nPoison, wantGood)
	s := w.Stats()
	t.Logf("worker stats: %+v; reconnects %d", s, reconnects.Load())
	if s.Received != uint64(nPoison+wantGood) || s.Requeued != 0 || s.Retried != 0 || s.Expired != 0 || s.StaleAcks != 0 {
		t.Errorf("stats %+v: want %d received, nothing requeued, retried or expired", s, nPoison+wantGood)
	}
	if n := reconnects.Load(); n != 0 {
		t.Errorf("the worker reconnected %d times: a publish must have broken its connection", n)
	}
	if !w.Ready() {
		t.Error("the worker is no longer ready after the matrix")
	}
	lat.mu.Lock()
	for id, n := range lat.runs {
		if strings.HasPrefix(id, "poison-") {
			t.Errorf("handler ran for poison message %s", id)
		} else if n != 1 {
			t.Errorf("good task %s ran %d times", id, n)
		}
	}
	lat.mu.Unlock()
	if r := b.Ready(q); r != 0 {
		t.Errorf("%d messages left in the work queue", r)
	}
}

// worker.HeaderTableSize is byte-exact against amqp091-go's encoder and the
// broker's frame check: a table of every AMQP field type, padded to fill the
// negotiated frame exactly, is accepted, and one byte more is refused. The
// header limits rest on this arithmetic.
func TestHeaderTableSizeMatchesTheWire(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("frame")
	b.DeclareQueue(q)
	mixed := amqp.Table{
		"s": "string", "b": true, "i8": int8(-8), "u8": byte(8), "i16": int16(-16), "u16": uint16(16),
		"i32": int32(-32), "u32": uint32(32), "i64": int64(-64), "f32": float32(3.2), "f64": 6.4,
		"t": time.Unix(1700000000, 0), "x": []byte("bytes"), "v": nil, "d": amqp.Decimal{Scale: 2, Value: 314},
		"a":   []any{"one", int64(2), amqp.Table{"three": int32(3)}, nil},
		"tbl": amqp.Table{"nested": amqp.Table{"deeper": []any{true}}},
	}
	// fits publishes a message whose only property is h on a connection of
	// its own and reports whether the broker took it.
	fits := func(h amqp.Table) (bool, int) {
		conn, err := amqp.Dial(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			t.Fatal(err)
		}
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Headers: h, Body: []byte("{}")})
		if err != nil {
			return false, conn.Config.FrameSize
		}
		ok, err := dc.WaitContext(warrentest.Context(t, 10*time.Second))
		return ok && err == nil && !conn.IsClosed(), conn.Config.FrameSize
	}
	_, frame := fits(amqp.Table{})
	if frame <= 0 {
		t.Fatalf("negotiated frame_max %d: the test needs a bounded frame", frame)
	}
	// The content header frame's payload: class, weight, body size and
	// property flags (14 bytes), then the table.
	room := frame - 14
	exact := padTo(mixed, room, worker.HeaderTableSize)
	if ok, _ := fits(exact); !ok {
		t.Errorf("a table of HeaderTableSize %d (frame_max %d - 14) was refused: HeaderTableSize is short of the real size", worker.HeaderTableSize(exact), frame)
	}
	over := padTo(mixed, room+1, worker.HeaderTableSize)
	if ok, _ := fits(over); ok {
		t.Errorf("a table of HeaderTableSize %d (one byte over) was taken: HeaderTableSize is over the real size", worker.HeaderTableSize(over))
	}
}

// A message whose producer headers are exactly at MaxHeaderBytesCeiling,
// with every property a producer may set long: its retry copy (with
// warren's longest headers) and its dead letter both fit in the frame, and
// the headers the retry and the broker's delay levels add do not push it
// over the limit when it comes back.
func TestHeadersAtTheCeilingRetryThenDeadLetter(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("ceiling")
	def := task.Define[Job]("ceiling", task.WithMaxAttempts(2))
	longErr := errors.New(strings.Repeat("e", 4000)) // cut to 1 KiB in each error header
	var runs atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, _ Job) error {
		runs.Add(1)
		return longErr
	}))
	var reconnects atomic.Int32
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL, OnReconnect: func() { reconnects.Add(1) }},
		Queues: []string{q}, Registry: reg, MaxHeaderBytes: worker.MaxHeaderBytesCeiling,
		Retry: retry.Policy{Backoff: retry.Backoff{Base: time.Second, Max: time.Second, Jitter: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	h := padTo(amqp.Table{"task": "ceiling", "id": strings.Repeat("i", 1000)}, worker.MaxHeaderBytesCeiling, userSize)
	b.Publish("", q, amqp.Publishing{Headers: h, ContentType: "application/json", Body: []byte(`{"n":1}`),
		MessageId: strings.Repeat("m", 255), CorrelationId: strings.Repeat("c", 255)})

	dead := deadLetters(t, b, q, 1)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if d.Headers[worker.HeaderReason] != "exhausted" || d.Headers[worker.HeaderAttempts] != int64(2) {
		t.Errorf("reason %v attempts %v, want exhausted after 2 (not too_large: the retry's headers must not count)",
			d.Headers[worker.HeaderReason], d.Headers[worker.HeaderAttempts])
	}
	if p, _ := d.Headers["pad"].(string); len(p) != len(h["pad"].(string)) {
		t.Errorf("pad header of %d bytes, want it kept whole", len(p))
	}
	t.Logf("dead letter header table: %d bytes", worker.HeaderTableSize(d.Headers))
	if n := runs.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
	warrentest.Eventually(t, 5*time.Second, func() bool { return w.Stats().Dead == 1 }, "dead letter not counted: %+v", w.Stats())
	if s := w.Stats(); s.Retried != 1 || s.Requeued != 0 || reconnects.Load() != 0 {
		t.Errorf("stats %+v, reconnects %d: want one retry, no requeue, no reconnect", s, reconnects.Load())
	}
}
