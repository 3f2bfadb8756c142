// Command testworker is the worker process that the fault suite starts,
// kills and restarts: a real warren worker, built by runner.Main from the
// worker contract's flags, whose one task records every run in a file so
// that the suite can check that each task id was handled at least once.
//
// Environment (all optional):
//
//	WARREN_FAULT_RECORD          file to append "S <n> <pid> <unix ns>" when a run
//	                             starts and "D <n> <pid> <unix ns>" when it
//	                             succeeds (O_APPEND: lines from several processes
//	                             never interleave)
//	WARREN_FAULT_SLEEP           how long every run takes (a Go duration)
//	WARREN_FAULT_DELIVERY_LIMIT  declare the queues quorum with this
//	                             x-delivery-limit, dead-lettered by the broker
//	                             to <queue>.dead past it
//
// A task's payload adds per-task behaviour: sleep_ms makes that run longer
// (the context still cuts it), exit makes it os.Exit(3) the whole process, a
// poison task no worker survives.
//
// A second task, fault_chaos_item (ChaosTask), follows a plan given in its
// payload, one step per attempt, so that every run of the same attempt of
// a task behaves the same, whichever process runs it and however often the
// broker redelivers it; it records "B" when a run begins and "E" when it
// ends (see chaos.go).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
)

// Item is the payload the fault suite enqueues.
type Item struct {
	N       int  `json:"n"`
	SleepMS int  `json:"sleep_ms,omitempty"`
	Exit    bool `json:"exit,omitempty"`
}

// ItemTask is retried once, quickly: a run that fails (a slow run cut by its
// deadline) is dead-lettered on its second failure, within seconds.
var ItemTask = task.Define[Item]("fault_proc_item", task.WithMaxAttempts(2), task.WithBackoff(time.Second, time.Second))

// TickTask is the scheduler test's periodic task: its handler records the
// fire it ran.
var TickTask = task.Define[struct{}]("fault_tick")

// ExitCodePoison is the exit code of a process killed by a poison task.
const ExitCodePoison = 3

func main() {
	rec, err := newRecorder(os.Getenv("WARREN_FAULT_RECORD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(1)
	}
	var base time.Duration
	if s := os.Getenv("WARREN_FAULT_SLEEP"); s != "" {
		if base, err = time.ParseDuration(s); err != nil {
			fmt.Fprintln(os.Stderr, "testworker: WARREN_FAULT_SLEEP:", err)
			os.Exit(1)
		}
	}
	topo, err := topology()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(1)
	}
	reg := task.NewRegistry()
	reg.MustRegister(ChaosTask.Handler(rec.chaos))
	reg.MustRegister(ItemTask.Handler(func(ctx context.Context, it Item) error {
		rec.line("S", it.N)
		if it.Exit {
			os.Exit(ExitCodePoison)
		}
		d := base + time.Duration(it.SleepMS)*time.Millisecond
		if d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		rec.line("D", it.N)
		return nil
	}))
	reg.MustRegister(TickTask.Handler(func(ctx context.Context, _ struct{}) error {
		// "T <fire-at µs> <id> <redelivered 0|1> <pid> <unix ns>": a fire
		// published twice arrives twice unredelivered; a redelivery after
		// a killed worker has redelivered set.
		m, _ := task.FromContext(ctx)
		at, _ := m.Headers["x-warren-fire-at"].(int64)
		redelivered := 0
		if m.Redelivered {
			redelivered = 1
		}
		rec.write(fmt.Sprintf("T %d %s %d %d %d\n", at, m.ID, redelivered, rec.pid, time.Now().UnixNano()))
		return nil
	}))
	os.Exit(runner.Main(reg, topo))
}

// topology declares the -queues quorum with a delivery limit when asked.
func topology() (routing.Topology, error) {
	s := os.Getenv("WARREN_FAULT_DELIVERY_LIMIT")
	if s == "" {
		return routing.Topology{}, nil
	}
	limit, err := strconv.Atoi(s)
	if err != nil || limit < 1 {
		return routing.Topology{}, fmt.Errorf("WARREN_FAULT_DELIVERY_LIMIT %q: want a positive integer", s)
	}
	o, err := runner.ParseFlags(os.Args[1:], io.Discard)
	if err != nil {
		return routing.Topology{}, nil // runner.Main reports it
	}
	var topo routing.Topology
	for _, q := range o.Queues {
		topo.Queues = append(topo.Queues, routing.Queue{Name: q, Quorum: true, DeliveryLimit: limit})
	}
	return topo, nil
}

// recorder appends one line per event; a nil file records nothing.
type recorder struct {
	mu  sync.Mutex
	f   *os.File
	pid int
}

func newRecorder(path string) (*recorder, error) {
	r := &recorder{pid: os.Getpid()}
	if path == "" {
		return r, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	r.f = f
	return r, nil
}

// line writes "<kind> <n> <pid> <unix ns>" in one write(2): with O_APPEND it lands
// whole even when several processes share the file, and it reaches the
// kernel before the task is acked, so a SIGKILL cannot lose it.
func (r *recorder) line(kind string, n int) {
	if r.f == nil {
		return
	}
	r.write(fmt.Sprintf("%s %d %d %d\n", kind, n, r.pid, time.Now().UnixNano()))
}

// write appends one whole line in one write(2).
func (r *recorder) write(line string) {
	if r.f == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.f.WriteString(line)
}
