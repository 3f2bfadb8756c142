// Command enqueue produces process_media tasks for the media example:
//
//	go run ./examples/media/enqueue -n 1000 [-broker URL] [-concurrency 16]
//
// It prints a progress line while it works and a summary at the end, and
// exits 1 if any task was not enqueued.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/examples/media"
	"github.com/warrenq/warren/producer"
)

func main() {
	n := flag.Int("n", 10, "tasks to enqueue")
	defBroker := os.Getenv("WARREN_BROKER_URL")
	if defBroker == "" {
		defBroker = conn.DefaultURL
	}
	brokerURL := flag.String("broker", defBroker, "broker URL (env WARREN_BROKER_URL)")
	conc := flag.Int("concurrency", 16, "goroutines enqueueing at once")
	timeout := flag.Duration("timeout", 30*time.Second, "give up on a task after this long")
	flag.Parse()
	if *n < 0 || *conc < 1 {
		fmt.Fprintln(os.Stderr, "enqueue: -n must be >= 0 and -concurrency >= 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, *brokerURL, *n, *conc, *timeout))
}

func run(ctx context.Context, url string, n, conc int, timeout time.Duration) int {
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: url}, Routes: media.Routes(), Topology: media.Topology})
	if err != nil {
		fmt.Fprintln(os.Stderr, "enqueue:", err)
		return 1
	}
	defer p.Close()

	var done, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				tctx, cancel := context.WithTimeout(ctx, timeout)
				_, err := producer.Enqueue(tctx, p, media.ProcessMedia, media.Media{
					Name: fmt.Sprintf("/tmp/lolcat%d.avi", i+1),
					Size: 1301013,
				})
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				done.Add(1)
			}
		}()
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	progress := func() {
		el := time.Since(start).Seconds()
		fmt.Printf("enqueued %d/%d (%d errors, %.0f tasks/s)\n", done.Load(), n, failed.Load(), float64(done.Load())/el)
	}
feed:
	for i := 0; i < n; i++ {
		for {
			select {
			case next <- i:
				continue feed
			case <-tick.C:
				progress()
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(next)
	wg.Wait()

	el := time.Since(start)
	fmt.Printf("done: %d of %d tasks enqueued to exchange %s key %s in %.2fs (%.0f tasks/s), %d errors\n",
		done.Load(), n, media.Exchange, media.Key, el.Seconds(), float64(done.Load())/el.Seconds(), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "first error:", e)
	}
	if done.Load() != int64(n) {
		return 1
	}
	return 0
}
