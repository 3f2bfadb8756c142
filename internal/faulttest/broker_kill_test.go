//go:build fault

package faulttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
)

// closeInheritedFDs marks every descriptor this process inherited (beyond
// stdin, stdout and stderr) close-on-exec. A broker node started from the
// test would otherwise keep them for its whole life: run under
// `flock -x /tmp/warren-broker.lock go test`, the lock's descriptor reaches
// the test binary, and a rabbitmq-server started here would hold the lock
// until the node stops, blocking everyone else's tests.
func closeInheritedFDs(t *testing.T) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Logf("listing /proc/self/fd: %v", err)
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// ensureBroker brings the broker back whatever state a failed test left it
// in (killed, application stopped, booting): it is shared, and the next
// test, or the next person, needs it up.
func ensureBroker(t *testing.T) {
	closeInheritedFDs(t)
	out, err := exec.Command("../../scripts/ensure-rabbitmq.sh").CombinedOutput()
	if err != nil {
		t.Errorf("restoring the broker: %v\n%s", err, out)
	}
}

// brokerPID is the OS pid of the rabbit node's Erlang VM (beam.smp), asked
// of the node itself so that no other Erlang program is hit.
func brokerPID(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "eval", "os:getpid().").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl eval os:getpid(): %v\n%s", err, out)
	}
	pid, err := strconv.Atoi(strings.Trim(strings.TrimSpace(string(out)), `"`))
	if err != nil {
		t.Fatalf("broker pid from %q: %v", out, err)
	}
	return pid
}

// startBroker runs rabbitmq-server -detached and waits for the node to
// finish booting.
func startBroker(t *testing.T) {
	t.Helper()
	closeInheritedFDs(t)
	if out, err := exec.Command("rabbitmq-server", "-detached").CombinedOutput(); err != nil {
		t.Logf("rabbitmq-server -detached: %v\n%s (waiting anyway)", err, out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "rabbitmqctl", "-q", "await_startup").CombinedOutput()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not up 90s after rabbitmq-server -detached: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// RabbitMQ's Erlang VM is killed with SIGKILL while 3000 persistent tasks
// flow to a durable queue consumed by two worker processes, then started
// again with rabbitmq-server -detached. Every confirmed task survives on
// disk; producer and workers reconnect by themselves.
func TestFaultBrokerKilledHard(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("broker-kill")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	t.Cleanup(func() { ensureBroker(t) }) // registered last: runs before the queues' cleanup
	f := newFleet(t, b, q)
	f.args = []string{"-concurrency", "8", "-prefetch", "32"}
	f.env = []string{"WARREN_FAULT_SLEEP=2ms"}
	w1, w2 := f.start(), f.start()
	w1.waitReady(t, 20*time.Second)
	w2.waitReady(t, 20*time.Second)

	const n = 3000
	fd := newFeeder(t, b.URL, topo, q)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	fed := make(chan struct{})
	go func() { defer close(fed); fd.run(ctx, n, 200) }()

	fd.afterConfirmed(n / 2)
	pid := brokerPID(t)
	killedAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	time.Sleep(time.Second)
	startBroker(t)
	upAt := time.Now()
	// Recovery: from the kill until a task delivered by the new broker was
	// handled. The new node is started a second after the kill, so a run
	// that started later than that had to come from it.
	var recovery time.Duration
	brokertest.Eventually(t, 2*time.Minute, func() bool {
		at, ok := f.handledStartedAfter(killedAt.Add(time.Second))
		recovery = at.Sub(killedAt)
		return ok
	}, "no task handled after the broker came back")

	<-fed
	if !f.waitHandled(n, 2*time.Minute) {
		t.Error("not every task was handled within 2 minutes of the end of the feed")
	}
	time.Sleep(500 * time.Millisecond)
	handled, lost, dups := tally(f.done(), n)
	r := procReport{Sent: n, Handled: handled, Lost: lost, Duplicates: dups, EnqueueRetries: fd.retries.Load(),
		Recovery: []time.Duration{recovery}, Elapsed: time.Since(start),
		Extra: fmt.Sprintf("broker down %v (kill -9 to await_startup done), worker processes restarted 0",
			upAt.Sub(killedAt).Round(100*time.Millisecond))}
	logReport(t, "kill -9 beam.smp + rabbitmq-server -detached", r)
	if exited(w1) || exited(w2) {
		t.Error("a worker process exited when the broker died; it must reconnect instead")
	}
}
