package retry

import (
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

func TestBackoffDefaults(t *testing.T) {
	var b Backoff
	if got := b.Delay(1, 0); got != time.Second {
		t.Errorf("zero Backoff first delay = %v, want 1s", got)
	}
	if got := b.Delay(100, 0); got != 30*time.Second {
		t.Errorf("zero Backoff cap = %v, want 30s", got)
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
