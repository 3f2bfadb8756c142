package worker_test

import (
	"context"
	"strings"
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

// A PerWorker limit of 2 on one queue: two of its tasks run, the other
// four wait in the queue (not in the worker's prefetch window), while the
// other queue's six tasks run beside them on the free handlers; released,
// every task runs, and the limited queue never had more than two running.
func TestPerWorkerLimit(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	limited, free := b.Queue("limited"), b.Queue("free")
	topo := routing.Topology{Queues: []routing.Queue{{Name: limited}, {Name: free}}}
	probe := task.Define[struct{}]("limit_probe")

	var mu sync.Mutex
	running, most, done := map[string]int{}, map[string]int{}, map[string]int{}
	release := make(chan struct{})
	warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{limited, free}, Topology: topo,
		Concurrency: 10, Limits: []worker.Limit{{Queue: limited, PerWorker: 2}}},
		probe.Handler(func(ctx context.Context, _ struct{}) error {
			m, _ := task.FromContext(ctx)
			q := m.Queue
			mu.Lock()
			running[q]++
			most[q] = max(most[q], running[q])
			mu.Unlock()
			<-release
			mu.Lock()
			running[q]--
			done[q]++
			mu.Unlock()
			return nil
		}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo})
	ctx := warrentest.Context(t, 30*time.Second)
	for _, q := range []string{limited, free} {
		for range 6 {
			if _, err := producer.Enqueue(ctx, p, probe, struct{}{}, producer.WithQueue(q)); err != nil {
				t.Fatal(err)
			}
		}
	}
	state := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return running[limited], running[free], b.Ready(limited)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool {
		l, f, ready := state()
		return l == 2 && f == 6 && ready == 4
	}, "want 2 limited running, 6 free running, 4 limited waiting in the queue")
	close(release)
	warrentest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return done[limited] == 6 && done[free] == 6
	}, "not every task ran")
	if most[limited] != 2 || most[free] != 6 {
		t.Errorf("most running at once: limited %d (want 2), free %d (want 6)", most[limited], most[free])
	}
}

// Limits name queues the worker consumes, once each, with no negative cap.
func TestLimitsChecked(t *testing.T) {
	shards := routing.Shards{Queue: "bulk", Count: 2}
	reg := task.NewRegistry()
	for _, c := range []struct {
		limits []worker.Limit
		want   string
	}{
		{[]worker.Limit{{PerWorker: 1}}, "names no queue"},
		{[]worker.Limit{{Queue: "a", PerWorker: 1}, {Queue: "a", PerWorker: 2}}, "two Limits"},
		{[]worker.Limit{{Queue: "a", PerWorker: -1}}, "negative"},
		{[]worker.Limit{{Queue: "other", PerWorker: 1}}, "does not consume"},
		{[]worker.Limit{{Queue: "bulk", PerWorker: 1}}, "sharded"},
	} {
		_, err := worker.New(worker.Config{Queues: []string{"a", "bulk"}, Registry: reg, Topology: shards.Topology(), Limits: c.limits})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Limits %+v: %v, want an error saying %q", c.limits, err, c.want)
		}
	}
}
