package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// side is one way of running a phase, warren or a raw variant, and its
// figures: one round's, or after combine each figure's median over the
// rounds.
type side struct {
	name   string
	r      result
	ratios []float64 // warren's rate / this side's, one per round
}

// row is one phase: warren against every raw variant that ran it.
type row struct {
	phase   string
	latency bool // waits were measured
	paced   bool // the producer ran at a fixed rate: only the waits count

	warr result
	raws []side // in rawVariants order (the enqueue phases have one, the publisher)

	// The baseline. In one round's row: the raw variant with the highest
	// rate (for a paced row, the lowest wait p99). After combine: the best
	// raw row, the variant with the highest median rate over the rounds,
	// and warren against it in each round. The fastest variant of each
	// round stays as a stricter figure (roundMax): where rates swing from
	// round to round, the highest of three samples beats a fourth from the
	// same spread most of the time, so a ratio to it sits below 1 even
	// between equals (docs/performance.md).
	best      []string  // its name, one per round
	raw       result    // its figures; after combine, medians over the rounds
	ratios    []float64 // warren's rate / its rate, one per round
	roundMax  []float64 // warren's rate / the fastest raw rate of each round
	p99Ratios []float64 // warren's wait p99 / the lowest raw p99, one per round
}

// newRow makes one round's row from its sides, one of them "warren", and
// picks that round's best raw side.
func newRow(phase string, sides []side, latency, paced bool) row {
	r := row{phase: phase, latency: latency, paced: paced}
	for _, s := range sides {
		if s.name == "warren" {
			r.warr = s.r
		} else {
			r.raws = append(r.raws, s)
		}
	}
	best := r.raws[0]
	lowP99 := r.raws[0].r.P99
	for _, s := range r.raws[1:] {
		if paced && s.r.P99 < best.r.P99 || !paced && s.r.Rate > best.r.Rate {
			best = s
		}
		lowP99 = min(lowP99, s.r.P99)
	}
	r.best, r.raw = []string{best.name}, best.r
	for i := range r.raws {
		r.raws[i].ratios = []float64{r.warr.Rate / max(r.raws[i].r.Rate, 1e-9)}
	}
	r.ratios = []float64{r.warr.Rate / max(best.r.Rate, 1e-9)}
	r.roundMax = r.ratios
	if latency {
		r.p99Ratios = []float64{float64(r.warr.P99) / float64(max(lowP99, 1))}
	}
	return r
}

// combine turns several rounds of the same phases into one row per phase:
// each side's median figures, the best raw side's median figures (whichever
// variant it was in each round), and every round's ratios.
func combine(rounds [][]row) []row {
	out := make([]row, len(rounds[0]))
	for i := range out {
		first := rounds[0][i]
		o := row{phase: first.phase, latency: first.latency, paced: first.paced}
		var warrs, bests []result
		raws := make([][]result, len(first.raws))
		o.raws = make([]side, len(first.raws))
		for _, rows := range rounds {
			r := rows[i]
			warrs, bests = append(warrs, r.warr), append(bests, r.raw)
			o.best = append(o.best, r.best...)
			o.ratios = append(o.ratios, r.ratios...)
			o.p99Ratios = append(o.p99Ratios, r.p99Ratios...)
			for j, s := range r.raws {
				raws[j] = append(raws[j], s.r)
				o.raws[j].name = s.name
				o.raws[j].ratios = append(o.raws[j].ratios, s.ratios...)
			}
		}
		o.warr, o.raw = medianResult(warrs), medianResult(bests)
		for j := range o.raws {
			o.raws[j].r = medianResult(raws[j])
		}
		o.roundMax = o.ratios
		if !o.paced && len(o.raws) > 1 {
			// The best raw row: the variant with the highest median rate.
			b := 0
			for j := range o.raws {
				if o.raws[j].r.Rate > o.raws[b].r.Rate {
					b = j
				}
			}
			o.best, o.raw, o.ratios = []string{o.raws[b].name}, o.raws[b].r, o.raws[b].ratios
		}
		out[i] = o
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

// ratio is the row's median over the rounds of warren's rate / the best
// raw rate of the same round.
func (r row) ratio() float64 { return median(r.ratios) }

// bestLabel names the best raw side and, when it was not the same in every
// round, how often each was: "batched-pool" or "batched-pool 2/3, per-message 1/3".
func (r row) bestLabel() string {
	count := map[string]int{}
	var names []string
	for _, b := range r.best {
		if count[b] == 0 {
			names = append(names, b)
		}
		count[b]++
	}
	if len(names) == 1 {
		return names[0]
	}
	slices.SortStableFunc(names, func(a, b string) int { return count[b] - count[a] })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d/%d", n, count[n], len(r.best))
	}
	return strings.Join(parts, ", ")
}

func rounds(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}

func rss(x result) string {
	if x.PeakRSSMiB == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", x.PeakRSSMiB)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// printRows prints three tables: warren against the best raw side per
// phase; every raw variant of the phases that have several; and the waits.
func printRows(rows []row) {
	fmt.Printf("warren against the best raw row, the raw variant with the highest median rate (ratio: median of the rounds' warren / it; stricter: median of warren / the fastest raw side of each round):\n\n")
	fmt.Printf("| phase | best raw | raw tasks/s | warren tasks/s | ratio | each round | stricter | raw CPU s/10k | warren CPU s/10k | raw allocs/task | warren allocs/task | raw RSS MiB | warren RSS MiB |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		if r.paced {
			continue
		}
		fmt.Printf("| %s | %s | %.0f | %.0f | %.2f | %s | %.2f | %.2f | %.2f | %.0f | %.0f | %s | %s |\n", r.phase, r.bestLabel(), r.raw.Rate, r.warr.Rate, r.ratio(), rounds(r.ratios),
			median(r.roundMax), r.raw.CPUPer10k, r.warr.CPUPer10k, r.raw.Allocs, r.warr.Allocs, rss(r.raw), rss(r.warr))
	}

	fmt.Printf("\nEvery raw variant (medians over the rounds; warren / it: median of the rounds' ratios):\n\n")
	fmt.Printf("| phase | raw variant | tasks/s | warren / it | each round | CPU s/10k | allocs/task | RSS MiB |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		if r.paced || len(r.raws) < 2 {
			continue
		}
		for _, s := range r.raws {
			fmt.Printf("| %s | %s | %.0f | %.2f | %s | %.2f | %.0f | %s |\n", r.phase, s.name, s.r.Rate, median(s.ratios), rounds(s.ratios),
				s.r.CPUPer10k, s.r.Allocs, rss(s.r))
		}
	}

	fmt.Printf("\nWait from enqueue to handler start (medians over the rounds):\n\n")
	fmt.Printf("| phase | side | p50 | p99 | max |\n")
	fmt.Printf("| --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		if !r.latency {
			continue
		}
		fmt.Printf("| %s | warren | %s | %s | %s |\n", r.phase, ms(r.warr.P50), ms(r.warr.P99), ms(r.warr.Max))
		for _, s := range r.raws {
			fmt.Printf("| %s | raw %s | %s | %s | %s |\n", r.phase, s.name, ms(s.r.P50), ms(s.r.P99), ms(s.r.Max))
		}
	}
	fmt.Println()
	for _, r := range rows {
		if r.latency {
			fmt.Printf("%s: warren p99 / the lowest raw p99 of the round: %.2f (each round: %s)\n", r.phase, median(r.p99Ratios), rounds(r.p99Ratios))
		}
		if r.paced {
			fmt.Printf("%s: warren p99 %s (issue 15's target: under 5 ms)\n", r.phase, ms(r.warr.P99))
		}
	}
}
