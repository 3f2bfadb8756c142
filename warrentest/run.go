package warrentest

import (
	"context"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

// ReadyTimeout bounds how long Run and StartWorker wait for a worker to
// consume every queue, and StopTimeout how long a stop waits for Run to
// return: past either the test fails rather than hangs.
const (
	ReadyTimeout = 15 * time.Second
	StopTimeout  = 60 * time.Second
)

// Context returns a context that ends after d or when t ends, whichever
// comes first: the bound for one step of a test.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually waits until cond holds, checking it every 10ms, and fails t
// with msg (formatted with args) if it still does not after timeout. Wait
// on a condition like this rather than sleeping for a guess.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	testenv.Eventually(t, timeout, cond, msg, args...)
}

// NewProducer returns a producer of cfg, closed when t ends. An empty
// cfg.Conn.URL means the test broker (URL).
func NewProducer(t testing.TB, cfg producer.Config) *producer.Producer {
	t.Helper()
	if cfg.Conn.URL == "" {
		cfg.Conn.URL = URL(t)
	}
	p, err := producer.New(cfg)
	if err != nil {
		t.Fatalf("warrentest: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Run runs w until t ends and returns a function that stops it earlier,
// gracefully, and waits for Run to return (calling it again does
// nothing). t fails if w is not consuming every queue within ReadyTimeout,
// if Run returns an error, or if it does not return within StopTimeout.
func Run(t testing.TB, w *worker.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
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
				t.Errorf("warrentest: worker Run: %v", err)
			}
		case <-time.After(StopTimeout):
			t.Errorf("warrentest: worker did not stop within %v", StopTimeout)
		}
	}
	t.Cleanup(stop)
	Eventually(t, ReadyTimeout, w.Ready, "warrentest: worker not consuming its queues")
	return stop
}

// StartWorker starts a worker of cfg and stops it when t ends. Without
// cfg.Registry the worker serves handlers; an empty cfg.Conn.URL means the
// test broker (URL). It returns once the worker consumes every queue.
func StartWorker(t testing.TB, cfg worker.Config, handlers ...task.Handler) *worker.Worker {
	t.Helper()
	if cfg.Conn.URL == "" {
		cfg.Conn.URL = URL(t)
	}
	if cfg.Registry == nil {
		cfg.Registry = task.NewRegistry()
		if err := cfg.Registry.Register(handlers...); err != nil {
			t.Fatalf("warrentest: %v", err)
		}
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatalf("warrentest: %v", err)
	}
	Run(t, w)
	return w
}
