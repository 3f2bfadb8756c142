package retry

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPolicyDecide(t *testing.T) {
	boom := errors.New("boom")
	fixed := Policy{MaxAttempts: 4, Backoff: Backoff{Base: 2 * time.Second, Max: 5 * time.Second, Jitter: -1}}
	tests := []struct {
		name    string
		p       Policy
		attempt int
		err     error
		want    Decision
	}{
		{"first failure", fixed, 1, boom, Decision{Retry: true, Delay: 2 * time.Second}},
		{"second failure doubles", fixed, 2, boom, Decision{Retry: true, Delay: 4 * time.Second}},
		{"third failure capped", fixed, 3, boom, Decision{Retry: true, Delay: 5 * time.Second}},
		{"last attempt exhausted", fixed, 4, boom, Decision{Reason: "exhausted"}},
		{"beyond max exhausted", fixed, 40, boom, Decision{Reason: "exhausted"}},
		{"permanent", fixed, 1, Permanent(boom), Decision{Reason: "permanent"}},
		{"wrapped permanent", fixed, 1, fmt.Errorf("ctx: %w", Permanent(boom)), Decision{Reason: "permanent"}},
		{"after overrides backoff", fixed, 1, After(90*time.Second, boom), Decision{Retry: true, Delay: 90 * time.Second}},
		{"after still counts", fixed, 4, After(time.Second, boom), Decision{Reason: "exhausted"}},
		{"after rounds up to seconds", fixed, 1, After(1500*time.Millisecond, boom), Decision{Retry: true, Delay: 2 * time.Second}},
		{"after below 1s is 1s", fixed, 1, After(0, boom), Decision{Retry: true, Delay: time.Second}},
		{"after capped at MaxDelay", fixed, 1, After(1000*24*time.Hour, boom), Decision{Retry: true, Delay: MaxDelay}},
		{"single attempt never retries", Policy{MaxAttempts: 1}, 1, boom, Decision{Reason: "exhausted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Decide(tt.attempt, tt.err, 0); got != tt.want {
				t.Errorf("Decide(%d, %v) = %+v, want %+v", tt.attempt, tt.err, got, tt.want)
			}
		})
	}
}

func TestZeroPolicyIsDefault(t *testing.T) {
	var p Policy
	boom := errors.New("boom")
	for attempt := 1; attempt < 5; attempt++ {
		d := p.Decide(attempt, boom, 0)
		want := DefaultPolicy.Decide(attempt, boom, 0)
		if d != want || !d.Retry {
			t.Errorf("attempt %d: zero policy %+v, default %+v", attempt, d, want)
		}
	}
	if d := p.Decide(5, boom, 0); d.Retry {
		t.Errorf("zero policy retries a 5th failure: %+v", d)
	}
	if d := p.Decide(1, boom, 0); d.Delay != 10*time.Second {
		t.Errorf("first default delay %v, want 10s", d.Delay)
	}
	// Jitter on by default: the highest r shortens the delay by up to 20%.
	if d := p.Decide(1, boom, 0.999); d.Delay < 8*time.Second || d.Delay >= 10*time.Second {
		t.Errorf("jittered default delay %v, want in [8s, 10s)", d.Delay)
	}
}

func TestErrorClassesUnwrap(t *testing.T) {
	base := errors.New("base")
	if !errors.Is(Permanent(base), base) || !errors.Is(After(time.Second, base), base) {
		t.Error("Permanent and After must unwrap to the cause")
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) should be nil")
	}
	if err := After(time.Second, nil); err == nil || err.Error() == "" {
		t.Error("After(d, nil) should still be an error")
	}
	if IsPermanent(base) || !IsPermanent(fmt.Errorf("x: %w", Permanent(base))) {
		t.Error("IsPermanent misjudges")
	}
}

// The permanent mark is control flow: its text is the cause's, since the
// reason travels beside it (a dead letter's x-warren-reason, a TaskError's
// Kind) and would otherwise be said twice.
func TestPermanentKeepsTheCausesText(t *testing.T) {
	if got := Permanent(errors.New("no card")).Error(); got != "no card" {
		t.Errorf("Permanent(no card).Error() = %q, want %q", got, "no card")
	}
}
