//go:build fault

package faulttest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/worker"
)

// rabbitEval evaluates an Erlang expression on the broker node.
func rabbitEval(t *testing.T, expr string) string {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "eval", expr).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl eval %s: %v\n%s", expr, err, out)
	}
	return strings.TrimSpace(string(out))
}

// setRabbitEnv sets the rabbit application's key to value (an Erlang term)
// and restores its value, or its absence, when the test ends, pass or fail.
func setRabbitEnv(t *testing.T, key, value string) {
	t.Helper()
	orig := rabbitEval(t, fmt.Sprintf("application:get_env(rabbit, %s).", key))
	if orig != "undefined" && !strings.HasPrefix(orig, "{ok,") {
		t.Fatalf("application:get_env(rabbit, %s) = %q", key, orig)
	}
	t.Cleanup(func() {
		restore := fmt.Sprintf("case %s of {ok, V} -> application:set_env(rabbit, %s, V); undefined -> application:unset_env(rabbit, %s) end.", orig, key, key)
		out, err := exec.Command("rabbitmqctl", "eval", restore).CombinedOutput()
		if err != nil {
			t.Errorf("restoring rabbit %s to %s: %v\n%s", key, orig, err, out)
		}
	})
	rabbitEval(t, fmt.Sprintf("application:set_env(rabbit, %s, %s).", key, value))
}

// A handler slower than RabbitMQ's consumer_timeout. RabbitMQ 3.10 reads
// consumer_timeout when a channel opens (channels opened before a change
// keep the old value) and checks it on the channel's tick
// (channel_tick_interval, 60s by default: a 3s timeout fires after up to
// 63s). The test sets 3s and a 1s tick, then starts the worker.
//
// One task sleeps 6s among 40 quick ones. Its first run outlives the
// timeout: the broker closes the channel with PRECONDITION_FAILED and
// requeues every delivery unacked on it. The worker logs it, counts it,
// learns 3s from the broker's message and from then on cuts runs a margin
// (here a second) before it, counted from the delivery's arrival: the
// redelivered slow task fails with "cut after 2s" into its
// retry policy (2 attempts) and ends dead-lettered, instead of running and
// timing out for ever. The first run's late ack is dropped as stale.
func TestFaultProcessConsumerTimeout(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("consumer-timeout")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	setRabbitEnv(t, "consumer_timeout", "3000")
	setRabbitEnv(t, "channel_tick_interval", "1000")

	f := newFleet(t, b, q)
	f.args = []string{"-concurrency", "4", "-prefetch", "4"}
	w := f.start()
	w.waitReady(t, 20*time.Second)

	const n, slowN = 40, 2_000_000
	fd := newFeeder(t, b.URL, topo, q)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	fd.enqueue(ctx, procItem{N: slowN, SleepMS: 6000})
	for i := 0; i < n; i++ {
		fd.enqueue(ctx, procItem{N: i, SleepMS: 20})
	}

	var deadAt time.Time
	brokertest.Eventually(t, 90*time.Second, func() bool {
		if deadAt.IsZero() && b.Ready(routing.DeadQueue(q)) > 0 {
			deadAt = time.Now()
		}
		return !deadAt.IsZero() && f.waitHandled(n, 0)
	}, "slow task not dead-lettered or quick tasks not handled")
	d, ok := b.Get(routing.DeadQueue(q))
	if !ok {
		t.Fatal("dead letter vanished")
	}
	if d.MessageId != fmt.Sprintf("item-%d", slowN) {
		t.Fatalf("dead letter %q, want the slow task", d.MessageId)
	}
	reason, _ := d.Headers[worker.HeaderReason].(string)
	lastErr, _ := d.Headers[worker.HeaderError].(string)
	if reason != string(outcome.ReasonExhausted) || !strings.Contains(lastErr, "consumer_timeout") {
		t.Errorf("slow task dead-lettered with reason %q, error %q; want %q and a cut before the consumer_timeout", reason, lastErr, outcome.ReasonExhausted)
	}

	time.Sleep(time.Second) // a late redelivery would show as a duplicate
	if exited(w) {
		t.Fatalf("worker process exited: %v", w.state)
	}
	closes := w.logCount("outlived the broker's consumer_timeout")
	if closes != 1 {
		t.Errorf("the broker closed the consumer channel %d times for its consumer_timeout, want 1: later runs must be cut before it", closes)
	}
	slowRuns := 0
	for _, e := range f.events() {
		if e.kind == "S" && e.n == slowN {
			slowRuns++
		}
	}
	if slowRuns != 3 {
		t.Errorf("slow task ran %d times, want 3 (the run the broker timed out, then 2 attempts cut before the timeout)", slowRuns)
	}
	handled, lost, dups := tally(f.done(), n)
	r := procReport{Sent: n + 1, Handled: handled + 1, Lost: lost, Duplicates: dups, EnqueueRetries: fd.retries.Load(),
		Elapsed: time.Since(start),
		Extra: fmt.Sprintf("consumer_timeout 3s: %d channel closed by the broker (PRECONDITION_FAILED), slow task run %d times, dead-lettered %q (%s) %v after enqueue; worker process never restarted",
			closes, slowRuns, reason, lastErr, deadAt.Sub(start).Round(100*time.Millisecond))}
	logReport(t, "handler slower than consumer_timeout", r)
}
