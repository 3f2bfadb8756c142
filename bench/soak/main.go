// Command soak runs warren at a steady rate for a long stretch and reports,
// once per interval, what a leak or a stall would show: tasks enqueued and
// handled, throughput, the worker's resident memory (VmRSS), heap and
// goroutines. It is not part of CI; it needs the broker the README sets up.
//
//	go run ./bench/soak [-duration 10m] [-rate 200] [-interval 1m]
//	                    [-concurrency 8] [-prefetch 32] [-producers 4]
//	                    [-payload 100] [-work 0s] [-queue warren-soak]
//	                    [-broker amqp://guest:guest@127.0.0.1:5672/]  (env WARREN_BROKER_URL)
//
// The worker is the worker binary's own stack (runner.Run: flags, logs,
// /metrics) in a child process, so its RSS is the worker's alone; this
// process enqueues at -rate tasks/s with -producers goroutines, each
// Enqueue waiting for its publisher confirm. Each line reads the child's
// VmRSS from /proc/<pid>/status and the rest from its /metrics.
//
// At the end the producer stops, the worker drains the queue, receives
// SIGTERM and must exit 0, and a summary compares the last interval with
// the second (the first is warm-up): RSS is flat when it grew by less than
// 10% or 4 MiB, whichever is larger. The exit code is 1 when a task was
// lost, RSS was not flat or the worker did not stop cleanly.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is the soak's flags, shared with the worker child.
type config struct {
	Broker      string
	Duration    time.Duration
	Rate        int
	Interval    time.Duration
	Concurrency int
	Prefetch    int
	Producers   int
	Payload     int
	Work        time.Duration
	Queue       string
	MetricsAddr string // the child's, chosen by the parent
}

func main() {
	var c config
	c.Broker = os.Getenv("WARREN_BROKER_URL")
	if c.Broker == "" {
		c.Broker = "amqp://guest:guest@127.0.0.1:5672/"
	}
	flag.StringVar(&c.Broker, "broker", c.Broker, "broker URL (env WARREN_BROKER_URL)")
	flag.DurationVar(&c.Duration, "duration", 10*time.Minute, "how long to enqueue")
	flag.IntVar(&c.Rate, "rate", 200, "tasks enqueued per second")
	flag.DurationVar(&c.Interval, "interval", time.Minute, "reporting period")
	flag.IntVar(&c.Concurrency, "concurrency", 8, "worker handlers")
	flag.IntVar(&c.Prefetch, "prefetch", 32, "worker prefetch")
	flag.IntVar(&c.Producers, "producers", 4, "goroutines enqueueing at once")
	flag.IntVar(&c.Payload, "payload", 100, "approximate payload size in bytes")
	flag.DurationVar(&c.Work, "work", 0, "time each handler spends per task")
	flag.StringVar(&c.Queue, "queue", "warren-soak", "work queue (declared durable; drained at the start)")
	child := flag.Bool("child-worker", false, "internal: run the worker")
	flag.StringVar(&c.MetricsAddr, "metrics-addr", "", "internal: the worker's HTTP address")
	flag.Parse()
	if c.Rate < 1 || c.Producers < 1 || c.Interval <= 0 || c.Duration < c.Interval {
		fmt.Fprintln(os.Stderr, "soak: -rate and -producers must be at least 1, and -duration at least one -interval")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *child {
		os.Exit(runWorker(ctx, c))
	}
	ok, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}
