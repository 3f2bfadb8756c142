package worker_test

import (
	"context"
	"slices"
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

// runRateLimited runs n tasks through three workers under a fleet-wide
// rate limit with a burst of 2, and returns when each handler started,
// sorted. The burst lets a token minted a moment late, or taken a moment
// late, not cost the next one its place in the bucket; two at once is
// still within a one-second window's 10%.
func runRateLimited(t *testing.T, b *brokertest.Broker, n, rate int) []time.Time {
	t.Helper()
	q := b.Queue("rated")
	for _, name := range []string{routing.RateQueue(q), routing.MinterQueue(q)} {
		b.Track(name)
	}
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	probe := task.Define[int]("rate_probe")
	var mu sync.Mutex
	var starts []time.Time
	for range 3 {
		warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Topology: topo,
			Concurrency: 4, Limits: []worker.Limit{{Queue: q, Rate: rate, Burst: 2}}},
			probe.Handler(func(ctx context.Context, i int) error {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				return nil
			}))
	}
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Topology: topo})
	expect := time.Duration(n/rate) * time.Second
	ctx := warrentest.Context(t, expect+60*time.Second)
	batch := make([]task.Task, n)
	for i := range batch {
		batch[i] = probe.New(i)
	}
	if _, err := p.EnqueueBatch(ctx, batch, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, expect+30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) >= n
	}, "not every task ran")
	mu.Lock()
	defer mu.Unlock()
	out := slices.Clone(starts)
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// checkRate checks starts against rate per second (burst 2): the batch
// took its count over rate within 10%, and no full one-second window from
// the first start holds more than 110% of rate. With strict, none holds
// fewer than 90% either; without, those are counted in the log: the main
// suite runs this beside every other package's tests, on two cores.
func checkRate(t *testing.T, starts []time.Time, rate int, strict bool) {
	t.Helper()
	first, last := starts[0], starts[len(starts)-1]
	took := last.Sub(first)
	want := time.Duration(len(starts)-1) * time.Second / time.Duration(rate)
	var counts []int
	for w := first; w.Add(time.Second).Before(last); w = w.Add(time.Second) {
		c := 0
		for _, s := range starts {
			if !s.Before(w) && s.Before(w.Add(time.Second)) {
				c++
			}
		}
		counts = append(counts, c)
	}
	t.Logf("%d tasks at %d/s: %v from the first start to the last (%v expected); starts per one-second window: %v",
		len(starts), rate, took.Round(time.Millisecond), want, counts)
	if took < want*9/10 || took > want*11/10 {
		t.Errorf("took %v, want %v within 10%%", took, want)
	}
	short := 0
	for i, c := range counts {
		if c > rate*11/10 {
			t.Errorf("window %d started %d tasks: more than 110%% of the rate %d", i, c, rate)
		}
		if c < rate*9/10 {
			short++
			if strict {
				t.Errorf("window %d started %d tasks: fewer than 90%% of the rate %d", i, c, rate)
			}
		}
	}
	t.Logf("%d of %d windows under 90%% of the rate", short, len(counts))
}
