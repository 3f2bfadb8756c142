//go:build fault

package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
)

// poisonN is the payload number of the poison task, apart from 0..n-1.
const poisonN = 1_000_000

// A task that os.Exit()s its worker process every time it runs, among 200
// good ones, on a quorum queue with x-delivery-limit 3, consumed by one
// worker process that is restarted whenever it dies (as Kubernetes
// restarts a pod). Each crash returns the task to the queue and counts a
// delivery; past the limit RabbitMQ dead-letters it to <queue>.dead, and
// the worker runs on. Good tasks that were unacked in the dying process
// (running or prefetched) are counted too; none may be lost: each is
// handled or, if it shared every crash with the poison, dead-lettered.
func TestFaultProcessPoisonQuorum(t *testing.T) {
	const limit = 3
	b := brokertest.New(t)
	q := b.Queue("poison")
	// What testworker declares for WARREN_FAULT_DELIVERY_LIMIT.
	topo := routing.Topology{Queues: []routing.Queue{{Name: q, Quorum: true, DeliveryLimit: limit}}}
	f := newFleet(t, b, q)
	f.args = []string{"-concurrency", "4", "-prefetch", "8"}
	f.env = []string{"WARREN_FAULT_SLEEP=5ms", fmt.Sprintf("WARREN_FAULT_DELIVERY_LIMIT=%d", limit)}
	f.restart = 100 * time.Millisecond
	f.start().waitReady(t, 20*time.Second)

	const n = 200
	fd := newFeeder(t, b.URL, topo, q)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	for i := 0; i < n; i++ {
		if i == n/2 {
			fd.enqueue(ctx, procItem{N: poisonN, Exit: true})
		}
		fd.enqueue(ctx, procItem{N: i})
	}

	// Wait for the poison in the dead letters, and every good task handled
	// or dead-lettered beside it.
	dead := map[int]amqp.Delivery{}
	var deadAt time.Time
	brokertest.Eventually(t, 90*time.Second, func() bool {
		for {
			d, ok := b.Get(routing.DeadQueue(q))
			if !ok {
				break
			}
			var id int
			if _, err := fmt.Sscanf(d.MessageId, "item-%d", &id); err != nil {
				t.Fatalf("dead letter with message id %q", d.MessageId)
			}
			dead[id] = d
			if id == poisonN {
				deadAt = time.Now()
			}
		}
		if deadAt.IsZero() {
			return false
		}
		done := f.done()
		for i := 0; i < n; i++ {
			if _, ok := dead[i]; !ok && done[i] == 0 {
				return false
			}
		}
		return true
	}, "poison task not dead-lettered, or good tasks missing; %d worker restarts", f.Restarts())

	// Settled: no more crashes, and the last worker process keeps running.
	restarts := f.Restarts()
	time.Sleep(2 * time.Second)
	if r := f.Restarts(); r != restarts {
		t.Errorf("worker still crash-looping after the poison was dead-lettered: %d restarts, then %d", restarts, r)
	}
	if restarts < limit || restarts > limit+1 {
		t.Errorf("%d worker restarts; with x-delivery-limit %d want %d or %d (the broker dead-letters on the return past the limit)", restarts, limit, limit, limit+1)
	}
	pd := dead[poisonN]
	reason := xDeathReason(pd)
	if reason != "delivery_limit" {
		t.Errorf("poison dead-lettered with x-death reason %q, want delivery_limit", reason)
	}
	if q0 := xDeathQueue(pd); q0 != q {
		t.Errorf("poison x-death queue %q, want %q", q0, q)
	}
	if got := b.Ready(q); got != 0 {
		t.Errorf("%d tasks still ready in %s", got, q)
	}

	done := f.done()
	handled, lost, dups := tally(done, n)
	collateral := 0
	for i := range dead {
		if i != poisonN {
			collateral++
			if done[i] == 0 {
				handled++ // accounted for: dead-lettered with the poison, never lost
				lost--
			}
		}
	}
	r := procReport{Sent: n + 1, Handled: handled + 1, Lost: lost, Duplicates: dups, EnqueueRetries: fd.retries.Load(),
		Elapsed: time.Since(start),
		Extra: fmt.Sprintf("poison dead-lettered by the broker (x-death reason %q) after %d process crashes; %d good tasks dead-lettered beside it (unacked in every crashed process)",
			reason, restarts, collateral)}
	logReport(t, fmt.Sprintf("poison task, quorum queue, x-delivery-limit %d", limit), r)
}

// The same poison task on a classic queue (warren's default): RabbitMQ has
// no delivery limit there, so it is redelivered to every restarted process
// for ever. This test pins that documented behaviour: the fleet is still
// crash-looping after several seconds.
func TestFaultProcessPoisonClassic(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("poison-classic")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	f := newFleet(t, b, q)
	f.args = []string{"-concurrency", "1", "-prefetch", "1"}
	f.restart = 100 * time.Millisecond
	f.start().waitReady(t, 20*time.Second)
	fd := newFeeder(t, b.URL, topo, q)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fd.enqueue(ctx, procItem{N: poisonN, Exit: true})
	const watch = 6 * time.Second
	time.Sleep(watch)
	r := f.Restarts()
	t.Logf("faulttest: poison task, classic queue: %d worker crashes in %v, still looping; dead letters: %d", r, watch, b.Ready(routing.DeadQueue(q)))
	if r < 5 {
		t.Errorf("only %d restarts in %v: has the classic-queue behaviour changed? update docs/guarantees.md", r, watch)
	}
}

// xDeathReason returns the reason of the first x-death entry.
func xDeathReason(d amqp.Delivery) string {
	s, _ := xDeath(d)["reason"].(string)
	return s
}

// xDeathQueue returns the queue of the first x-death entry.
func xDeathQueue(d amqp.Delivery) string {
	s, _ := xDeath(d)["queue"].(string)
	return s
}

func xDeath(d amqp.Delivery) amqp.Table {
	list, _ := d.Headers["x-death"].([]any)
	if len(list) == 0 {
		return nil
	}
	t, _ := list[0].(amqp.Table)
	return t
}
