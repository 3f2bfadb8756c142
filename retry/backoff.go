package retry

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes capped exponential delays with jitter. The zero value is
// usable: see each field's default.
type Backoff struct {
	// Base is the delay before the first retry. Defaults to 1s.
	Base time.Duration
	// Max caps every delay. Defaults to 30s.
	Max time.Duration
	// Multiplier grows the delay per attempt. Defaults to 2.
	Multiplier float64
	// Jitter is the fraction of each delay that is randomised, in [0, 1]:
	// 0.2 gives delays in [0.8d, d]. Jitter spreads the reconnects of a
	// fleet of workers after a broker restart. Defaults to 0 (none); set it
	// negative for none explicitly where the default changes.
	Jitter float64
}

// Delay returns the delay before retry number attempt (1 for the first). r
// is a number in [0, 1) that drives the jitter; pass rand.Float64() or, in
// tests, a fixed value. Delay never overflows: large attempts give Max.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	base, maxd, mult := b.Base, b.Max, b.Multiplier
	if base <= 0 {
		base = time.Second
	}
	if maxd <= 0 {
		maxd = 30 * time.Second
	}
	if maxd < base {
		maxd = base
	}
	if mult < 1 {
		mult = 2
	}
	if attempt < 1 {
		attempt = 1
	}
	// In float64, so that mult^attempt saturates to +Inf instead of
	// wrapping around.
	d := float64(base) * math.Pow(mult, float64(attempt-1))
	if math.IsInf(d, 0) || math.IsNaN(d) || d > float64(maxd) {
		d = float64(maxd)
	}
	if j := b.Jitter; j > 0 {
		j = min(j, 1)
		r = min(max(r, 0), 1)
		d -= d * j * r
	}
	return time.Duration(d)
}

// Next is Delay with a random jitter source.
func (b Backoff) Next(attempt int) time.Duration { return b.Delay(attempt, rand.Float64()) }
