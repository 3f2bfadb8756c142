package faulttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

// Item is the payload of the scenario's tasks.
type Item struct {
	N int `json:"n"`
}

var itemTask = task.Define[Item]("fault_item")

// scenario runs n tasks through a producer (on producerURL) and a worker
// (on workerURL), calling each fault once the producer has had the share of
// confirms given by its position (1/(k+1), 2/(k+1), ...). Enqueues that
// fail are retried with the same task id, as a careful caller does, so a
// task may be enqueued twice but never lost.
type scenario struct {
	t           *testing.T
	b           *brokertest.Broker
	n           int
	producerURL string
	workerURL   string
	faults      []func()
	// handlerDelay slows each task so that faults hit in-flight work.
	handlerDelay time.Duration
	// rate paces the producer (tasks/s; 0 = as fast as it goes), so that a
	// slow fault such as a broker restart lands mid-flow.
	rate int
	// queue, when named, is the work queue instead of a classic one named
	// by b (a quorum queue on a cluster).
	queue routing.Queue
	// delayEvery, when above 0, enqueues every delayEvery-th task with a
	// one-second delay, and failEvery makes every failEvery-th task fail
	// its first run, so that both pass through the delay levels.
	delayEvery, failEvery int
}

type report struct {
	Sent, Handled, Lost, Duplicates int
	EnqueueRetries                  int64
	Recovery                        []time.Duration
	StaleAcks                       uint64
	Elapsed                         time.Duration
}

func (r report) String() string {
	return fmt.Sprintf("sent %d, handled %d, lost %d, duplicates %d, enqueue retries %d, recovery %v, stale acks dropped %d, in %v",
		r.Sent, r.Handled, r.Lost, r.Duplicates, r.EnqueueRetries, r.Recovery, r.StaleAcks, r.Elapsed.Round(time.Millisecond))
}

func (s *scenario) run() report {
	t := s.t
	wq := s.queue
	if wq.Name == "" {
		wq = routing.Queue{Name: s.b.Queue("fault")}
	}
	q := wq.Name
	topo := routing.Topology{Queues: []routing.Queue{wq}}
	start := time.Now()

	var mu sync.Mutex
	seen := make(map[int]int, s.n)
	var lastHandled atomic.Int64
	reg := task.NewRegistry()
	reg.MustRegister(itemTask.Handler(func(ctx context.Context, it Item) error {
		if s.handlerDelay > 0 {
			time.Sleep(s.handlerDelay)
		}
		if m, _ := task.FromContext(ctx); s.failEvery > 0 && it.N%s.failEvery == 0 && m.Retries == 0 {
			return errors.New("first run fails, to go through the delay levels")
		}
		mu.Lock()
		seen[it.N]++
		mu.Unlock()
		lastHandled.Store(time.Now().UnixNano())
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: s.workerURL, Heartbeat: 2 * time.Second},
		Queues: []string{q}, Registry: reg, Topology: topo, Concurrency: 8, Prefetch: 64,
		Retry: retry.Policy{MaxAttempts: 10, Backoff: retry.Backoff{Base: time.Second, Max: time.Second, Multiplier: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() {
		wcancel()
		select {
		case <-wdone:
		case <-time.After(60 * time.Second):
			t.Error("worker did not stop")
		}
	}()

	p, err := producer.New(producer.Config{Conn: conn.Config{URL: s.producerURL, Heartbeat: 2 * time.Second}, Topology: topo, Routes: routing.NewTable().Add(itemTask.Name(), routing.ToQueue(q))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	handledAll := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == s.n
	}
	var confirmed, retries atomic.Int64
	var recovery []time.Duration
	faultAt := make([]int64, len(s.faults))
	for i := range s.faults {
		faultAt[i] = int64(s.n * (i + 1) / (len(s.faults) + 1))
	}
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		for i, f := range s.faults {
			for confirmed.Load() < faultAt[i] {
				time.Sleep(5 * time.Millisecond)
			}
			f()
			restored := time.Now()
			// Recovery: until the worker handles a task again (unless
			// there is nothing left to handle).
			for deadline := restored.Add(2 * time.Minute); time.Now().Before(deadline) && !handledAll(); time.Sleep(10 * time.Millisecond) {
				if lastHandled.Load() > restored.UnixNano() {
					recovery = append(recovery, time.Since(restored))
					break
				}
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for {
					opts := []producer.Option{producer.WithID(fmt.Sprintf("item-%d", i))}
					if s.delayEvery > 0 && i%s.delayEvery == 0 {
						opts = append(opts, producer.WithDelay(time.Second))
					}
					_, err := producer.Enqueue(ctx, p, itemTask, Item{N: i}, opts...)
					if err == nil {
						confirmed.Add(1)
						break
					}
					if ctx.Err() != nil {
						t.Errorf("task %d never confirmed: %v", i, err)
						return
					}
					retries.Add(1)
					if !errors.Is(err, producer.ErrConnectionLost) && !errors.Is(err, context.DeadlineExceeded) {
						t.Logf("enqueue %d: %v (retrying)", i, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	var pace <-chan time.Time
	if s.rate > 0 {
		tick := time.NewTicker(time.Second / time.Duration(s.rate))
		defer tick.Stop()
		pace = tick.C
	}
	for i := 0; i < s.n; i++ {
		if pace != nil {
			<-pace
		}
		next <- i
	}
	close(next)
	wg.Wait()
	<-faultsDone

	deadline := time.Now().Add(2 * time.Minute)
	for !handledAll() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Let redeliveries of tasks already handled arrive, so duplicates count.
	time.Sleep(500 * time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	r := report{Sent: s.n, Handled: len(seen), EnqueueRetries: retries.Load(), Recovery: recovery, StaleAcks: w.Stats().StaleAcks, Elapsed: time.Since(start)}
	for i := 0; i < s.n; i++ {
		switch c := seen[i]; {
		case c == 0:
			r.Lost++
		case c > 1:
			r.Duplicates += c - 1
		}
	}
	return r
}
