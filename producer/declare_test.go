package producer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// A producer declares the queues of its Topology, so that it can enqueue
// before any worker has started; a worker given the same Topology later
// declares the same queue again without a conflict, even with arguments
// (a quorum queue here), and drains what waited.
func TestProducerDeclaresItsQueuesForALaterWorker(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("declared")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q, Quorum: true}}}
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 3
	for i := range n {
		if _, err := producer.Enqueue(ctx, p, noteTask, Note{Text: string(rune('a' + i))}, producer.WithQueue(q)); err != nil {
			t.Fatalf("enqueue %d to a queue only the producer declared: %v", i, err)
		}
	}
	if got := b.Ready(q); got != n {
		t.Fatalf("%d ready in %s before any worker, want %d", got, q, n)
	}

	var handled atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(noteTask.Handler(func(context.Context, Note) error { handled.Add(1); return nil }))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	brokertest.Eventually(t, 20*time.Second, func() bool { return handled.Load() == n }, "worker handled %d of %d", handled.Load(), n)
	stop()
	if err := <-done; err != nil {
		t.Errorf("worker Run: %v (a conflicting re-declaration would fail here)", err)
	}
}
