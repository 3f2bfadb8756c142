// Command bench runs one workload two ways against the same local broker,
// raw amqp091-go written as an expert would and warren, and prints both
// with their ratio:
//
//	go run ./bench [-n 20000] [-payload 100] [-concurrency 8] [-prefetch 1000]
//
// The default prefetch is 1,000, the setting issue 15 measures at (it was
// 256 before); the sweep still covers 1 to 2,000.
//
// Phases: enqueue (tasks/s), drain of a pre-filled queue (tasks/s), and
// end to end with producer and consumer at once (tasks/s and the
// enqueue-to-handler wait p50/p99/max). warren's per-call enqueue runs
// -producers goroutines, as many as the raw publisher's -window by default,
// so both keep the same number of publishes in flight. Drains run in a child process so
// that its peak RSS is the consumer's alone. CPU is user+system seconds of
// the client per 10,000 tasks. Every run is persistent, through a durable
// direct exchange to a durable queue, with publisher confirms and late acks.
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
	Exchange    string
	Queue       string
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
	flag.StringVar(&p.URL, "broker", envOr("WARREN_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/"), "broker URL")
	flag.IntVar(&p.N, "n", 20000, "tasks per phase")
	flag.IntVar(&p.Payload, "payload", 100, "approximate JSON payload size in bytes")
	flag.IntVar(&p.Concurrency, "concurrency", 8, "handler goroutines")
	flag.IntVar(&p.Prefetch, "prefetch", 1000, "consumer prefetch")
	flag.IntVar(&p.Producers, "producers", 0, "goroutines calling warren's Enqueue at once (0: the raw window, so that both keep as many publishes in flight)")
	flag.IntVar(&p.Window, "window", 256, "raw publisher's window of unconfirmed publishes")
	flag.IntVar(&p.Rounds, "rounds", 3, "rounds of every phase; the table gives medians and each round's ratio")
	child := flag.String("child", "", "internal: run one drain phase (raw or warren) and print its result")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file (drains run in children: pass it with -child to profile one)")
	sweep := flag.Bool("sweep", false, "sweep concurrency, prefetch and payload size; write docs/performance.md and docs/performance.svg")
	flag.StringVar(&p.Exchange, "exchange", "bench.x", "internal: exchange name")
	flag.StringVar(&p.Queue, "queue", "bench.q", "internal: queue name")
	flag.Parse()

	if p.Producers <= 0 {
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
	if err := run(ctx, p, *sweep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// row is one phase measured both ways.
type row struct {
	phase     string
	raw, warr result    // medians over the rounds
	latency   bool      // end to end: wait latencies were measured
	ratios    []float64 // warren/raw throughput, one per round
	p99Ratio  float64   // median over the rounds of warren/raw wait p99
}

func run(ctx context.Context, p params, sweep bool) error {
	fmt.Printf("warren bench: n=%d payload=%dB concurrency=%d prefetch=%d producers=%d (raw window %d) rounds=%d\n\n",
		p.N, p.Payload, p.Concurrency, p.Prefetch, p.Producers, p.Window, p.Rounds)
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
// round, with both sides a few seconds apart, is what survives it.
func runRounds(ctx context.Context, p params, e2e bool) ([]row, error) {
	var all [][]row
	for i := range max(p.Rounds, 1) {
		rows, err := runOnce(ctx, p, e2e, i%2 == 1)
		if err != nil {
			return nil, err
		}
		all = append(all, rows)
	}
	return combine(all), nil
}

// runOnce measures every phase once, each side on a freshly purged (or,
// for drains, freshly filled) queue; end to end only with e2e. With flip,
// warren goes first in each phase, so that over several rounds neither side
// always meets the broker as the other left it.
func runOnce(ctx context.Context, p params, e2e, flip bool) ([]row, error) {
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	p.Exchange, p.Queue = "bench.x."+suffix, "bench.q."+suffix
	if err := declare(p); err != nil {
		return nil, err
	}
	defer cleanup(p)
	empty := func() error { return purge(p) }
	filled := func() error { return purgeAndFill(ctx, p) }
	timed := func(f func(context.Context, params) (result, error)) func() (result, error) {
		return func() (result, error) { return measure(func() (result, error) { return f(ctx, p) }, p.N) }
	}

	rawEnq, wEnq, err := pair(flip, empty, timed(rawEnqueue), timed(func(ctx context.Context, p params) (result, error) { return warrenEnqueue(ctx, p, false) }))
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	if err := empty(); err != nil {
		return nil, err
	}
	wBatch, err := timed(func(ctx context.Context, p params) (result, error) { return warrenEnqueue(ctx, p, true) })()
	if err != nil {
		return nil, fmt.Errorf("warren batch enqueue: %w", err)
	}
	rows := []row{{phase: "enqueue", raw: rawEnq, warr: wEnq}, {phase: "enqueue (batch)", raw: rawEnq, warr: wBatch}}

	// Drains run in a child each, on a queue the raw publisher filled.
	rawDrain, wDrain, err := pair(flip, filled,
		func() (result, error) { return childRun(ctx, "raw", p) },
		func() (result, error) { return childRun(ctx, "warren", p) })
	if err != nil {
		return nil, fmt.Errorf("drain: %w", err)
	}
	rows = append(rows, row{phase: "drain", raw: rawDrain, warr: wDrain})
	if !e2e {
		return ratios(rows), nil
	}

	// End to end: producer and consumer at once, with wait latency.
	rawE2E, wE2E, err := pair(flip, empty, timed(rawEndToEnd), timed(warrenEndToEnd))
	if err != nil {
		return nil, fmt.Errorf("end-to-end: %w", err)
	}
	return ratios(append(rows, row{phase: "end-to-end", raw: rawE2E, warr: wE2E, latency: true})), nil
}

// pair runs prep then raw, and prep then warren; warren first with flip.
func pair(flip bool, prep func() error, raw, warren func() (result, error)) (r, w result, err error) {
	sides := []struct {
		name string
		f    func() (result, error)
		out  *result
	}{{"raw", raw, &r}, {"warren", warren, &w}}
	if flip {
		sides[0], sides[1] = sides[1], sides[0]
	}
	for _, s := range sides {
		if err := prep(); err != nil {
			return r, w, err
		}
		if *s.out, err = s.f(); err != nil {
			return r, w, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return r, w, nil
}

// ratios fills in each row's warren/raw ratios from its own figures.
func ratios(rows []row) []row {
	for i := range rows {
		r := &rows[i]
		r.ratios = []float64{r.warr.Rate / max(r.raw.Rate, 1e-9)}
		r.p99Ratio = float64(r.warr.P99) / float64(max(r.raw.P99, 1))
	}
	return rows
}

// combine turns several rounds of the same phases into one row per phase:
// each side's median figures, every round's ratio, and the median p99
// ratio.
func combine(rounds [][]row) []row {
	out := make([]row, len(rounds[0]))
	for i := range out {
		var raws, warrs []result
		var rs, p99s []float64
		for _, rows := range rounds {
			raws, warrs = append(raws, rows[i].raw), append(warrs, rows[i].warr)
			rs, p99s = append(rs, rows[i].ratios...), append(p99s, rows[i].p99Ratio)
		}
		out[i] = row{phase: rounds[0][i].phase, latency: rounds[0][i].latency,
			raw: medianResult(raws), warr: medianResult(warrs), ratios: rs, p99Ratio: median(p99s)}
	}
	return out
}

// medianResult takes the median of each figure on its own.
func medianResult(rs []result) result {
	f := func(get func(result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = get(r)
		}
		return median(xs)
	}
	d := func(get func(result) time.Duration) time.Duration {
		return time.Duration(f(func(r result) float64 { return float64(get(r)) }))
	}
	return result{
		Rate:       f(func(r result) float64 { return r.Rate }),
		CPUPer10k:  f(func(r result) float64 { return r.CPUPer10k }),
		PeakRSSMiB: f(func(r result) float64 { return r.PeakRSSMiB }),
		Allocs:     f(func(r result) float64 { return r.Allocs }),
		P50:        d(func(r result) time.Duration { return r.P50 }),
		P99:        d(func(r result) time.Duration { return r.P99 }),
		Max:        d(func(r result) time.Duration { return r.Max }),
	}
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// ratio is the row's median warren/raw ratio over the rounds.
func (r row) ratio() float64 { return median(r.ratios) }

func printRows(rows []row) {
	fmt.Printf("| phase | raw tasks/s | warren tasks/s | ratio | each round | raw CPU s/10k | warren CPU s/10k | raw allocs/task | warren allocs/task | raw RSS MiB | warren RSS MiB |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		rss := func(x result) string {
			if x.PeakRSSMiB == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", x.PeakRSSMiB)
		}
		each := make([]string, len(r.ratios))
		for i, x := range r.ratios {
			each[i] = fmt.Sprintf("%.2f", x)
		}
		fmt.Printf("| %s | %.0f | %.0f | %.2f | %s | %.2f | %.2f | %.0f | %.0f | %s | %s |\n", r.phase, r.raw.Rate, r.warr.Rate, r.ratio(), strings.Join(each, " "),
			r.raw.CPUPer10k, r.warr.CPUPer10k, r.raw.Allocs, r.warr.Allocs, rss(r.raw), rss(r.warr))
	}
	for _, r := range rows {
		if r.latency {
			fmt.Printf("\nend-to-end wait (enqueue -> handler start, medians): raw p50 %v p99 %v max %v; warren p50 %v p99 %v max %v (p99 ratio %.2f, median of the rounds')\n",
				r.raw.P50.Round(time.Microsecond), r.raw.P99.Round(time.Microsecond), r.raw.Max.Round(time.Microsecond),
				r.warr.P50.Round(time.Microsecond), r.warr.P99.Round(time.Microsecond), r.warr.Max.Round(time.Microsecond),
				r.p99Ratio)
		}
	}
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
		"-concurrency", fmt.Sprint(p.Concurrency), "-prefetch", fmt.Sprint(p.Prefetch), "-exchange", p.Exchange, "-queue", p.Queue)
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
	switch side {
	case "raw":
		r, err = rawDrain(ctx, p)
	case "warren":
		r, err = warrenDrain(ctx, p)
	default:
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
