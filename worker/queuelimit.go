package worker

import (
	"fmt"
	"slices"

	"github.com/warrenq/warren/routing"
)

// Limit holds back the tasks of one queue. A limit applies to every task
// on its queue, so give a task type that needs one a queue of its own
// (a route to it in the producers' routing.Table): the tasks waiting on
// the limit then hold up nothing else.
type Limit struct {
	// Queue is the work queue the limit applies to: one of Config.Queues,
	// not the logical name of sharded queues.
	Queue string
	// PerWorker caps the queue's tasks running at once in this worker.
	// The worker asks the broker for no more than that many unacked
	// deliveries of the queue (its prefetch), so the tasks beyond it wait
	// in the queue, where other workers can take them, not in this
	// worker's prefetch window. 0: only Config.Concurrency caps them.
	PerWorker int
	// Concurrency caps the queue's tasks running at once over every
	// worker that consumes it with this limit: fleet-wide, through
	// permits the broker hands from worker to worker (routing.PermitQueue;
	// docs/decisions.md). Such a queue is consumed one task per permit
	// with basic.get, not through a prefetch window. At most
	// MaxConcurrencyLimit; 0: no fleet-wide cap. Workers of one queue
	// must agree on it: each uses the permits it knows of.
	Concurrency int
}

// MaxConcurrencyLimit bounds Limit.Concurrency: each permit is a queue
// on the broker and a channel in every worker.
const MaxConcurrencyLimit = 256

// checkLimits validates cfg.Limits against the queues cfg consumes, after
// shards are expanded.
func checkLimits(cfg Config) error {
	seen := make(map[string]bool, len(cfg.Limits))
	for _, l := range cfg.Limits {
		switch {
		case l.Queue == "":
			return fmt.Errorf("worker: a Limit names no queue")
		case seen[l.Queue]:
			return fmt.Errorf("worker: two Limits for queue %q", l.Queue)
		case l.PerWorker < 0:
			return fmt.Errorf("worker: Limit for queue %q: PerWorker %d is negative", l.Queue, l.PerWorker)
		case l.Concurrency < 0 || l.Concurrency > MaxConcurrencyLimit:
			return fmt.Errorf("worker: Limit for queue %q: Concurrency %d is outside 0-%d", l.Queue, l.Concurrency, MaxConcurrencyLimit)
		case !slices.Contains(cfg.Queues, l.Queue):
			if len(cfg.Topology.Expand([]string{l.Queue})) > 1 {
				return fmt.Errorf("worker: Limit for %q names sharded queues: name each shard queue (%s.0, ...) that needs one", l.Queue, l.Queue)
			}
			return fmt.Errorf("worker: Limit for queue %q, which the worker does not consume (Config.Queues)", l.Queue)
		}
		seen[l.Queue] = true
	}
	return nil
}

// limit returns the Limit on queue, if any.
func (w *Worker) limit(queue string) (Limit, bool) {
	for _, l := range w.cfg.Limits {
		if l.Queue == queue {
			return l, true
		}
	}
	return Limit{}, false
}

// permitTopology returns the permit queues of cfg's fleet-wide limits.
func permitTopology(cfg Config) routing.Topology {
	var t routing.Topology
	for _, l := range cfg.Limits {
		for i := range l.Concurrency {
			t.Queues = append(t.Queues, routing.Queue{
				Name: routing.PermitQueue(l.Queue, i), Quorum: true, NoDeadLetters: true,
				Args: map[string]any{"x-single-active-consumer": true},
			})
		}
	}
	return t
}

// prefetch is the prefetch of queue's consumer: Config.Prefetch, or less
// under a PerWorker limit.
func (w *Worker) prefetch(queue string) int {
	for _, l := range w.cfg.Limits {
		if l.Queue == queue && l.PerWorker > 0 {
			return min(l.PerWorker, w.cfg.Prefetch)
		}
	}
	return w.cfg.Prefetch
}
