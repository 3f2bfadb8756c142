package worker_test

import (
	"context"
	"errors"
	"fmt"
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

// A task routed to 4 shard queues: the producer spreads it by id, one
// worker told the logical name consumes every shard and runs each task
// once, and a failing task retries and dead-letters on its own shard.
func TestShardsSpreadAndConsumeAll(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	s := routing.Shards{Queue: b.Queue("bulk"), Count: 4, Exchange: b.Exchange("jobs")}
	for _, q := range s.Names() {
		b.Track(q)
		b.Track(routing.DeadQueue(q))
	}
	topo := s.Topology()
	if err := topo.Validate(); err != nil {
		t.Fatal(err)
	}
	def := task.Define[Job]("shard_job", task.WithMaxAttempts(2), task.WithBackoff(time.Second, time.Second))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo, Routes: routing.NewTable().AddShards(def.Name(), s)})
	ctx := warrentest.Context(t, 60*time.Second)

	const m = 400
	ts := make([]task.Task, m)
	for i := range ts {
		ts[i] = def.New(Job{N: i})
	}
	ids, err := p.EnqueueBatch(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	failID, err := producer.Enqueue(ctx, p, def, Job{N: -1, Note: "fail"})
	if err != nil {
		t.Fatal(err)
	}
	delayedID := "delayed-" + ids[0]
	if _, err := producer.Enqueue(ctx, p, def, Job{N: -2}, producer.WithID(delayedID), producer.WithDelay(time.Second)); err != nil {
		t.Fatal(err)
	}

	// Before any worker: every task is on the shard its id hashes to, and
	// every shard got its share.
	want := make([]int, s.Count)
	for _, id := range append(ids, failID) {
		want[s.Shard(id)]++
	}
	for i, q := range s.Names() {
		if got := b.Ready(q); got != want[i] {
			t.Errorf("shard %s holds %d tasks, want %d", q, got, want[i])
		}
		if want[i] < m/s.Count/2 {
			t.Errorf("shard %d got %d of %d tasks: not spread", i, want[i], m+1)
		}
	}

	var mu sync.Mutex
	runs := map[string][]string{} // id -> queue of each run
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, j Job) error {
		msg, _ := task.FromContext(ctx)
		mu.Lock()
		runs[msg.ID] = append(runs[msg.ID], msg.Queue)
		mu.Unlock()
		if j.Note == "fail" {
			return errors.New("always fails")
		}
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{s.Queue}, Registry: reg, Topology: topo, Concurrency: 4, Prefetch: 16})
	if err != nil {
		t.Fatal(err)
	}
	stop := warrentest.Run(t, w)
	failShard := s.Name(s.Shard(failID))
	warrentest.Eventually(t, 30*time.Second, func() bool {
		st := w.Stats()
		return st.Succeeded == m+1 && st.Dead == 1
	}, "worker did not finish: %+v", w.Stats())
	stop()

	mu.Lock()
	defer mu.Unlock()
	for _, id := range append(ids, delayedID) {
		shard := s.Name(s.Shard(id))
		if got := runs[id]; len(got) != 1 || got[0] != shard {
			t.Errorf("task %s ran on %v, want once on %s", id, got, shard)
		}
	}
	if got := runs[failID]; fmt.Sprint(got) != fmt.Sprint([]string{failShard, failShard}) {
		t.Errorf("failing task ran on %v, want twice on %s (its retry back on its shard)", got, failShard)
	}
	if len(runs) != m+2 {
		t.Errorf("%d distinct ids ran, want %d", len(runs), m+2)
	}
	for _, q := range s.Names() {
		wantDead := 0
		if q == failShard {
			wantDead = 1
		}
		if got := b.Ready(routing.DeadQueue(q)); got != wantDead {
			t.Errorf("%s holds %d dead letters, want %d", routing.DeadQueue(q), got, wantDead)
		}
	}
	d, ok := b.Get(routing.DeadQueue(failShard))
	if !ok || d.MessageId != failID || d.Headers[task.HeaderQueue] != failShard {
		t.Errorf("dead letter: ok=%v id=%q queue=%v, want id %s from %s", ok, d.MessageId, d.Headers[task.HeaderQueue], failID, failShard)
	}
}

// A worker told a logical name whose shards are invalid refuses to start.
func TestShardsInvalidRefused(t *testing.T) {
	t.Parallel()
	reg := task.NewRegistry()
	_, err := worker.New(worker.Config{Queues: []string{"bulk"}, Registry: reg,
		Topology: routing.Topology{Shards: []routing.Shards{{Queue: "bulk", Count: 0}}}})
	if err == nil {
		t.Fatal("worker.New accepted shards of count 0")
	}
}
