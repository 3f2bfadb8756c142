package worker

import (
	"context"
	"os"
	"sort"
	"sync/atomic"

	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/presence"
)

// slot is what one handler goroutine runs now: nil between tasks. A
// heartbeat reads every slot, and of each delivery only its shown field,
// written before the slot is stored and never after; a handler writes
// only its own slot, twice per task, so presence costs the data path two
// atomic stores, a clock read and a copy into the delivery it already
// allocated.
type slot = atomic.Pointer[delivery]

// ID names this worker's run in its heartbeats (host/pid/random): the ID
// that `warren workers` and the web UI show.
func (w *Worker) ID() string { return w.id }

// runPresence announces the worker until ctx is done, then says goodbye.
// Without presence it returns at once.
func (w *Worker) runPresence(ctx context.Context) {
	if w.ann == nil {
		return
	}
	w.ann.Run(ctx)
}

// status is the worker's presence now (inspect.Worker); the announcer
// sets ID, Interval and Sent.
func (w *Worker) status() inspect.Worker {
	host, _ := os.Hostname()
	st := w.Stats()
	s := inspect.Worker{
		Host:        host,
		PID:         os.Getpid(),
		Version:     w.version,
		Node:        w.Node(),
		Queues:      w.cfg.Queues,
		Concurrency: w.cfg.Concurrency,
		Prefetch:    w.cfg.Prefetch,
		Started:     w.started,
		State:       inspect.WorkerRunning,
		Leading:     w.Leading(),
		Running:     []inspect.RunningTask{},
		Counts: inspect.WorkerCounts{
			Received: st.Received, Succeeded: st.Succeeded, Retried: st.Retried,
			Dead: st.Dead, Expired: st.Expired, Requeued: st.Requeued,
		},
	}
	for _, l := range w.cfg.Limits {
		q := inspect.QueueLimit{Queue: l.Queue, PerWorker: l.PerWorker, Concurrency: l.Concurrency}
		if l.Rate > 0 {
			q.Rate, q.Per, q.Burst = l.Rate, l.per(), l.burst()
		}
		s.Limits = append(s.Limits, q)
	}
	if w.stopping.Load() {
		s.State = inspect.WorkerStopping
	}
	for i := range w.slots {
		t := w.slots[i].Load()
		if t == nil {
			continue
		}
		s.RunningCount++
		s.Running = append(s.Running, t.shown) // never t.m: its handler may write to it
	}
	sort.Slice(s.Running, func(a, b int) bool { return s.Running[a].Started.Before(s.Running[b].Started) })
	if len(s.Running) > inspect.MaxRunningListed {
		s.Running = s.Running[:inspect.MaxRunningListed]
	}
	return s
}

// newAnnouncer returns the worker's announcer, or nil when presence is off.
func (w *Worker) newAnnouncer() *presence.Announcer {
	if w.cfg.PresenceInterval < 0 {
		return nil
	}
	return presence.New(presence.Config{
		ID: w.id, Sup: w.sup, Interval: w.cfg.PresenceInterval,
		Status: w.status, Log: w.log,
	})
}
