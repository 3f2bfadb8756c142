package presence_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/presence"
	"github.com/warrenq/warren/routing"
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
	// The broker deletes it just after the connection closed.
	brokertest.Eventually(t, 5*time.Second, func() bool { return passive(b, q) == amqp.NotFound },
		"command queue %s outlived the worker's connection", q)
}

// ping publishes a ping with replyTo to the control exchange.
func ping(b *brokertest.Broker, replyTo string) {
	b.Publish(routing.ControlExchange, "", amqp.Publishing{ContentType: "application/json",
		Body: []byte(`{"op":"ping"}`), ReplyTo: replyTo, DeliveryMode: amqp.Transient})
}

// watchQueue declares a watcher's queue for the test and returns its name.
func watchQueue(t *testing.T, b *brokertest.Broker) string {
	t.Helper()
	q := routing.WatchQueuePrefix + uuid.NewString()
	b.DeclareQueue(q)
	b.Track(q)
	return q
}

// answered waits for the status of worker id in queue q.
func answered(t *testing.T, b *brokertest.Broker, q, id string) inspect.Worker {
	t.Helper()
	var got inspect.Worker
	brokertest.Eventually(t, 10*time.Second, func() bool {
		for {
			d, ok := b.Get(q)
			if !ok {
				return false
			}
			var s inspect.Worker
			if json.Unmarshal(d.Body, &s) == nil && s.ID == id {
				got = s
				return true
			}
		}
	}, "worker %s did not answer the ping in %s", id, q)
	return got
}

// A ping is answered only to a watcher's queue: one whose reply_to names
// a work queue is ignored, so that it cannot put statuses among tasks.
func TestPingAnswersOnlyWatchers(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	a, id, _ := announcer(t, b.URL)
	brokertest.Eventually(t, 10*time.Second, a.Declared, "the command queue was not declared")
	work := b.Queue("work")
	b.DeclareQueue(work)
	watch := watchQueue(t, b)

	ping(b, work)
	ping(b, watch) // answered after the first, which was ignored by then
	if s := answered(t, b, watch, id); s.State != inspect.WorkerRunning {
		t.Errorf("answer %+v", s)
	}
	// Only this announcer's answer counts: workers of other programs on
	// the shared broker (older versions among them) get the pings too.
	for {
		d, ok := b.Get(work)
		if !ok {
			break
		}
		var s inspect.Worker
		if json.Unmarshal(d.Body, &s) == nil && s.ID == id {
			t.Errorf("the worker answered into the work queue: %s", d.Body)
		}
	}
}

func TestReplyAllowed(t *testing.T) {
	for _, tc := range []struct {
		replyTo string
		want    bool
	}{
		{"warren.watch.0c6d0c5e-3f7b-4c6e-9e40-6e0c9b7f0a11", true},
		{"warren.watch.x", true},
		{"amq.rabbitmq.reply-to", true},
		{"amq.rabbitmq.reply-to.g1h2AA5yZXBseUAyNzA5NzY1MwAAQOYAAAAAZC9Lmg==.5vFE8ZMY6hXrgjJA5SSiWg==", true},
		{"", false},
		{"warren.watch.", false},
		{"video", false},
		{"video.dead", false},
		{"warren.worker.host/1/abc", false},
		{"warren.delay.3", false},
		{"Warren.watch.x", false},
	} {
		if got := presence.ReplyAllowed(tc.replyTo); got != tc.want {
			t.Errorf("ReplyAllowed(%q) = %v, want %v", tc.replyTo, got, tc.want)
		}
	}
}

// A worker's id says where it runs and never repeats; its command queue is
// named after it, under warren's prefix.
func TestIDAndCommandQueue(t *testing.T) {
	host, _ := os.Hostname()
	id, other := presence.NewID(), presence.NewID()
	parts := strings.Split(id, "/")
	if len(parts) != 3 || parts[0] != host || parts[1] != strconv.Itoa(os.Getpid()) || len(parts[2]) != 8 {
		t.Errorf("NewID() = %q, want %s/%d/<8 characters>", id, host, os.Getpid())
	}
	if id == other {
		t.Errorf("NewID() twice = %q", id)
	}
	if q := presence.CommandQueue(id); q != "warren.worker."+id || !strings.HasPrefix(q, routing.WorkerQueuePrefix) {
		t.Errorf("CommandQueue(%q) = %q", id, q)
	}
	if presence.ReplyAllowed(presence.CommandQueue(id)) {
		t.Error("a worker answers a ping into another worker's command queue")
	}
	topo := presence.Topology(id)
	if err := topo.Validate(); err != nil {
		t.Fatal(err)
	}
	if q, ok := topo.Queue(presence.CommandQueue(id)); !ok || !q.Exclusive {
		t.Errorf("command queue in the topology: %+v, %v; want it exclusive", q, ok)
	}
}

// Version is warren's module version in the binary: in its own tests,
// the main module's, "(devel)" or a pseudo-version, never empty.
func TestVersion(t *testing.T) {
	v := presence.Version()
	if v == "" || v == "unknown" {
		t.Errorf("Version() = %q", v)
	}
}
