package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/presence"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

var presenceJob = task.Define[Job]("presence_job")

// Presence is best effort: a worker whose command queue cannot be
// declared (here another connection holds a durable queue of its name)
// still connects and runs its tasks. Before the command queue left the
// worker's topology, the refused declaration failed every connect.
func TestPresenceCannotStopConsuming(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("presence_best_effort")
	ran := make(chan int, 1)
	reg := task.NewRegistry()
	reg.MustRegister(presenceJob.Handler(func(_ context.Context, j Job) error { ran <- j.N; return nil }))
	w, err := worker.New(worker.Config{Conn: warrentest.NewBroker(t).Conn(), Queues: []string{q}, Registry: reg,
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}, PresenceInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cmd := presence.CommandQueue(w.ID())
	b.DeclareQueue(cmd) // durable, no arguments, not the worker's
	b.Track(cmd)
	warrentest.Run(t, w)

	ctx := warrentest.Context(t, 20*time.Second)
	p := warrentest.NewProducer(t, producer.Config{Conn: warrentest.NewBroker(t).Conn(),
		Routes: routing.NewTable().Add(presenceJob.Name(), routing.ToQueue(q))})
	if _, err := producer.Enqueue(ctx, p, presenceJob, Job{N: 7}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-ran:
		if n != 7 {
			t.Errorf("ran job %d, want 7", n)
		}
	case <-ctx.Done():
		t.Fatal("the task did not run while presence could not declare its queue")
	}
}

// A handler may write to its *task.Message (task.FromContext) while
// heartbeats list the task: they read a copy made before it ran, so the
// race detector finds nothing.
func TestPresenceReadsACopyOfTheTask(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	q := b.Queue("presence_race")
	done := make(chan struct{})
	reg := task.NewRegistry()
	reg.MustRegister(presenceJob.Handler(func(ctx context.Context, _ Job) error {
		defer close(done)
		m, _ := task.FromContext(ctx)
		end := time.Now().Add(300 * time.Millisecond)
		for i := 0; time.Now().Before(end); i++ {
			m.ID, m.Task, m.Retries = "rewritten", "rewritten", i
			time.Sleep(time.Millisecond)
		}
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: b.Conn(), Queues: []string{q}, Registry: reg,
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}, PresenceInterval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	ctx := warrentest.Context(t, 20*time.Second)
	p := warrentest.NewProducer(t, producer.Config{Conn: b.Conn(),
		Routes: routing.NewTable().Add(presenceJob.Name(), routing.ToQueue(q))})
	if _, err := producer.Enqueue(ctx, p, presenceJob, Job{N: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the task did not run")
	}
}
