// Command bench runs one workload several ways against the same local
// broker, raw amqp091-go written as an expert would and warren, and prints
// warren against the best raw way in each round:
//
//	go run ./bench [-n 20000] [-payload 100] [-concurrency 8] [-prefetch 1000]
//
// The default prefetch is 1,000, the setting issue 15 measures at (it was
// 256 before); the sweep still covers 1 to 2,000.
//
// Phases: enqueue (tasks/s), drain of a pre-filled queue (tasks/s), end to
// end with producer and consumer at once (tasks/s and the
// enqueue-to-handler wait p50/p99/max), and paced end to end (the producer
// at -paced-rate, waits only). warren's per-call enqueue runs -producers
// goroutines, as many as the raw publisher's -window by default, so both
// keep the same number of publishes in flight.
//
// The consume phases run every raw consumer in -raw (rawconsume.go): one
// that acks each message on its own from a pool of goroutines, and two that
// ack with multiple=true every -ack-every deliveries and whenever none is
// waiting, one with the handler inline and one with a pool. The best of
// them in each round is the baseline; the tables show each.
//
// Drains run in a child process each, so that its peak RSS is the
// consumer's alone. CPU is user+system seconds of the client per 10,000
// tasks. Every run is persistent, through a durable direct exchange to a
// durable queue, with publisher confirms and late acks.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// params are the workload, shared with child processes as flags.
type params struct {
	URL         string
	N           int
	Payload     int
	Concurrency int
	Prefetch    int
	Producers   int
	Window      int
	Rounds      int
	AckEvery    int      // the batched raw consumers' k (0: prefetch/4)
	Raw         []string // raw variants to run in the consume phases
	PacedRate   float64  // tasks/s in the paced phase (0: no paced phase)
	PacedN      int      // tasks in the paced phase (at most N)
	Exchange    string
	Queue       string
	// Shards spreads the work over that many queues (spread.go); 0: the
	// one queue of the other phases.
	Shards int
	// QueueVersion declares the spread's classic queues with
	// x-queue-version (1 or 2); 0: no argument.
	QueueVersion int
	// Quorum declares the one queue quorum, as routing.Queue{Quorum: true}
	// does (delivery limit, at-least-once dead-lettering).
	Quorum bool
	// Presence is warren's worker.Config.PresenceInterval: 0 the default
	// heartbeat, negative off, to measure what presence costs.
	Presence time.Duration
}

// result is one phase of one side.
type result struct {
	Rate       float64       `json:"rate"`        // tasks/s
	CPUPer10k  float64       `json:"cpu_per_10k"` // client CPU seconds per 10,000 tasks
	PeakRSSMiB float64       `json:"rss_mib"`     // peak RSS of the process that ran it
	Allocs     float64       `json:"allocs"`      // heap allocations per task in the process that ran it
	P50        time.Duration `json:"p50"`
	P99        time.Duration `json:"p99"`
	Max        time.Duration `json:"max"`
}

func main() {
	var p params
	flag.StringVar(&p.URL, "broker", envOr("WARREN_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/"), "broker URL, or a cluster's nodes comma-separated: producers connect to the first, consumers to the second, queue i is declared through node i")
	flag.IntVar(&p.N, "n", 20000, "tasks per phase")
	flag.IntVar(&p.Payload, "payload", 100, "approximate JSON payload size in bytes")
	flag.IntVar(&p.Concurrency, "concurrency", 8, "handler goroutines")
	flag.IntVar(&p.Prefetch, "prefetch", 1000, "consumer prefetch")
	flag.IntVar(&p.Producers, "producers", 0, "goroutines calling warren's Enqueue at once (0: the raw window, times the queues with -spread, so that both keep as many publishes in flight)")
	flag.IntVar(&p.Window, "window", 256, "raw publisher's window of unconfirmed publishes")
	flag.IntVar(&p.Rounds, "rounds", 5, "rounds of every phase; the table gives medians and each round's ratio")
	flag.IntVar(&p.AckEvery, "ack-every", 0, "the batched raw consumers ack (multiple=true) every k deliveries, and whenever none is waiting (0: prefetch/4)")
	raw := flag.String("raw", strings.Join(rawVariants(), ","), "raw consumers to measure drain and end to end with, comma-separated: "+strings.Join(rawVariants(), ", "))
	flag.Float64Var(&p.PacedRate, "paced-rate", 250, "tasks/s of the paced end-to-end phase, which reports waits only (0: skip it)")
	flag.IntVar(&p.PacedN, "paced-n", 2000, "tasks in the paced end-to-end phase (at most -n)")
	child := flag.String("child", "", "internal: run one drain phase (warren or raw-<variant>), or one end-to-end phase on its own queue (e2e-warren or e2e-raw-<variant>), or fill the queue for a drain (fill), and print its result")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the run to this file, every allocation sampled (slow: for counting, not timing)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file (drains run in children: pass it with -child to profile one)")
	sweep := flag.Bool("sweep", false, "sweep concurrency, prefetch and payload size; write docs/performance.md and docs/performance.svg")
	flag.StringVar(&p.Exchange, "exchange", "bench.x", "internal: exchange name")
	flag.StringVar(&p.Queue, "queue", "bench.q", "internal: queue name")
	flag.IntVar(&p.Shards, "shards", 0, "internal: queues the spread phase uses")
	flag.IntVar(&p.QueueVersion, "queue-version", 0, "internal: x-queue-version of the spread phase's queues")
	flag.DurationVar(&p.Presence, "presence-interval", 0, "warren's worker heartbeat interval (0: the default, 2s; negative: presence off), to measure what presence costs")
	flag.BoolVar(&p.Quorum, "quorum", false, "declare the queue quorum, as routing.Queue{Quorum: true} does, on both sides")
	spread := flag.String("spread", "", "measure enqueue and drain spread over each of these numbers of queues instead (e.g. 1,2,4), raw and warren's routing.Shards")
	versions := flag.String("queue-versions", "1,2", "with -spread: the classic queue versions to measure (x-queue-version); ignored with -quorum")
	flag.Parse()
	for _, v := range strings.Split(*raw, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !slices.Contains(rawVariants(), v) {
			fmt.Fprintf(os.Stderr, "bench: unknown raw variant %q (have %s)\n", v, strings.Join(rawVariants(), ", "))
			os.Exit(2)
		}
		p.Raw = append(p.Raw, v)
	}
	if len(p.Raw) == 0 {
		fmt.Fprintln(os.Stderr, "bench: -raw names no variant")
		os.Exit(2)
	}

	autoProducers := p.Producers <= 0
	if autoProducers {
		// A caller of Enqueue has one publish in flight, so the broker
		// sees as many unconfirmed publishes as there are callers; with
		// fewer callers than the raw side's window, warren would be
		// measured at a shallower pipeline (confirm latency, not client
		// cost, would set its rate).
		p.Producers = p.Window
	}
	ctx, stop := signalContext()
	defer stop()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 1
		defer func() {
			f, err := os.Create(*memprofile)
			if err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
		}()
	}
	if *child != "" {
		r, err := runChild(ctx, *child, p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	if *spread != "" {
		if err := runSpread(ctx, p, *spread, *versions, autoProducers); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, p, *sweep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, p params, sweep bool) error {
	fmt.Printf("warren bench: n=%d payload=%dB concurrency=%d prefetch=%d producers=%d (raw window %d) rounds=%d raw=%s ack-every=%d paced=%.0f/s x %d\n\n",
		p.N, p.Payload, p.Concurrency, p.Prefetch, p.Producers, p.Window, p.Rounds, strings.Join(p.Raw, ","), ackEvery(p), p.PacedRate, pacedN(p))
	if sweep {
		return runSweep(ctx, p)
	}
	rows, err := runRounds(ctx, p, true)
	if err != nil {
		return err
	}
	printRows(rows)
	return nil
}

// runRounds measures every phase p.Rounds times and reports, per phase, the
// median of each side's figures and the median of the rounds' ratios: the
// broker drifts between fast and slow spells, and a ratio taken within one
// round, with the sides a few seconds apart, is what survives it.
func runRounds(ctx context.Context, p params, e2e bool) ([]row, error) {
	var all [][]row
	for i := range max(p.Rounds, 1) {
		rows, err := runOnce(ctx, p, e2e, i)
		if err != nil {
			return nil, err
		}
		all = append(all, rows)
	}
	return combine(all), nil
}

// pacedN is the paced phase's task count.
func pacedN(p params) int {
	if p.PacedRate <= 0 {
		return 0
	}
	return min(p.PacedN, p.N)
}

// runOnce measures every phase once, each side on a freshly purged (or,
// for drains, freshly filled) queue; end to end, unhurried and paced, only
// with e2e. Each round starts each phase with a different side, so that
// over several rounds none always meets the broker as another left it.
func runOnce(ctx context.Context, p params, e2e bool, round int) ([]row, error) {
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	p.Exchange, p.Queue = "bench.x."+suffix, "bench.q."+suffix
	if err := declare(p); err != nil {
		return nil, err
	}
	defer cleanup(p)
	empty := func() error { return purge(p) }
	filled := func() error { return purgeAndFill(ctx, p) }
	timed := func(f func() (result, error)) func() (result, error) {
		return func() (result, error) { return measure(f, p.N) }
	}
	// each makes a side per raw variant from f.
	each := func(f func(variant string) (result, error)) []sideRun {
		var sides []sideRun
		for _, v := range p.Raw {
			sides = append(sides, sideRun{v, func() (result, error) { return f(v) }})
		}
		return sides
	}

	enq, err := runSides(round, empty, []sideRun{
		{"publisher", timed(func() (result, error) { return rawEnqueue(ctx, p) })},
		{"warren", timed(func() (result, error) { return warrenEnqueue(ctx, p, false) })},
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	if err := empty(); err != nil {
		return nil, err
	}
	wBatch, err := timed(func() (result, error) { return warrenEnqueue(ctx, p, true) })()
	if err != nil {
		return nil, fmt.Errorf("warren batch enqueue: %w", err)
	}
	rows := []row{newRow("enqueue", enq, false, false),
		newRow("enqueue (batch)", []side{enq[0], {name: "warren", r: wBatch}}, false, false)}

	// Drains run in a child each, on a queue the raw publisher filled.
	drain, err := runSides(round, filled, append(each(func(v string) (result, error) { return childRun(ctx, "raw-"+v, p) }),
		sideRun{"warren", func() (result, error) { return childRun(ctx, "warren", p) }}))
	if err != nil {
		return nil, fmt.Errorf("drain: %w", err)
	}
	rows = append(rows, newRow("drain", drain, false, false))
	if !e2e {
		return rows, nil
	}

	// End to end: producer and consumer at once, with wait latency.
	e2eSides, err := runSides(round, empty, append(each(func(v string) (result, error) {
		return measure(func() (result, error) { return rawEndToEnd(ctx, p, v, p.N, 0) }, p.N)
	}), sideRun{"warren", timed(func() (result, error) { return warrenEndToEnd(ctx, p, p.N, 0) })}))
	if err != nil {
		return nil, fmt.Errorf("end-to-end: %w", err)
	}
	rows = append(rows, newRow("end-to-end", e2eSides, true, false))

	// Paced: the producer at a fixed rate, far below either side's
	// capacity, so that the waits are the pipeline's latency, not a queue.
	if n := pacedN(p); n > 0 {
		paced, err := runSides(round, empty, append(each(func(v string) (result, error) { return rawEndToEnd(ctx, p, v, n, p.PacedRate) }),
			sideRun{"warren", func() (result, error) { return warrenEndToEnd(ctx, p, n, p.PacedRate) }}))
		if err != nil {
			return nil, fmt.Errorf("paced end-to-end: %w", err)
		}
		rows = append(rows, newRow(fmt.Sprintf("paced %.0f/s, %d tasks", p.PacedRate, n), paced, true, true))
	}
	return rows, nil
}

// sideRun is one side of a phase, by name: "warren", or a raw variant.
type sideRun struct {
	name string
	run  func() (result, error)
}

// runSides runs prep then each side, starting in round r at side r (mod
// their number), and returns their figures in the order given.
func runSides(r int, prep func() error, runs []sideRun) ([]side, error) {
	out := make([]side, len(runs))
	for k := range runs {
		i := (r + k) % len(runs)
		if err := prep(); err != nil {
			return nil, err
		}
		res, err := runs[i].run()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", runs[i].name, err)
		}
		out[i] = side{name: runs[i].name, r: res}
	}
	return out, nil
}

// measure runs f and fills in the CPU figure from this process's rusage.
func measure(f func() (result, error), n int) (result, error) {
	before, mallocs := cpuTime(), mallocCount()
	r, err := f()
	if err != nil {
		return r, err
	}
	r.CPUPer10k = (cpuTime() - before).Seconds() * 10000 / float64(n)
	r.Allocs = float64(mallocCount()-mallocs) / float64(n)
	return r, nil
}

func mallocCount() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// childRun runs a drain phase in a child process, for its own peak RSS.
func childRun(ctx context.Context, side string, p params) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, exe, "-child", side, "-broker", p.URL, "-n", fmt.Sprint(p.N), "-payload", fmt.Sprint(p.Payload),
		"-concurrency", fmt.Sprint(p.Concurrency), "-prefetch", fmt.Sprint(p.Prefetch), "-ack-every", fmt.Sprint(p.AckEvery),
		"-exchange", p.Exchange, "-queue", p.Queue, "-shards", fmt.Sprint(p.Shards), "-queue-version", fmt.Sprint(p.QueueVersion),
		"-quorum="+fmt.Sprint(p.Quorum), "-presence-interval", p.Presence.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, err
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("child output %q: %w", out, err)
	}
	return r, nil
}

func runChild(ctx context.Context, side string, p params) (result, error) {
	var r result
	var err error
	before, mallocs := cpuTime(), mallocCount()
	if variant, ok := strings.CutPrefix(side, "raw-"); ok {
		r, err = rawDrain(ctx, p, variant)
	} else if side == "warren" {
		r, err = warrenDrain(ctx, p)
	} else if side == "fill" {
		// A queue of its own filled by the raw publisher, for profiling a
		// drain child on it.
		if err := declare(p); err != nil {
			return r, err
		}
		err = purgeAndFill(ctx, p)
	} else if e2e, ok := strings.CutPrefix(side, "e2e-"); ok {
		// End to end alone, on a queue of its own: for profiling one side.
		if err := declare(p); err != nil {
			return r, err
		}
		defer cleanup(p)
		before, mallocs = cpuTime(), mallocCount()
		if variant, ok := strings.CutPrefix(e2e, "raw-"); ok {
			r, err = rawEndToEnd(ctx, p, variant, p.N, 0)
		} else {
			r, err = warrenEndToEnd(ctx, p, p.N, 0)
		}
	} else {
		return r, fmt.Errorf("unknown child %q", side)
	}
	r.CPUPer10k = (cpuTime() - before).Seconds() * 10000 / float64(p.N)
	r.Allocs = float64(mallocCount()-mallocs) / float64(p.N)
	r.PeakRSSMiB = peakRSSMiB()
	return r, err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMiB reads VmHWM, the process's peak resident set.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// latencies returns p50, p99 and max of ds.
func latencies(ds []time.Duration) (p50, p99, mx time.Duration) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)*50/100], ds[min(len(ds)*99/100, len(ds)-1)], ds[len(ds)-1]
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
