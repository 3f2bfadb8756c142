package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/routing"
)

// The spread phases (issue 15): one classic queue takes 10-13k persistent
// publishes/s whatever the client does, so bulk work is spread over N
// queues. warren's side is routing.Shards: the producer hashes each task
// id to a shard (Channels = max(2, N) confirm channels) from -window
// times N goroutines unless -producers says otherwise, one worker
// consumes the logical name. The raw side publishes n/N messages to each
// queue from a confirm channel of its own (each with the -window, so both
// keep -window times N publishes in flight), and
// drains each queue with its own consumer of -concurrency/N goroutines,
// all at once; its drain rate is n over the slowest queue's drain.

// runSpread measures enqueue and drain over each number of queues in
// counts, for each classic queue version in versions, and prints one table.
// With autoProducers, warren enqueues from p.Window goroutines per queue.
func runSpread(ctx context.Context, p params, counts, versions string, autoProducers bool) error {
	ns, err := ints(counts)
	if err != nil {
		return fmt.Errorf("-spread: %w", err)
	}
	vs, err := ints(versions)
	if err != nil {
		return fmt.Errorf("-queue-versions: %w", err)
	}
	if p.Quorum {
		vs = []int{0} // quorum queues have no classic version
	}
	producers := fmt.Sprint(p.Producers)
	if autoProducers {
		producers = fmt.Sprintf("%d per queue", p.Window)
	}
	fmt.Printf("warren bench, spread: n=%d payload=%dB concurrency=%d prefetch=%d producers=%s (raw window %d per queue) rounds=%d raw=%s\n\n",
		p.N, p.Payload, p.Concurrency, p.Prefetch, producers, p.Window, p.Rounds, strings.Join(p.Raw, ","))
	var all []row
	for _, v := range vs {
		for _, n := range ns {
			q := p
			q.Shards, q.QueueVersion = n, v
			if autoProducers {
				q.Producers = p.Window * n
			}
			kind := fmt.Sprintf("v%d", v)
			if p.Quorum {
				kind = "quorum"
			}
			rows, err := runRounds(ctx, q, false)
			if err != nil {
				return fmt.Errorf("%d queues, %s: %w", n, kind, err)
			}
			for _, r := range rows {
				r.phase = fmt.Sprintf("%s, %d queue(s) %s", r.phase, n, kind)
				all = append(all, r)
			}
		}
	}
	printRows(all)
	return nil
}

func ints(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// shardsOf is the spread phases' logical queue.
func shardsOf(p params) routing.Shards {
	return routing.Shards{Queue: p.Queue, Count: p.Shards, Exchange: p.Exchange, Args: classicArgs(p), Quorum: p.Quorum}
}

// benchQueues are the queues a phase uses: the spread's shards, or the one
// queue.
func benchQueues(p params) []string {
	if p.Shards > 0 {
		return shardsOf(p).Names()
	}
	return []string{p.Queue}
}

// keyOf is the routing key that reaches q: its name for a shard, as
// routing.Shards binds it.
func keyOf(p params, q string) string {
	if p.Shards > 0 {
		return q
	}
	return "bench"
}

// queueArgs are the x-arguments of queue q, as warren's side declares it:
// quorum with -quorum (each with its own dead-letter queue), else the
// spread's classic version, else none.
func queueArgs(p params, q string) map[string]any {
	if p.Quorum {
		return routing.Queue{Name: q, Quorum: true}.Arguments()
	}
	return classicArgs(p)
}

// classicArgs are the spread's classic queue arguments: x-queue-version
// where -queue-versions names one.
func classicArgs(p params) map[string]any {
	if p.Shards > 0 && p.QueueVersion > 0 && !p.Quorum {
		return map[string]any{routing.QueueVersionArg: p.QueueVersion}
	}
	return nil
}

// rawPublishSpread publishes n messages: to the one queue, or n/N to each
// of the N queues from a channel each, at once.
func rawPublishSpread(ctx context.Context, conn *amqp.Connection, p params, n int) error {
	qs := benchQueues(p)
	if p.Shards == 0 {
		return rawPublish(ctx, conn, p, "bench", n, 0)
	}
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rawPublish(ctx, conn, p, keyOf(p, q), n/len(qs)+btoi(i < n%len(qs)), 0)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rawDrainSpread drains every shard at once, each with its own consumer,
// and returns the total over the time the slowest took.
func rawDrainSpread(ctx context.Context, p params, variant string) (result, error) {
	qs := benchQueues(p)
	counts := make([]int, len(qs))
	if err := withChannel(p, func(ch *amqp.Channel) error {
		for i, q := range qs {
			st, err := ch.QueueDeclarePassive(q, true, false, false, false, amqp.Table(queueArgs(p, q)))
			if err != nil {
				return err
			}
			counts[i] = st.Messages
		}
		return nil
	}); err != nil {
		return result{}, err
	}
	took := make([]time.Duration, len(qs))
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		if counts[i] == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pq := p
			pq.Queue, pq.Concurrency = q, max(1, p.Concurrency/len(qs))
			r, _, err := rawConsume(ctx, pq, variant, counts[i], nil)
			errs[i] = err
			if r.Rate > 0 {
				took[i] = time.Duration(float64(counts[i]) / r.Rate * float64(time.Second))
			}
		}()
	}
	wg.Wait()
	total, slowest := 0, time.Duration(0)
	for i := range qs {
		if errs[i] != nil {
			return result{}, errs[i]
		}
		total += counts[i]
		slowest = max(slowest, took[i])
	}
	return result{Rate: float64(total) / slowest.Seconds()}, nil
}
