package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/producer"
)

// run is the parent: it starts the worker, enqueues at the rate for the
// duration while printing a line per interval, drains, stops the worker
// and prints the summary. ok is false when the soak failed a check.
func run(ctx context.Context, c config) (ok bool, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	c.MetricsAddr = ln.Addr().String()
	_ = ln.Close()

	fmt.Printf("warren soak: %v at %d tasks/s, payload %dB, worker concurrency %d prefetch %d, handler work %v, queue %s, broker %s\n",
		c.Duration, c.Rate, c.Payload, c.Concurrency, c.Prefetch, c.Work, c.Queue, conn.Redact(c.Broker))
	cmd, err := startWorker(c)
	if err != nil {
		return false, fmt.Errorf("start worker: %w", err)
	}
	// exited is closed when the worker ends, with its error in waitErr.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	if err := waitFor(ctx, exited, 30*time.Second, func() bool { return ready(c.MetricsAddr) }); err != nil {
		return false, fmt.Errorf("worker not ready: %w", err)
	}
	pid := cmd.Process.Pid

	// Tasks left in the queue by an interrupted run are handled first and
	// kept out of the figures.
	base, err := settle(ctx, exited, c.MetricsAddr, pid)
	if err != nil {
		return false, err
	}
	if base.Handled > 0 {
		fmt.Printf("drained %.0f tasks left from an earlier run\n", base.Handled)
	}

	p, err := producer.New(producer.Config{Conn: conn.Config{URL: c.Broker}})
	if err != nil {
		return false, err
	}
	defer p.Close()
	var enqueued, failed atomic.Int64
	var errMu sync.Mutex
	var lastErr string
	pctx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var producers sync.WaitGroup
	tokens := pace(pctx, c.Rate)
	pad := strings.Repeat("x", max(c.Payload-20, 0))
	for i := 0; i < c.Producers; i++ {
		producers.Add(1)
		go func() {
			defer producers.Done()
			for n := range tokens {
				ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := p.Enqueue(ectx, soakTask.New(Payload{N: n, Pad: pad}), producer.WithQueue(c.Queue))
				cancel()
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					lastErr = err.Error()
					errMu.Unlock()
					continue
				}
				enqueued.Add(1)
			}
		}()
	}

	fmt.Printf("one line per %v; enqueued, handled and tasks/s are the interval's, failed enqueues are cumulative\n", c.Interval)
	fmt.Printf("%-8s %10s %10s %10s %12s %10s %10s %10s %13s\n", "interval", "enqueued", "handled", "tasks/s", "worker RSS", "heap", "goroutines", "failed", "producer RSS")
	samples := []sample{base}
	var lastEnq int64
	start := time.Now()
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for i := 1; time.Since(start) < c.Duration-c.Interval/2; i++ {
		select {
		case <-tick.C:
		case <-exited:
			return false, fmt.Errorf("worker exited mid-run: %v", waitErr)
		case <-ctx.Done():
			return false, ctx.Err()
		}
		s, err := probe(c.MetricsAddr, pid)
		if err != nil {
			return false, fmt.Errorf("probe worker: %w", err)
		}
		prev := samples[len(samples)-1]
		enq := enqueued.Load()
		self, _ := vmRSS("self")
		fmt.Printf("%-8d %10d %10.0f %10.1f %9.1f MiB %6.1f MiB %10.0f %10d %9.1f MiB\n", i, enq-lastEnq, s.Handled-prev.Handled,
			(s.Handled-prev.Handled)/s.At.Sub(prev.At).Seconds(), s.RSS, s.Heap, s.Goroutines, failed.Load(), self)
		lastEnq = enq
		samples = append(samples, s)
	}
	stopProducing()
	producers.Wait()

	// Drain: everything confirmed must be handled.
	total := float64(enqueued.Load())
	_ = waitFor(ctx, exited, 60*time.Second, func() bool {
		s, err := probe(c.MetricsAddr, pid)
		return err == nil && s.Handled-base.Handled >= total
	})
	end, err := probe(c.MetricsAddr, pid)
	if err != nil {
		return false, fmt.Errorf("probe worker: %w", err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	var stopErr error
	select {
	case <-exited:
		stopErr = waitErr
	case <-time.After(30 * time.Second):
		stopErr = errors.New("still running 30s after SIGTERM")
	}

	errMu.Lock()
	defer errMu.Unlock()
	return summarize(samples, end, base, total, failed.Load(), lastErr, stopErr), nil
}

// summarize prints the verdict and reports whether every check passed.
func summarize(samples []sample, end, base sample, total float64, failed int64, lastErr string, stopErr error) bool {
	ok := true
	handled := end.Handled - base.Handled
	elapsed := end.At.Sub(base.At).Seconds()
	fmt.Printf("\ntotal: enqueued %.0f (confirmed), handled %.0f (%.0f success), lost %.0f, enqueue errors %d, %.1f tasks/s over %.0fs\n",
		total, handled, end.Success-base.Success, math.Max(total-handled, 0), failed, handled/elapsed, elapsed)
	if failed > 0 {
		fmt.Printf("last enqueue error: %s\n", lastErr)
	}
	if total-handled > 0 {
		fmt.Println("FAIL: confirmed tasks were not handled")
		ok = false
	}
	if len(samples) < 3 {
		fmt.Println("RSS: too few intervals to compare (need 2 after the warm-up one)")
	} else {
		ref, last := samples[2], samples[len(samples)-1]
		growth := last.RSS - ref.RSS
		allowed := math.Max(0.10*ref.RSS, 4)
		verdict := "flat"
		if growth > allowed {
			verdict = "NOT flat"
			ok = false
		}
		fmt.Printf("RSS %s: interval 2 %.1f MiB, last %.1f MiB (%+.1f MiB, %+.1f%%; allowed +%.1f MiB); peak %.1f MiB\n",
			verdict, ref.RSS, last.RSS, growth, 100*growth/ref.RSS, allowed, peakRSS(samples[1:]))
		fmt.Printf("heap: interval 2 %.1f MiB, last %.1f MiB; goroutines: interval 2 %.0f, last %.0f\n",
			ref.Heap, last.Heap, ref.Goroutines, last.Goroutines)
	}
	if stopErr != nil {
		fmt.Printf("FAIL: worker after SIGTERM: %v\n", stopErr)
		ok = false
	} else {
		fmt.Println("worker: SIGTERM, exit 0")
	}
	fmt.Printf("go %s, %s/%s, %d CPUs\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	return ok
}

func peakRSS(ss []sample) float64 {
	var m float64
	for _, s := range ss {
		m = math.Max(m, s.RSS)
	}
	return m
}

// pace yields task numbers at rate per second until ctx is done. Ticks
// every 10ms issue what is due; a backlog (producers slower than the rate)
// waits in the channel rather than being dropped.
func pace(ctx context.Context, rate int) <-chan int {
	out := make(chan int, rate)
	go func() {
		defer close(out)
		start := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			due := int(float64(rate) * time.Since(start).Seconds())
			for ; n < due; n++ {
				select {
				case out <- n:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// settle waits until the worker's handled count stops moving (leftovers
// drained) and returns that reading.
func settle(ctx context.Context, exited <-chan struct{}, addr string, pid int) (sample, error) {
	prev, err := probe(addr, pid)
	if err != nil {
		return prev, err
	}
	for i := 0; i < 60; i++ {
		select {
		case <-time.After(time.Second):
		case <-exited:
			return prev, errors.New("worker exited")
		case <-ctx.Done():
			return prev, ctx.Err()
		}
		s, err := probe(addr, pid)
		if err != nil {
			return s, err
		}
		if s.Handled == prev.Handled {
			return s, nil
		}
		prev = s
	}
	return prev, errors.New("the queue did not drain of earlier tasks within 60s")
}

// waitFor polls cond until it holds, the worker exits or d passes.
func waitFor(ctx context.Context, exited <-chan struct{}, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-exited:
			return errors.New("worker exited")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
