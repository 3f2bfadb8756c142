package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Every field amqp091-go writes as a short string, header keys at any
// depth, properties over a frame and a body over the limit are refused
// before they reach a channel; the connection stays up and carries the
// next publish.
func TestPublishRefusesWhatAMQPCannotCarry(t *testing.T) {
	t.Parallel()
	b, q, sup, _, ctx := PublisherSetup(t, "refuse", 1)
	pub := NewPublisher(sup, 1, WithMaxBody(1024))
	t.Cleanup(pub.Close)
	long := strings.Repeat("x", MaxShortString+1)
	good := func() Publishing {
		return Publishing{Key: q, MessageID: "id", ContentType: "application/json", Headers: map[string]any{"task": "t"}, Body: []byte("{}")}
	}
	for _, tc := range []struct {
		name   string
		change func(*Publishing)
		says   string
	}{
		{"exchange", func(m *Publishing) { m.Exchange = long }, "exchange"},
		{"routing key", func(m *Publishing) { m.Key = long }, "routing key"},
		{"message id", func(m *Publishing) { m.MessageID = long }, "message id"},
		{"correlation id", func(m *Publishing) { m.CorrelationID = long }, "correlation id"},
		{"reply-to", func(m *Publishing) { m.ReplyTo = long }, "reply-to"},
		{"content type", func(m *Publishing) { m.ContentType = long }, "content type"},
		{"content encoding", func(m *Publishing) { m.Encoding = long }, "content encoding"},
		{"header key", func(m *Publishing) { m.Headers[long] = "v" }, "header key"},
		{"nested header key", func(m *Publishing) { m.Headers["t"] = amqp.Table{"a": amqp.Table{long: 1}} }, `header key "t" > "a" > "xxx`},
		{"header key in an array", func(m *Publishing) { m.Headers["a"] = []any{[]any{amqp.Table{long: 1}}} }, `header key "a"[0][0] > "xxx`},
		{"properties over the frame", func(m *Publishing) { m.Headers["big"] = make([]byte, MaxProperties) }, "frame_max is 131072"},
		{"body over the limit", func(m *Publishing) { m.Body = make([]byte, 1025) }, "body is 1025 bytes, over the limit of 1024"},
	} {
		m := good()
		tc.change(&m)
		_, err := pub.Publish(ctx, &m)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want ErrInvalid saying %q", tc.name, err, tc.says)
		}
		var ie *InvalidError
		if errors.As(err, &ie) && (ie.Size <= ie.Limit || ie.Limit == 0) {
			t.Errorf("%s: %+v does not give the size over the limit", tc.name, ie)
		}
	}
	// Exactly at every limit goes through.
	m := good()
	m.MessageID, m.Key = strings.Repeat("i", MaxShortString), q
	m.Body = make([]byte, 1024)
	m.Headers["pad"] = ""
	base, _ := tableSize(m.Headers, false)
	m.Headers["pad"] = strings.Repeat("p", MaxProperties-propertiesSize(&m, base))
	c, err := pub.Publish(ctx, &m)
	if err != nil {
		t.Fatalf("a publish at every limit: %v", err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("a publish at every limit: %v", err)
	}
	if sess, err := sup.Session(ctx); err != nil || sess.Gen != 1 {
		t.Errorf("session %v, %v: the connection was replaced", sess, err)
	}
	if n := b.Ready(q); n != 1 {
		t.Errorf("queue holds %d, want the 1 good publish", n)
	}
}

// tableSize and propertiesSize count exactly what amqp091-go writes. The
// spec gives a frame's payload frame_max - 8 bytes, which Publish keeps to;
// RabbitMQ takes 8 bytes more (its FRAME_SIZE_FUDGE) and closes the
// connection over that. So properties of the room Publish allows go
// through, as do 8 bytes more, and one byte past that is refused: a count
// off by a byte either way moves that edge. Run on connections of the
// test's own.
func TestSizesMatchTheBroker(t *testing.T) {
	t.Parallel()
	b, q, _, _, _ := PublisherSetup(t, "sizes", 1)
	headers := map[string]any{
		"s": "str", "n": nil, "t": true, "u8": byte(1), "i8": int8(-1), "i16": int16(2), "u16": uint16(3),
		"i": 4, "i32": int32(5), "u32": uint32(6), "i64": int64(7), "f32": float32(8), "f64": 9.5,
		"d": amqp.Decimal{Scale: 2, Value: 1234}, "at": time.Now(), "b": []byte("bytes"),
		"a":   []any{"x", 1, []any{}, amqp.Table{"k": "v"}},
		"tab": amqp.Table{"inner": amqp.Table{}, "e": amqp.Table{"z": int64(1)}},
		"pad": "",
	}
	m := Publishing{Key: q, MessageID: "m", ContentType: "application/json", Encoding: "identity", CorrelationID: "c",
		ReplyTo: "r", Priority: 1, Timestamp: time.Now(), Headers: headers}
	n, bad := tableSize(headers, false)
	if bad != nil {
		t.Fatal(bad.err())
	}
	// What the broker allows a content header's properties, without the
	// room Publish keeps for the sequence header.
	room := MaxProperties - (propertiesSize(&m, n) - publishSeqEntry)
	publish := func(pad int) error {
		headers["pad"] = strings.Repeat("p", pad)
		conn, err := amqp.Dial(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{
			Headers: headers, ContentType: m.ContentType, ContentEncoding: m.Encoding, CorrelationId: m.CorrelationID,
			ReplyTo: m.ReplyTo, Priority: m.Priority, Timestamp: m.Timestamp, MessageId: m.MessageID, DeliveryMode: amqp.Persistent,
		})
		if err != nil {
			return err
		}
		ack, err := dc.WaitContext(ctx)
		switch {
		case err != nil:
			return err
		case !ack || conn.IsClosed():
			return errors.New("not confirmed: the connection closed")
		}
		return nil
	}
	const fudge = 8
	if err := publish(room); err != nil {
		t.Errorf("properties of exactly the room Publish allows: %v", err)
	}
	if err := publish(room + fudge); err != nil {
		t.Errorf("properties %d bytes over the room (RabbitMQ's fudge): %v; the sizes undercount", fudge, err)
	}
	if err := publish(room + fudge + 1); err == nil {
		t.Errorf("properties %d bytes over the room were taken: the sizes overcount", fudge+1)
	}
}

// Check runs on every publish: it must not allocate for a good message.
func BenchmarkCheck(b *testing.B) {
	m := &Publishing{Key: "video", MessageID: "01a23749-9060-70a5-87fa-2d70e7687c32", ContentType: "application/json",
		Headers: map[string]any{"task": "process_media", "id": "01a23749-9060-70a5-87fa-2d70e7687c32", "retries": int64(2),
			"eta": "2026-01-01T00:00:00Z", "tenant": "acme", "trace": amqp.Table{"span": "abc", "sampled": true}},
		Body: make([]byte, 512), Timestamp: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if err := check(m, 16<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// TableSize counts what amqp091-go's writeField and writeTable write: a
// type octet, then the value; strings and arrays with a 4-byte length,
// tables too. It is what the worker's header limit counts.
func TestTableSize(t *testing.T) {
	tests := []struct {
		name string
		h    map[string]any
		want int
	}{
		{"nil table", nil, 4},
		{"empty table", map[string]any{}, 4},
		{"string", map[string]any{"task": "process_media"}, 4 + 1 + 4 + 1 + 4 + 13},
		{"empty key and value", map[string]any{"": ""}, 4 + 1 + 5},
		{"nil value", map[string]any{"k": nil}, 4 + 2 + 1},
		{"bool", map[string]any{"k": true}, 4 + 2 + 2},
		{"int8", map[string]any{"k": int8(-1)}, 4 + 2 + 2},
		{"uint8", map[string]any{"k": uint8(1)}, 4 + 2 + 2},
		{"int16", map[string]any{"k": int16(1)}, 4 + 2 + 3},
		{"uint16", map[string]any{"k": uint16(1)}, 4 + 2 + 3},
		{"int, written as int32", map[string]any{"k": 7}, 4 + 2 + 5},
		{"int32", map[string]any{"k": int32(7)}, 4 + 2 + 5},
		{"uint32", map[string]any{"k": uint32(7)}, 4 + 2 + 5},
		{"float32", map[string]any{"k": float32(1)}, 4 + 2 + 5},
		{"int64", map[string]any{"k": int64(7)}, 4 + 2 + 9},
		{"float64", map[string]any{"k": 1.5}, 4 + 2 + 9},
		{"timestamp", map[string]any{"k": time.Unix(0, 0)}, 4 + 2 + 9},
		{"bytes", map[string]any{"k": []byte("abc")}, 4 + 2 + 5 + 3},
		{"array", map[string]any{"k": []any{"ab", int64(1), nil}}, 4 + 2 + 5 + (5 + 2) + 9 + 1},
		{"plain map, which the client cannot write, counts as 9", map[string]any{"k": map[string]any{"a": int32(1)}}, 4 + 2 + 9},
		{"nested table", map[string]any{"k": amqp.Table{"a": int32(1)}}, 4 + 2 + 1 + 4 + 2 + 5},
		{"x-death as amqp091-go reads it", map[string]any{"x-death": []any{amqp.Table{"count": int64(1)}}}, 4 + 8 + 5 + 1 + 4 + 6 + 9},
		{"decimal", map[string]any{"k": amqp.Decimal{Scale: 2, Value: 100}}, 4 + 2 + 6},
		{"unsupported type counts as 9", map[string]any{"k": uint64(1)}, 4 + 2 + 9},
		{"several", map[string]any{"task": "t", "retries": int64(2)}, 4 + (1 + 4 + 5 + 1) + (1 + 7 + 9)},
	}
	for _, tc := range tests {
		if got := TableSize(tc.h); got != tc.want {
			t.Errorf("%s: TableSize(%v) = %d, want %d", tc.name, tc.h, got, tc.want)
		}
	}
}
