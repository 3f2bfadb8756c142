package retry

import (
	"errors"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond}, // below 1 counts as the first attempt
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{5, 1600 * time.Millisecond},
		{6, 2 * time.Second}, // capped
		{64, 2 * time.Second},
		{1 << 30, 2 * time.Second}, // no overflow at huge attempt counts
	}
	for _, tt := range tests {
		if got := b.Delay(tt.attempt, 0); got != tt.want {
			t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

// One set of defaults: a zero Backoff, a zero Policy's backoff and
// DefaultPolicy's all give the same delays, jitter included.
func TestBackoffDefaults(t *testing.T) {
	if DefaultPolicy.Backoff != DefaultBackoff {
		t.Errorf("DefaultPolicy.Backoff = %+v, want DefaultBackoff %+v", DefaultPolicy.Backoff, DefaultBackoff)
	}
	boom := errors.New("boom")
	var zero Backoff
	for attempt := 1; attempt <= 12; attempt++ {
		for _, r := range []float64{0, 0.5, 0.999} {
			want := DefaultBackoff.Delay(attempt, r)
			if got := zero.Delay(attempt, r); got != want {
				t.Errorf("zero Backoff Delay(%d, %v) = %v, DefaultBackoff gives %v", attempt, r, got, want)
			}
			if got := (Policy{MaxAttempts: 100}).Decide(attempt, boom, r).Delay; got != roundDelay(want) {
				t.Errorf("zero Policy delay %d = %v, want %v", attempt, got, roundDelay(want))
			}
		}
	}
	if got := zero.Delay(1, 0); got != 10*time.Second {
		t.Errorf("first default delay = %v, want 10s", got)
	}
	if got := zero.Delay(100, 0); got != time.Hour {
		t.Errorf("default cap = %v, want 1h", got)
	}
	if got := zero.Delay(1, 0.5); got != 9*time.Second {
		t.Errorf("default jitter: Delay(1, 0.5) = %v, want 9s (20%% jitter)", got)
	}
	if got := (Backoff{Jitter: -1}).Delay(1, 0.5); got != 10*time.Second {
		t.Errorf("negative jitter: Delay(1, 0.5) = %v, want 10s (none)", got)
	}
}

func TestBackoffJitterRange(t *testing.T) {
	b := Backoff{Base: time.Second, Max: time.Minute, Jitter: 0.5}
	for _, r := range []float64{0, 0.25, 0.5, 0.999, 1, -3, 7} {
		for attempt := 1; attempt < 10; attempt++ {
			full := Backoff{Base: time.Second, Max: time.Minute}.Delay(attempt, 0)
			got := b.Delay(attempt, r)
			if got > full || got < full/2 {
				t.Errorf("Delay(%d, r=%v) = %v, want within [%v, %v]", attempt, r, got, full/2, full)
			}
		}
	}
	if got := b.Delay(1, 0.5); got != 750*time.Millisecond {
		t.Errorf("Delay(1, 0.5) with jitter 0.5 = %v, want 750ms", got)
	}
}

func TestBackoffNextStaysInRange(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: time.Second, Jitter: 1}
	for i := 0; i < 1000; i++ {
		if d := b.Next(3); d < 0 || d > 40*time.Millisecond {
			t.Fatalf("Next(3) = %v, outside [0, 40ms]", d)
		}
	}
}
