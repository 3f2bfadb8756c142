//go:build fault

package faulttest

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
)

// Two worker processes share a queue; one is SIGKILLed mid-run and not
// restarted. The broker hands its unacked tasks (running and prefetched) to
// the other, so every task is handled; those the killed one was running may
// run twice. Recovery: from the kill until every task the killed process
// had started but not finished was handled by the survivor.
func TestFaultProcessWorkerKilled(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("proc-kill")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	f := newFleet(t, b, q)
	f.args = []string{"-concurrency", "4", "-prefetch", "16"}
	f.env = []string{"WARREN_FAULT_SLEEP=20ms"}
	victim, survivor := f.start(), f.start()
	victim.waitReady(t, 20*time.Second)
	survivor.waitReady(t, 20*time.Second)

	const n = 2000
	fd := newFeeder(t, b.URL, topo, q)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	fed := make(chan struct{})
	go func() { defer close(fed); fd.run(ctx, n, 400) }()

	fd.afterConfirmed(n / 2)
	killedAt := time.Now()
	if _, ok := signalAndWait(t, victim, syscall.SIGKILL, 10*time.Second); !ok {
		t.Fatal("SIGKILLed worker did not die")
	}
	// Tasks the victim started and never finished: the broker must give
	// them to the survivor.
	pid := victim.cmd.Process.Pid
	open := map[int]bool{}
	for _, e := range f.events() {
		if e.pid != pid {
			continue
		}
		switch e.kind {
		case "S":
			open[e.n] = true
		case "D":
			delete(open, e.n)
		}
	}
	<-fed
	if !f.waitHandled(n, 2*time.Minute) {
		t.Error("not every task was handled within 2 minutes")
	}
	var recovery time.Duration
	for _, e := range f.events() {
		if e.kind == "D" && open[e.n] && e.pid != pid {
			if d := e.at.Sub(killedAt); d > recovery {
				recovery = d
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // let late redeliveries count as duplicates
	done := f.done()
	handled, lost, dups := tally(done, n)
	r := procReport{Sent: n, Handled: handled, Lost: lost, Duplicates: dups, EnqueueRetries: fd.retries.Load(),
		Recovery: []time.Duration{recovery}, Elapsed: time.Since(start),
		Extra: fmt.Sprintf("killed worker had %d tasks running; survivor still up: %v", len(open), !exited(survivor))}
	logReport(t, "worker SIGKILL (1 of 2)", r)
	if len(open) == 0 {
		t.Error("the victim was running no task when killed: the test did not hit in-flight work")
	}
	if exited(survivor) {
		t.Error("the surviving worker exited")
	}
}

func exited(p *proc) bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// A worker sent SIGTERM stops taking tasks, lets the running ones finish
// within -shutdown-timeout, leaves the rest in the queue and exits 0. With a
// shutdown timeout shorter than the tasks, it cancels them, requeues them
// and still exits 0 in time.
func TestFaultProcessWorkerSIGTERM(t *testing.T) {
	for _, tc := range []struct {
		name            string
		shutdownTimeout time.Duration
		taskTime        time.Duration
		finishRunning   bool
	}{
		{"in-flight tasks finish", 10 * time.Second, 2 * time.Second, true},
		{"shutdown timeout cuts them", time.Second, 20 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.New(t)
			q := b.Queue("proc-term")
			topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
			f := newFleet(t, b, q)
			f.args = []string{"-concurrency", "4", "-prefetch", "4", "-shutdown-timeout", tc.shutdownTimeout.String()}
			f.env = []string{"WARREN_FAULT_SLEEP=" + tc.taskTime.String()}
			w := f.start()
			w.waitReady(t, 20*time.Second)

			const n = 10
			fd := newFeeder(t, b.URL, topo, q)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for i := 0; i < n; i++ {
				fd.enqueue(ctx, procItem{N: i})
			}
			started := func() map[int]bool {
				m := map[int]bool{}
				for _, e := range f.events() {
					if e.kind == "S" {
						m[e.n] = true
					}
				}
				return m
			}
			brokertest.Eventually(t, 20*time.Second, func() bool { return len(started()) == 4 }, "4 tasks never started")
			took, ok := signalAndWait(t, w, syscall.SIGTERM, tc.shutdownTimeout+10*time.Second)
			if !ok {
				t.Fatalf("worker still running %v after SIGTERM (shutdown timeout %v)", took, tc.shutdownTimeout)
			}
			if code := w.state.ExitCode(); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0", code)
			}
			// The deadline counts from the signal; requeueing and closing
			// take a moment more.
			if limit := tc.shutdownTimeout + 3*time.Second; took > limit {
				t.Errorf("exited %v after SIGTERM, want within %v", took.Round(time.Millisecond), limit)
			}
			inFlight := started()
			done := f.done()
			for i := range inFlight {
				if tc.finishRunning && done[i] != 1 {
					t.Errorf("task %d was running at SIGTERM and finished %d times, want 1", i, done[i])
				}
				if !tc.finishRunning && done[i] != 0 {
					t.Errorf("task %d should have been cut by the shutdown timeout, finished %d times", i, done[i])
				}
			}
			want := n - len(done)
			brokertest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == want },
				"queue holds %d ready tasks after the worker exited, want %d (the unfinished ones)", b.Ready(q), want)
			t.Logf("faulttest: SIGTERM (%s): %d running at the signal, %d finished, %d left in the queue, exit %d after %v (shutdown timeout %v)",
				tc.name, len(inFlight), len(done), want, w.state.ExitCode(), took.Round(time.Millisecond), tc.shutdownTimeout)
		})
	}
}
