package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
)

// proxied is a consumer of a fresh queue through a TCP proxy that the test
// can cut, with a way to take its next delivery.
type proxied struct {
	b  *brokertest.Broker
	px *tcpproxy.Proxy
	q  string
	c  *broker.Consumer
}

// startProxied declares a queue named after base, fills it with publish
// (may be nil), and starts a consumer of it with prefetch
// through a proxy; everything stops at cleanup.
func startProxied(t *testing.T, base string, prefetch int, publish func(b *brokertest.Broker, q string)) (*proxied, func() *broker.Delivery) {
	t.Helper()
	b := brokertest.New(t)
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	q := b.Queue(base)
	b.DeclareQueue(q)
	if publish != nil {
		publish(b, q)
	}
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: brokertest.WithHost(b.URL, px.Addr())}, Role: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *broker.Delivery)
	c := sup.NewConsumer(q, prefetch, out)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	take := func() *broker.Delivery {
		t.Helper()
		select {
		case d := <-out:
			return d
		case <-time.After(15 * time.Second):
			t.Fatal("no delivery within 15s")
			return nil
		}
	}
	return &proxied{b: b, px: px, q: q, c: c}, take
}

// After its channel dies, a delivery is not Live and its Ack is dropped
// with ErrStaleDelivery: the new channel numbers deliveries from 1 again,
// and the same tag there names another message, which must stay unacked.
func TestStaleDeliveryIsNotAcked(t *testing.T) {
	t.Parallel()
	pc, take := startProxied(t, "stale", 1, nil)
	b, q, px, c := pc.b, pc.q, pc.px, pc.c

	b.Publish("", q, amqp.Publishing{MessageId: "a", Body: []byte("a")})
	old := take()
	if !old.Live() {
		t.Fatal("a fresh delivery is not live")
	}
	px.Cut()
	again := take() // "a" again, tag 1 on the new channel
	if again.MessageID != "a" || again.Tag != old.Tag || !again.Redelivered {
		t.Fatalf("after the cut got %q tag %d (redelivered %v), want a redelivered with tag %d", again.MessageID, again.Tag, again.Redelivered, old.Tag)
	}
	if old.Live() {
		t.Error("a delivery of the dead channel is still live")
	}
	if err := old.Ack(); !errors.Is(err, broker.ErrStaleDelivery) {
		t.Fatalf("Ack of a delivery of the dead channel: %v, want ErrStaleDelivery", err)
	}
	// Had the stale ack gone out as tag 1 on the new channel, it would have
	// acked "a" there; nacking it instead must bring it back once more.
	if err := again.Nack(true); err != nil {
		t.Fatal(err)
	}
	if d := take(); d.MessageID != "a" {
		t.Fatalf("got %q, want a back after its nack", d.MessageID)
	}
	if n := c.StaleAcks(); n != 1 {
		t.Errorf("StaleAcks = %d, want 1", n)
	}
}

// Acks reach the broker coalesced, in fewer frames than deliveries, and a
// delivery still running at the head does not keep the others unacked: after
// the connection is cut, only the running one comes back.
func TestCoalescedAcksReachTheBroker(t *testing.T) {
	t.Parallel()
	const n = 200
	pc, take := startProxied(t, "coalesced", 128, func(b *brokertest.Broker, q string) { // room for the first half unacked
		for i := range n {
			b.Publish("", q, amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte("x")})
		}
	})
	b, q, px, c := pc.b, pc.q, pc.px, pc.c

	// Handlers finish in order while the consumer has more to hand out:
	// coalesced.
	var first []*broker.Delivery
	for range n / 2 {
		first = append(first, take())
	}
	for _, d := range first {
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 10*time.Second, func() bool { p, _ := c.AckStats(); return p == 0 }, "acks never sent")
	_, frames := c.AckStats()
	t.Logf("%d acks in order in %d frames", n/2, frames)
	if frames >= n/4 {
		t.Errorf("%d frames for %d acks: not coalesced", frames, n/2)
	}
	// One keeps running at the head while the rest finish.
	head := take()
	for range n/2 - 1 {
		if err := take().Ack(); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 10*time.Second, func() bool { p, _ := c.AckStats(); return p == 0 }, "acks behind the running head never sent")
	px.Cut()
	if d := take(); d.MessageID != head.MessageID {
		t.Errorf("after the cut %q came back, want only the running %q", d.MessageID, head.MessageID)
	} else if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 10*time.Second, func() bool { p, _ := c.AckStats(); return p == 0 }, "last ack not sent")
	ch := b.Channel()
	brokertest.Eventually(t, 10*time.Second, func() bool {
		qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		return err == nil && qi.Messages == 0
	}, "queue not empty: a coalesced ack was lost")
}
