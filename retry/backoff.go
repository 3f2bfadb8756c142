package retry

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes capped exponential delays with jitter. The zero value is
// DefaultBackoff; a zero field takes DefaultBackoff's value.
type Backoff struct {
	// Base is the delay before the first retry. Defaults to 10s.
	Base time.Duration
	// Max caps every delay. Defaults to 1h.
	Max time.Duration
	// Multiplier grows the delay per attempt. Defaults to 2.
	Multiplier float64
	// Jitter is the fraction of each delay that is randomised, in [0, 1]:
	// 0.2 gives delays in [0.8d, d]. Jitter keeps a burst of failures (or
	// a fleet's reconnects after a broker restart) from retrying in
	// lockstep. Defaults to 0.2; negative means none.
	Jitter float64
}

// DefaultBackoff is the one set of backoff defaults: Backoff's zero value
// and DefaultPolicy's backoff both mean it. 10s doubling to a 1h cap gives
// five runs over about two and a half minutes (see Policy).
var DefaultBackoff = Backoff{Base: 10 * time.Second, Max: time.Hour, Multiplier: 2, Jitter: 0.2}

// withDefaults fills b's zero fields from DefaultBackoff. It is
// idempotent: a negative Jitter (none) stays negative.
func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = DefaultBackoff.Base
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	if b.Multiplier < 1 {
		b.Multiplier = DefaultBackoff.Multiplier
	}
	if b.Jitter == 0 {
		b.Jitter = DefaultBackoff.Jitter
	}
	b.Jitter = min(b.Jitter, 1)
	return b
}

// Delay returns the delay before retry number attempt (1 for the first). r
// is a number in [0, 1) that drives the jitter; pass rand.Float64() or, in
// tests, a fixed value. Delay never overflows: large attempts give Max.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	b = b.withDefaults()
	base, maxd, mult := b.Base, b.Max, b.Multiplier
	if attempt < 1 {
		attempt = 1
	}
	// In float64, so that mult^attempt saturates to +Inf instead of
	// wrapping around.
	d := float64(base) * math.Pow(mult, float64(attempt-1))
	if math.IsInf(d, 0) || math.IsNaN(d) || d > float64(maxd) {
		d = float64(maxd)
	}
	if b.Jitter > 0 {
		r = min(max(r, 0), 1)
		d -= d * b.Jitter * r
	}
	return time.Duration(d)
}

// Next is Delay with a random jitter source.
func (b Backoff) Next(attempt int) time.Duration { return b.Delay(attempt, rand.Float64()) }
