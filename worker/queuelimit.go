package worker

import (
	"fmt"
	"slices"
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
}

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
