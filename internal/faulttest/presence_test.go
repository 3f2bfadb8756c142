//go:build fault

package faulttest

import (
	"context"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// Worker presence outlives a broker restart: the worker's heartbeats
// resume on its new connection, the watcher that listed it before hears
// them on its own new connection, and a watcher started afterwards finds
// it by a ping through the re-declared control queue.
func TestFaultBrokerRestartPresence(t *testing.T) {
	defer ensureBroker(t)
	b := brokertest.New(t)
	q := b.Queue("presence")
	noop := task.Define[struct{}]("presence_noop")
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q},
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}, PresenceInterval: 300 * time.Millisecond},
		noop.Handler(func(context.Context, struct{}) error { return nil }))
	watcher := func() *inspect.Inspector {
		insp, err := inspect.New(inspect.Config{Conn: conn.Config{URL: b.URL}, NoManagement: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = insp.Close() })
		return insp
	}
	heardSince := func(insp *inspect.Inspector, since time.Time) func() bool {
		return func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, err := insp.Workers(ctx)
			if err != nil {
				t.Logf("Workers: %v", err)
				return false
			}
			for _, s := range ws {
				if s.ID == w.ID() && s.Sent.After(since) {
					return true
				}
			}
			return false
		}
	}
	before := watcher()
	warrentest.Eventually(t, 10*time.Second, heardSince(before, time.Time{}), "worker %s not listed before the restart", w.ID())

	rabbitmqctl(t, "stop_app")
	time.Sleep(time.Second)
	rabbitmqctl(t, "start_app")
	rabbitmqctl(t, "await_startup")
	up := time.Now()

	warrentest.Eventually(t, 30*time.Second, heardSince(before, up), "the watcher from before the restart never heard worker %s again", w.ID())
	after := watcher()
	warrentest.Eventually(t, 30*time.Second, heardSince(after, up), "a watcher started after the restart never found worker %s", w.ID())
}
