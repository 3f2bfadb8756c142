package worker_test

import (
	"context"
	"errors"
	"sync"
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

// A high-priority task enqueued behind 10,000 low ones, while a worker is
// busy with them, runs right after the prefetch window the broker had
// already delivered: the broker orders what is ready, not what a consumer
// holds. The worker's one handler is held on the first task until the
// window is full (Prefetch unacked) and the high task enqueued; after
// that window's Prefetch tasks, the next delivery is the high one.
func TestHighPriorityRunsWithinTheNextPrefetchWindow(t *testing.T) {
	t.Parallel()
	const low, prefetch = 10_000, 50
	b := brokertest.New(t)
	q := b.Queue("prio")
	jobTask := task.Define[Job]("prio_job")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q, MaxPriority: 5}}}
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo,
		Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	ctx := warrentest.Context(t, 60*time.Second)
	batch := make([]task.Task, 1000)
	for sent := 0; sent < low; sent += len(batch) {
		for i := range batch {
			batch[i] = jobTask.New(Job{N: sent + i})
		}
		if _, err := p.EnqueueBatch(ctx, batch); err != nil { // priority 0
			t.Fatal(err)
		}
	}

	var (
		mu      sync.Mutex
		ran     int // tasks run so far
		highPos int // the high task's 1-based place among them
		release = make(chan struct{})
		highRan = make(chan struct{})
	)
	const high = -1
	warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Topology: topo,
		Concurrency: 1, Prefetch: prefetch},
		jobTask.Handler(func(ctx context.Context, j Job) error {
			mu.Lock()
			ran++
			first := ran == 1
			if j.N == high {
				highPos = ran
			}
			mu.Unlock()
			if first {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if j.N == high {
				close(highRan)
			}
			return nil
		}))

	// The window is full once the broker holds back all but Prefetch.
	brokertest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == low-prefetch },
		"ready %d, want %d once the window is delivered", b.Ready(q), low-prefetch)
	if _, err := producer.Enqueue(ctx, p, jobTask, Job{N: high}, producer.WithPriority(5)); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case <-highRan:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the high-priority task did not run within 30 s; %d low ones did", ran)
	}
	mu.Lock()
	defer mu.Unlock()
	if highPos > prefetch+1 {
		t.Errorf("the high-priority task ran in place %d, want at most %d (the window already delivered, then it)", highPos, prefetch+1)
	}
	t.Logf("the high-priority task ran in place %d of %d", highPos, low+1)
}

// A task that fails comes back from the delay levels (quorum queues, which
// on RabbitMQ 3.x keep a priority without ordering by it) with its
// priority, so that it still goes ahead of lower ones in its queue.
func TestRetryKeepsThePriority(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("prio-retry")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q, MaxPriority: 5}}}
	urgent := task.Define[Job]("urgent_job", task.WithPriority(4))

	var (
		mu    sync.Mutex
		seen  []uint8 // the priority of each run
		twice = make(chan struct{})
	)
	warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Topology: topo, Retry: fast},
		urgent.Handler(func(ctx context.Context, j Job) error {
			m, _ := task.FromContext(ctx)
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, m.Priority)
			if len(seen) == 1 {
				return errors.New("first attempt fails")
			}
			if len(seen) == 2 {
				close(twice)
			}
			return nil
		}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo,
		Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, urgent, Job{N: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-twice:
	case <-time.After(15 * time.Second):
		t.Fatal("the retry did not run within 15 s")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != 4 || seen[1] != 4 {
		t.Errorf("priorities of the two runs %v, want [4 4]: the definition's, kept through the delay levels", seen)
	}
}
