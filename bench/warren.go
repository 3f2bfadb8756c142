package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

var benchTask = task.Define[Payload]("bench")

func topology(p params) routing.Topology {
	if p.Shards > 0 {
		return shardsOf(p).Topology()
	}
	return routing.Topology{
		Exchanges: []routing.Exchange{{Name: p.Exchange}},
		Queues:    []routing.Queue{{Name: p.Queue, Quorum: p.Quorum}},
		Bindings:  []routing.Binding{{Exchange: p.Exchange, Queue: p.Queue, Key: "bench"}},
	}
}

func newProducer(p params) (*producer.Producer, error) {
	if p.Shards > 0 {
		return producer.New(producer.Config{Conn: conn.Config{URL: listFrom(p, 0)},
			Topology: topology(p), Channels: max(2, p.Shards),
			Routes: routing.NewTable().AddShards(benchTask.Name(), shardsOf(p))})
	}
	return producer.New(producer.Config{Conn: conn.Config{URL: listFrom(p, 0)},
		Topology: topology(p),
		Routes:   routing.NewTable().Add(benchTask.Name(), routing.Route{Exchange: p.Exchange, Key: "bench"})})
}

func payload(p params, i int) Payload {
	return Payload{N: i, Sent: time.Now().UnixNano(), Pad: strings.Repeat("x", max(p.Payload-40, 0))}
}

// warrenPublish enqueues n tasks from p.Producers goroutines, one Enqueue
// each, or with batch from 4 goroutines per queue in EnqueueBatch chunks
// of p.Window.
// With a rate above 0 the tasks are handed out at that many a second, on a
// schedule, so that a slow confirm does not hold up the next enqueue.
func warrenPublish(ctx context.Context, pr *producer.Producer, p params, n int, batch bool, rate float64) error {
	next := make(chan int, 1024)
	go func() {
		defer close(next)
		start := time.Now()
		for i := 0; i < n; i++ {
			if rate > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
			}
			next <- i
		}
	}()
	var firstErr atomic.Value
	var wg sync.WaitGroup
	goroutines := p.Producers
	if batch {
		// Four batches in flight per queue, as the raw side keeps a
		// window per queue: each batch waits for its slowest shard.
		goroutines = 4 * max(1, p.Shards)
	}
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !batch {
				for i := range next {
					if _, err := producer.Enqueue(ctx, pr, benchTask, payload(p, i)); err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
				return
			}
			ts := make([]task.Task, 0, p.Window)
			flush := func() {
				if _, err := pr.EnqueueBatch(ctx, ts); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
				ts = ts[:0]
			}
			for i := range next {
				ts = append(ts, benchTask.New(payload(p, i)))
				if len(ts) == p.Window {
					flush()
				}
			}
			if len(ts) > 0 {
				flush()
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	return nil
}

func warrenEnqueue(ctx context.Context, p params, batch bool) (result, error) {
	pr, err := newProducer(p)
	if err != nil {
		return result{}, err
	}
	defer pr.Close()
	// Connect and declare before the clock starts, as the raw side does.
	if err := warrenPublish(ctx, pr, p, 1, false, 0); err != nil {
		return result{}, err
	}
	if err := purge(p); err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := warrenPublish(ctx, pr, p, p.N, batch, 0); err != nil {
		return result{}, err
	}
	return result{Rate: float64(p.N) / time.Since(start).Seconds()}, nil
}

// warrenConsume runs a worker until it has handled n tasks and returns the
// rate from first to last and each task's wait.
func warrenConsume(ctx context.Context, p params, n int, started chan<- struct{}) (result, []time.Duration, error) {
	var count, first, last atomic.Int64
	waits := make([]time.Duration, n)
	finished := make(chan struct{})
	var once sync.Once
	reg := task.NewRegistry()
	reg.MustRegister(benchTask.Handler(func(ctx context.Context, pl Payload) error {
		now := time.Now()
		m, _ := task.FromContext(ctx)
		first.CompareAndSwap(0, now.UnixNano())
		i := count.Add(1)
		if int(i) <= n {
			waits[i-1] = now.Sub(m.EnqueuedAt)
		}
		if int(i) == n {
			last.Store(time.Now().UnixNano())
			once.Do(func() { close(finished) })
		}
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: listFrom(p, 1)},
		Queues: []string{p.Queue}, Registry: reg, Topology: topology(p),
		Concurrency: p.Concurrency, Prefetch: p.Prefetch, PresenceInterval: p.Presence})
	if err != nil {
		return result{}, nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	for !w.Ready() {
		time.Sleep(time.Millisecond)
	}
	if started != nil {
		close(started)
	}
	select {
	case <-finished:
	case <-ctx.Done():
	case <-time.After(10 * time.Minute):
		cancel()
		<-done
		return result{}, nil, errors.New("timed out")
	}
	cancel()
	if err := <-done; err != nil {
		return result{}, nil, err
	}
	el := time.Duration(last.Load() - first.Load())
	return result{Rate: float64(n) / el.Seconds()}, waits, ctx.Err()
}

func warrenDrain(ctx context.Context, p params) (result, error) {
	r, _, err := warrenConsume(ctx, p, p.N, nil)
	return r, err
}

// warrenEndToEnd enqueues n tasks, at rate a second if rate is above 0,
// while a worker, ready before the first enqueue, handles them.
func warrenEndToEnd(ctx context.Context, p params, n int, rate float64) (result, error) {
	pr, err := newProducer(p)
	if err != nil {
		return result{}, err
	}
	defer pr.Close()
	// Connect and declare before the first timed enqueue, as the raw side
	// dials and opens its channel before it stamps the first message.
	if err := warrenPublish(ctx, pr, p, 1, false, 0); err != nil {
		return result{}, err
	}
	if err := purge(p); err != nil {
		return result{}, err
	}
	type out struct {
		r     result
		waits []time.Duration
		err   error
	}
	got := make(chan out, 1)
	started := make(chan struct{})
	go func() {
		r, w, err := warrenConsume(ctx, p, n, started)
		got <- out{r, w, err}
	}()
	<-started
	if err := warrenPublish(ctx, pr, p, n, false, rate); err != nil {
		return result{}, err
	}
	o := <-got
	if o.err != nil {
		return result{}, o.err
	}
	o.r.P50, o.r.P99, o.r.Max = latencies(o.waits)
	return o.r, nil
}
