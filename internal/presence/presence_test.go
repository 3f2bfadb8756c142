package presence_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/presence"
)

// announcer runs an announcer for a worker of a new id on a connection of
// its own; stop ends it and closes the connection.
func announcer(t *testing.T, url string) (a *presence.Announcer, id string, stop func()) {
	t.Helper()
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: url}, Role: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	id = presence.NewID()
	a = presence.New(presence.Config{ID: id, Sup: sup, Interval: 100 * time.Millisecond,
		Status: func() inspect.Worker { return inspect.Worker{State: inspect.WorkerRunning} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		_ = sup.Close()
	}
	t.Cleanup(stop)
	return a, id, stop
}

// passive declares queue passively on a connection of the test's and
// returns the broker's refusal code, or 0.
func passive(b *brokertest.Broker, queue string) int {
	_, err := b.Channel().QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// The command queue is the worker's connection's own: another connection
// cannot use it, and it is gone once the worker's connection closes.
func TestCommandQueueIsExclusive(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	_, id, stop := announcer(t, b.URL)
	q := presence.CommandQueue(id)
	brokertest.Eventually(t, 10*time.Second, func() bool { return passive(b, q) == amqp.ResourceLocked },
		"command queue %s is not held by the worker's connection", q)
	stop()
	if code := passive(b, q); code != amqp.NotFound {
		t.Errorf("after the worker's connection closed: code %d, want NOT_FOUND (%d)", code, amqp.NotFound)
	}
}
