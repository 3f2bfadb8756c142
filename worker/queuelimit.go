package worker

import (
	"fmt"
	"slices"
	"time"

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
	// Rate caps how many of the queue's tasks start per Per over every
	// worker with this limit: an elected worker puts a token in a bucket
	// every Per/Rate (routing.RateQueue), and a task runs only after its
	// lane took one. 0: no rate limit.
	Rate int
	// Per is the period of Rate. Defaults to a second.
	Per time.Duration
	// Burst is how many tokens the bucket keeps while no task takes them:
	// how many tasks may start at once after a quiet spell. Defaults to 1,
	// an even pace.
	Burst int
}

func (l Limit) per() time.Duration {
	if l.Per <= 0 {
		return time.Second
	}
	return l.Per
}

func (l Limit) burst() int {
	if l.Burst <= 0 {
		return 1
	}
	return l.Burst
}

// fleet reports whether l is enforced over the fleet, through the broker.
func (l Limit) fleet() bool { return l.Concurrency > 0 || l.Rate > 0 }

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
		case l.Rate < 0 || l.Per < 0 || l.Burst < 0:
			return fmt.Errorf("worker: Limit for queue %q: Rate, Per and Burst must not be negative", l.Queue)
		case l.Rate > 0 && l.per()/time.Duration(l.Rate) < time.Millisecond:
			return fmt.Errorf("worker: Limit for queue %q: a rate of %d per %v is above 1,000 per second, more than a bucket of tokens on the broker can pace", l.Queue, l.Rate, l.per())
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
	election := map[string]any{"x-single-active-consumer": true}
	for _, l := range cfg.Limits {
		if l.Rate > 0 {
			t.Queues = append(t.Queues,
				routing.Queue{Name: routing.MinterQueue(l.Queue), Quorum: true, NoDeadLetters: true, Args: election},
				// KeepExisting: a bucket made with another Burst stays as it
				// is, rather than fail every worker's connect; delete it to
				// change the burst.
				// Classic, its tokens transient: a token is worth nothing
				// after a restart, and a quorum queue's write per token
				// would delay the next one's confirm under load.
				routing.Queue{Name: routing.RateQueue(l.Queue), NoDeadLetters: true, KeepExisting: true,
					Args: map[string]any{"x-max-length": int64(l.burst()), "x-overflow": "reject-publish"}})
		}
		for i := range l.Concurrency {
			t.Queues = append(t.Queues, routing.Queue{
				Name: routing.PermitQueue(l.Queue, i), Quorum: true, NoDeadLetters: true,
				Args: election,
			})
		}
	}
	return t
}

// prefetch is the prefetch of queue's consumer: Config.Prefetch, or less
// under a PerWorker limit.
func (w *Worker) prefetch(queue string) int {
	if l, ok := w.limit(queue); ok && l.PerWorker > 0 {
		return min(l.PerWorker, w.cfg.Prefetch)
	}
	return w.cfg.Prefetch
}
