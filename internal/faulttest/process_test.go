//go:build fault

package faulttest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// procItem is testworker's payload (package main, so not importable).
type procItem struct {
	N       int  `json:"n"`
	SleepMS int  `json:"sleep_ms,omitempty"`
	Exit    bool `json:"exit,omitempty"`
}

var procTask = task.Define[procItem]("fault_proc_item")

// buildTestWorker compiles ./testworker into the test's temporary directory.
func buildTestWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testworker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/warrenq/warren/internal/faulttest/testworker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build testworker: %v\n%s", err, out)
	}
	return bin
}

// fleet runs testworker processes on one queue (or a comma-separated
// list), as a Deployment would: with restart set, a process that dies is
// started again after a pause.
type fleet struct {
	t       *testing.T
	bin     string
	dir     string
	record  string // the run record every process appends to
	queue   string // -queues
	url     string
	args    []string // extra worker flags
	env     []string // extra environment
	restart time.Duration

	mu       sync.Mutex
	procs    []*proc
	restarts int
	stopped  bool
	wg       sync.WaitGroup
}

// proc is one worker process.
type proc struct {
	cmd    *exec.Cmd
	extra  []string // its own flags, after the fleet's; kept on restart
	log    string   // its stderr (the worker's JSON log)
	exited chan struct{}
	state  *os.ProcessState
}

func newFleet(t *testing.T, b *brokertest.Broker, queue string) *fleet {
	return newFleetAt(t, b.URL, queue)
}

// newFleetAt is newFleet for a broker that is not the shared one (a
// private node): queues is the worker's -queues.
func newFleetAt(t *testing.T, url, queues string) *fleet {
	dir := t.TempDir()
	f := &fleet{t: t, bin: buildTestWorker(t), dir: dir, record: filepath.Join(dir, "record"), queue: queues, url: url}
	t.Cleanup(f.stop)
	return f
}

// start starts one more worker process, with extra flags of its own after
// the fleet's.
func (f *fleet) start(extra ...string) *proc {
	f.t.Helper()
	p, err := f.spawn(extra)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fleet) spawn(extra []string) (*proc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil, errors.New("fleet stopped")
	}
	p := &proc{extra: extra, log: filepath.Join(f.dir, fmt.Sprintf("worker-%d.log", len(f.procs))), exited: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-queues", f.queue, "-broker", f.url, "-metrics-addr", "", "-log-level", "info"}, f.args...)
	p.cmd = exec.Command(f.bin, append(args, extra...)...)
	p.cmd.Env = append(append(os.Environ(), "WARREN_FAULT_RECORD="+f.record), f.env...)
	p.cmd.Stderr = logf
	p.cmd.Stdout = logf
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	f.procs = append(f.procs, p)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = p.cmd.Wait()
		_ = logf.Close()
		p.state = p.cmd.ProcessState
		close(p.exited)
		f.mu.Lock()
		again := f.restart > 0 && !f.stopped
		if again {
			f.restarts++
		}
		f.mu.Unlock()
		if again {
			time.Sleep(f.restart)
			if _, err := f.spawn(p.extra); err != nil && !f.isStopped() {
				f.t.Errorf("restart worker: %v", err)
			}
		}
	}()
	return p, nil
}

func (f *fleet) isStopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopped
}

// Restarts counts the processes that died and were started again.
func (f *fleet) Restarts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restarts
}

// stop kills every process still running and waits for them; on a failed
// test it prints the end of each worker's log.
func (f *fleet) stop() {
	f.mu.Lock()
	f.stopped = true
	procs := append([]*proc(nil), f.procs...)
	f.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Kill()
	}
	f.wg.Wait()
	if f.t.Failed() {
		for i, p := range procs {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 15 {
				lines = lines[len(lines)-15:]
			}
			f.t.Logf("worker %d (%s) log tail:\n%s", i, p.cmd.ProcessState, strings.Join(lines, "\n"))
		}
	}
}

// waitReady waits until the process logs that it consumes its queue.
func (p *proc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	brokertest.Eventually(t, timeout, func() bool {
		b, _ := os.ReadFile(p.log)
		return strings.Contains(string(b), `"msg":"consuming"`)
	}, "worker process %d never started consuming", p.cmd.Process.Pid)
}

// logCount counts the process's log lines containing s.
func (p *proc) logCount(s string) int {
	b, _ := os.ReadFile(p.log)
	return strings.Count(string(b), s)
}

// event is one line of the run record.
type event struct {
	kind string // "S" started, "D" done
	n    int
	pid  int
	at   time.Time
}

// events reads the run record.
func (f *fleet) events() []event {
	fh, err := os.Open(f.record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	var evs []event
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 || (fs[0] != "S" && fs[0] != "D") {
			continue // a chaos line (chaos_test.go), or one being written by a process killed mid-write
		}
		n, _ := strconv.Atoi(fs[1])
		pid, _ := strconv.Atoi(fs[2])
		ns, _ := strconv.ParseInt(fs[3], 10, 64)
		evs = append(evs, event{kind: fs[0], n: n, pid: pid, at: time.Unix(0, ns)})
	}
	return evs
}

// done counts successful runs per task.
func (f *fleet) done() map[int]int {
	m := make(map[int]int)
	for _, e := range f.events() {
		if e.kind == "D" {
			m[e.n]++
		}
	}
	return m
}

// handledStartedAfter returns when the first run that started after t
// succeeded, if one did.
func (f *fleet) handledStartedAfter(t time.Time) (time.Time, bool) {
	type run struct{ n, pid int }
	started := map[run]bool{}
	var first time.Time
	for _, e := range f.events() {
		switch r := (run{e.n, e.pid}); {
		case e.kind == "S" && e.at.After(t):
			started[r] = true
		case e.kind == "D" && started[r] && (first.IsZero() || e.at.Before(first)):
			first = e.at
		}
	}
	return first, !first.IsZero()
}

// procReport is what a process fault test measured.
type procReport struct {
	Sent, Handled, Lost, Duplicates int
	EnqueueRetries                  int64
	Recovery                        []time.Duration
	Elapsed                         time.Duration
	Extra                           string
}

func (r procReport) String() string {
	s := fmt.Sprintf("sent %d, handled %d, lost %d, duplicates %d, enqueue retries %d, recovery %v, in %v",
		r.Sent, r.Handled, r.Lost, r.Duplicates, r.EnqueueRetries, roundAll(r.Recovery), r.Elapsed.Round(time.Millisecond))
	if r.Extra != "" {
		s += "; " + r.Extra
	}
	return s
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

// tally counts lost and duplicated tasks among ids 0..n-1.
func tally(done map[int]int, n int) (handled, lost, dups int) {
	for i := 0; i < n; i++ {
		switch c := done[i]; {
		case c == 0:
			lost++
		default:
			handled++
			dups += c - 1
		}
	}
	return
}

// waitHandled waits until every id in 0..n-1 has a successful run; with
// a zero timeout it checks once.
func (f *fleet) waitHandled(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if _, lost, _ := tally(f.done(), n); lost == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// feeder enqueues procTask items with ids item-<n>, retrying failed
// enqueues with the same id as a careful caller does.
type feeder struct {
	t         *testing.T
	p         *producer.Producer
	confirmed atomic.Int64
	retries   atomic.Int64
}

func newFeeder(t *testing.T, url string, topo routing.Topology, queue string) *feeder {
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: url, Heartbeat: 2 * time.Second},
		Topology: topo,
		Routes:   routing.NewTable().Add(procTask.Name(), routing.ToQueue(queue))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &feeder{t: t, p: p}
}

// enqueue sends one item, retrying until ctx ends.
func (fd *feeder) enqueue(ctx context.Context, it procItem) {
	for {
		_, err := producer.Enqueue(ctx, fd.p, procTask, it, producer.WithID(fmt.Sprintf("item-%d", it.N)))
		if err == nil {
			fd.confirmed.Add(1)
			return
		}
		if ctx.Err() != nil {
			fd.t.Errorf("task %d never confirmed: %v", it.N, err)
			return
		}
		fd.retries.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
}

// run enqueues items 0..n-1 at rate per second with 8 publishers.
func (fd *feeder) run(ctx context.Context, n, rate int) {
	next := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fd.enqueue(ctx, procItem{N: i})
			}
		}()
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		next <- i
	}
	close(next)
	wg.Wait()
}

// afterConfirmed waits until at least k tasks were confirmed.
func (fd *feeder) afterConfirmed(k int64) {
	for fd.confirmed.Load() < k {
		time.Sleep(5 * time.Millisecond)
	}
}

// logReport logs r in the form docs/guarantees.md quotes and fails the
// test if a task was lost.
func logReport(t *testing.T, name string, r procReport) {
	t.Helper()
	t.Logf("faulttest: %s: %v", name, r)
	if r.Lost != 0 || r.Handled != r.Sent {
		t.Errorf("%s: %d of %d tasks lost", name, r.Lost, r.Sent)
	}
}

// signalAndWait sends sig to p and waits up to timeout for it to exit.
func signalAndWait(t *testing.T, p *proc, sig syscall.Signal, timeout time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.exited:
		return time.Since(start), true
	case <-time.After(timeout):
		return time.Since(start), false
	}
}
