package inspect_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/warrentest"
)

// publishTasks puts n tasks m-0 … m-(n-1) into queue, in that order.
func publishTasks(b *brokertest.Broker, queue string, n int) {
	for k := range n {
		id := fmt.Sprintf("m-%d", k)
		b.Publish("", queue, amqp.Publishing{
			MessageId: id, ContentType: "application/json", Body: []byte(fmt.Sprintf(`{"n":%d}`, k)),
			Timestamp: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
			Headers: amqp.Table{"task": "charge", "id": id, "retries": int32(k),
				"eta": "2026-03-01T12:05:00Z", "expires": "2026-03-02T12:00:00Z"},
		})
	}
}

// drain takes every message of queue and returns their ids in order.
func drain(t *testing.T, b *brokertest.Broker, queue string) (ids []string, ds []amqp.Delivery) {
	t.Helper()
	for {
		d, ok := b.Get(queue)
		if !ok {
			return ids, ds
		}
		ids, ds = append(ids, d.MessageId), append(ds, d)
	}
}

func TestPeekLeavesTheQueueAsItWas(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("video")
	b.DeclareQueue(q)
	publishTasks(b, q, 5)
	insp := newInspector(t, inspect.Config{Conn: conn.Config{URL: b.URL}, NoManagement: true})

	ms, err := insp.Peek(warrentest.Context(t, 10*time.Second), q, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("peeked %d, want 3", len(ms))
	}
	for k, m := range ms {
		id := fmt.Sprintf("m-%d", k)
		if m.ID != id || m.Task != "charge" || m.Queue != q || m.Retries != k || m.Undecodable != "" ||
			!m.ETA.Equal(time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)) || !m.Expires.Equal(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)) ||
			m.ContentType != "application/json" || string(m.Body) != fmt.Sprintf(`{"n":%d}`, k) || m.Headers["id"] != id ||
			m.Redelivered || !m.Timestamp.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) {
			t.Errorf("message %d: %+v", k, m)
		}
	}
	// Given back by the time Peek returns: a classic queue requeues on the
	// channel's close, before the broker's close-ok.
	if r := b.Ready(q); r != 5 {
		t.Errorf("%d ready after the peek, want 5", r)
	}
	ids, ds := drain(t, b, q)
	if fmt.Sprint(ids) != "[m-0 m-1 m-2 m-3 m-4]" {
		t.Errorf("queue after the peek: %v, want all 5 in order", ids)
	}
	for k, d := range ds {
		if d.Redelivered != (k < 3) {
			t.Errorf("%s redelivered = %v: only the 3 peeked are marked", d.MessageId, d.Redelivered)
		}
	}
}

// On a quorum queue a peek counts toward the delivery limit: what Peek's
// doc says it costs, checked, so that a broker that changes it fails here.
func TestPeekQuorumCountsADelivery(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("quorum")
	if _, err := b.Channel().QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	publishTasks(b, q, 3)
	insp := newInspector(t, inspect.Config{Conn: conn.Config{URL: b.URL}, NoManagement: true})
	ms, err := insp.Peek(warrentest.Context(t, 10*time.Second), q, 2)
	if err != nil || len(ms) != 2 || ms[0].ID != "m-0" || ms[1].ID != "m-1" {
		t.Fatalf("Peek = %+v, %v", ms, err)
	}
	// A quorum queue takes its returns through its log: they may land a
	// moment after the close-ok.
	warrentest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == 3 }, "the peeked messages did not come back")
	ids, ds := drain(t, b, q)
	if fmt.Sprint(ids) != "[m-0 m-1 m-2]" {
		t.Errorf("queue after the peek: %v, want all 3 in order", ids)
	}
	for k, d := range ds {
		count, _ := d.Headers["x-delivery-count"].(int64)
		if want := map[bool]int64{true: 1, false: 0}[k < 2]; count != want {
			t.Errorf("%s: x-delivery-count %v, want %d", d.MessageId, d.Headers["x-delivery-count"], want)
		}
	}
}

func TestPeekErrors(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, gone := b.Queue("video"), b.Queue("gone")
	b.DeclareQueue(q)
	publishTasks(b, q, 1)
	insp := newInspector(t, inspect.Config{Conn: conn.Config{URL: b.URL}, NoManagement: true})
	ctx := warrentest.Context(t, 10*time.Second)

	if _, err := insp.Peek(ctx, gone, 1); !errors.Is(err, conn.ErrNotFound) {
		t.Errorf("Peek(missing) = %v, want ErrNotFound", err)
	}
	if b.Ready(gone) != -1 {
		t.Error("Peek created the queue")
	}
	for _, n := range []int{0, inspect.MaxPeek + 1} {
		if _, err := insp.Peek(ctx, q, n); !errors.Is(err, inspect.ErrPeekLimit) {
			t.Errorf("Peek(n=%d) = %v, want ErrPeekLimit", n, err)
		}
	}
	// An empty answer is not an error; a malformed header is shown, not hidden.
	b.Publish("", q, amqp.Publishing{MessageId: "bad", Headers: amqp.Table{"task": "charge", "retries": "three"}})
	ms, err := insp.Peek(ctx, q, inspect.MaxPeek)
	if err != nil || len(ms) != 2 || ms[1].ID != "bad" || ms[1].Undecodable == "" {
		t.Errorf("Peek = %+v, %v; want 2, the second undecodable", ms, err)
	}
	if b.Ready(q) != 2 {
		t.Errorf("%d ready after the peek, want 2", b.Ready(q))
	}
}
