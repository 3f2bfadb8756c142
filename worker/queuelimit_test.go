package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
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

// A fleet-wide limit of 2 over three workers of 4 handlers each: never
// more than two of the queue's tasks run at once, two do run at once
// (the limit is used, not only kept), more than one worker takes part,
// and every task runs once.
func TestFleetLimit(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("fleet")
	for i := range 2 {
		b.Track(routing.PermitQueue(q, i))
	}
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	probe := task.Define[int]("fleet_probe")
	const n = 24

	var mu sync.Mutex
	running, most := 0, 0
	ran := map[int]int{}      // task -> runs
	byWorker := map[int]int{} // worker -> tasks run
	for wi := range 3 {
		warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Topology: topo,
			Concurrency: 4, Limits: []worker.Limit{{Queue: q, Concurrency: 2}}},
			probe.Handler(func(ctx context.Context, i int) error {
				mu.Lock()
				running++
				most = max(most, running)
				ran[i]++
				byWorker[wi]++
				mu.Unlock()
				time.Sleep(30 * time.Millisecond) // the task's work
				mu.Lock()
				running--
				mu.Unlock()
				return nil
			}))
	}
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo})
	ctx := warrentest.Context(t, 60*time.Second)
	start := time.Now()
	for i := range n {
		if _, err := producer.Enqueue(ctx, p, probe, i, producer.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
	}
	warrentest.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) == n
	}, "not every task ran")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d tasks of 30ms under a fleet limit of 2 in %v; by worker: %v", n, time.Since(start).Round(time.Millisecond), byWorker)
	if most != 2 {
		t.Errorf("most running at once: %d, want 2", most)
	}
	for i, c := range ran {
		if c != 1 {
			t.Errorf("task %d ran %d times", i, c)
		}
	}
	if len(byWorker) < 2 {
		t.Errorf("only %d worker took part: %v", len(byWorker), byWorker)
	}
}

// The connection of the worker that holds a fleet limit's only permit
// dies while its task runs: the broker hands the permit to the other
// worker, which runs the queue's tasks, the cut one's among them again.
func TestFleetLimitPermitPassesWhenItsHolderIsCut(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	q := b.Queue("fleetcut")
	b.Track(routing.PermitQueue(q, 0))
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	probe := task.Define[int]("fleet_cut")
	limits := []worker.Limit{{Queue: q, Concurrency: 1}}

	var mu sync.Mutex
	done := map[int]bool{}
	held, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	handler := func(cut bool) task.Handler {
		return probe.Handler(func(ctx context.Context, i int) error {
			if cut {
				close(held) // the one task it runs: then its connection is cut
				<-release
				return nil
			}
			mu.Lock()
			done[i] = true
			mu.Unlock()
			return nil
		})
	}
	warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: brokertest.WithHost(b.URL, px.Addr())}, Queues: []string{q},
		Topology: topo, Limits: limits, ShutdownTimeout: time.Second}, handler(true))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo})
	ctx := warrentest.Context(t, 60*time.Second)
	for i := range 5 {
		if _, err := producer.Enqueue(ctx, p, probe, i, producer.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
	}
	<-held
	warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q},
		Topology: topo, Limits: limits}, handler(false))
	px.Cut()
	warrentest.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == 5
	}, "the other worker did not run every task after the permit holder was cut: %v", done)
}

// A fleet-wide rate of 20 per second over three workers, 200 tasks: no
// one-second window starts more than 110% of the rate (the guarantee),
// and the batch takes its count over 20 seconds within 10% (the rate is
// used). TestFaultRateLimitWindows runs the 2,000, alone.
func TestFleetRateLimit(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	starts := runRateLimited(t, b, 200, 20)
	checkRate(t, starts, 20, false)
}
