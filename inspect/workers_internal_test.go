package inspect

import (
	"testing"
	"time"
)

// The watcher's table: a worker is dead after three missed heartbeats and
// a second, by the watcher's clock; a goodbye removes it at once and a
// heartbeat that arrives after it does not bring it back; an answer older
// than what is known does not replace it.
func TestWatchTable(t *testing.T) {
	w := &watch{workers: make(map[string]heard), gone: make(map[string]time.Time)}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	every := 2 * time.Second
	a := Worker{ID: "a", Interval: every, Sent: t0, State: WorkerRunning}
	w.heard(a, t0)
	w.heard(Worker{ID: "b", Interval: every, Sent: t0, State: WorkerRunning}, t0)

	if got := w.list(t0.Add(7 * time.Second)); len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" {
		t.Fatalf("at 7s (3 intervals + 1s not yet past): %+v", got)
	}
	newer := a
	newer.Sent, newer.RunningCount = t0.Add(6*time.Second), 1
	w.heard(newer, t0.Add(6*time.Second))
	older := a
	older.Sent = t0.Add(5 * time.Second)
	w.heard(older, t0.Add(6500*time.Millisecond)) // a ping's answer overtaken by a heartbeat
	got := w.list(t0.Add(7100 * time.Millisecond))
	if len(got) != 1 || got[0].ID != "a" || got[0].RunningCount != 1 {
		t.Fatalf("at 7.1s: want a (the newer status) alone, b gone: %+v", got)
	}

	bye := a
	bye.State, bye.Sent = WorkerStopped, t0.Add(8*time.Second)
	w.heard(bye, t0.Add(8*time.Second))
	late := a
	late.Sent = t0.Add(7900 * time.Millisecond)
	w.heard(late, t0.Add(8100*time.Millisecond))
	if got := w.list(t0.Add(8200 * time.Millisecond)); len(got) != 0 {
		t.Fatalf("after the goodbye: %+v", got)
	}
	if got := w.list(t0.Add(time.Minute)); len(got) != 0 || len(w.gone) != 0 {
		t.Errorf("a minute on: %+v, tombstones %v", got, w.gone)
	}
}

// A heartbeat's interval counts for at most maxExpiryInterval: a fake
// one claiming years is gone three minutes and a second after it was
// heard; none or a negative one counts as a second.
func TestWatchIntervalCapped(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		every time.Duration
		after time.Duration
		gone  bool
	}{
		{2 * time.Second, 7 * time.Second, false},
		{2 * time.Second, 7*time.Second + 1, true},
		{time.Minute, 181 * time.Second, false},
		{time.Minute, 181*time.Second + 1, true},
		{1 << 62, 181 * time.Second, false},
		{1 << 62, 181*time.Second + 1, true},
		{0, 4 * time.Second, false},
		{0, 4*time.Second + 1, true},
		{-time.Hour, 4*time.Second + 1, true},
	} {
		if got := gone(t0, tc.every, t0.Add(tc.after)); got != tc.gone {
			t.Errorf("interval %v, %v later: gone %v, want %v", tc.every, tc.after, got, tc.gone)
		}
	}
	w := &watch{workers: make(map[string]heard), gone: make(map[string]time.Time)}
	w.heard(Worker{ID: "fake", Interval: 1 << 62, Sent: t0, State: WorkerRunning}, t0)
	if got := w.list(t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("a heartbeat claiming a huge interval is listed an hour later: %+v", got)
	}
}
