package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
)

// After its channel dies, a delivery is not Live and its Ack is dropped
// with ErrStaleDelivery: the new channel numbers deliveries from 1 again,
// and the same tag there names another message, which must stay unacked.
func TestStaleDeliveryIsNotAcked(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	q := b.Queue("stale")
	b.DeclareQueue(q)
	sup, err := broker.New(broker.Config{URL: brokertest.WithHost(b.URL, px.Addr()), Role: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *broker.Delivery)
	c := sup.NewConsumer(q, 1, out)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	take := func() *broker.Delivery {
		t.Helper()
		select {
		case d := <-out:
			return d
		case <-time.After(15 * time.Second):
			t.Fatal("no delivery")
			return nil
		}
	}

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
