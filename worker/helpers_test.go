package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

// Job is the payload of the test tasks.
type Job struct {
	N    int    `json:"n"`
	Note string `json:"note,omitempty"`
}

// run starts w and returns a function that stops it and waits for Run to
// return; the test fails if the worker does not become ready.
func run(t *testing.T, w *worker.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	brokertest.Eventually(t, 15*time.Second, w.Ready, "worker not ready")
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("worker did not stop within 60s")
		}
	}
	t.Cleanup(stop)
	return stop
}

// newProducer returns a producer on url routing task names straight to
// queue, closed at cleanup.
func newProducer(t *testing.T, url string, topo routing.Topology, routes *routing.Table) *producer.Producer {
	t.Helper()
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: url}, Topology: topo, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startWorker starts a worker of cfg, with a registry of hs unless cfg has
// one, and stops it at cleanup; the test fails if it is not ready.
func startWorker(t *testing.T, cfg worker.Config, hs ...task.Handler) *worker.Worker {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = task.NewRegistry()
		cfg.Registry.MustRegister(hs...)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	return w
}
