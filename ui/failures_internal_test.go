package ui

import (
	"testing"
	"time"
)

func TestFailureCountCurrent(t *testing.T) {
	read := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	fc := &failureCount{at: read, dead: 5, failures: 3}
	for _, c := range []struct {
		name  string
		dead  int
		after time.Duration
		want  int
		ok    bool
	}{
		{"unchanged", 5, 10 * time.Second, 3, true},
		{"two died since: recent", 7, 30 * time.Second, 5, true},
		{"four went: at most what is left", 1, 30 * time.Second, 1, true},
		{"a minute old: read again", 5, FailuresMaxAge, 0, false},
	} {
		n, _, _, ok := fc.current(c.dead, read.Add(c.after))
		if n != c.want || ok != c.ok {
			t.Errorf("%s: current(%d) = %d, %v; want %d, %v", c.name, c.dead, n, ok, c.want, c.ok)
		}
	}
	if _, _, _, ok := (&failureCount{}).current(5, read); ok {
		t.Error("a count never read is current")
	}
}
