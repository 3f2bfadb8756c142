package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
)

func mustNew(t *testing.T, e schedule.Entry) *schedule.Schedule {
	t.Helper()
	if e.Name == "" {
		e.Name = "test"
	}
	if e.Task.Name == "" {
		e.Task = task.Task{Name: "noop"}
	}
	s, err := schedule.New(e)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fires returns the first n fire times after from.
func fires(s *schedule.Schedule, from time.Time, n int) []time.Time {
	var out []time.Time
	for at := from; len(out) < n; {
		at = s.Next(at)
		if at.IsZero() {
			break
		}
		out = append(out, at)
	}
	return out
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func checkFires(t *testing.T, got []time.Time, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d fires %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if !got[i].Equal(utc(want[i])) {
			t.Errorf("fire %d: got %s, want %s", i, got[i].UTC().Format(time.RFC3339), want[i])
		}
	}
}

func TestNextCron(t *testing.T) {
	s := mustNew(t, schedule.Entry{Cron: "*/15 * * * *"})
	checkFires(t, fires(s, utc("2026-12-03T10:07:00Z"), 3), "2026-12-03T10:15:00Z", "2026-12-03T10:30:00Z", "2026-12-03T10:45:00Z")
	// On a fire time exactly, Next is the one after.
	checkFires(t, fires(s, utc("2026-12-03T10:15:00Z"), 1), "2026-12-03T10:30:00Z")

	secs := mustNew(t, schedule.Entry{Cron: "*/20 * * * * *"})
	checkFires(t, fires(secs, utc("2026-12-03T10:00:05Z"), 3), "2026-12-03T10:00:20Z", "2026-12-03T10:00:40Z", "2026-12-03T10:01:00Z")

	daily := mustNew(t, schedule.Entry{Cron: "@daily"})
	checkFires(t, fires(daily, utc("2026-12-03T10:00:00Z"), 1), "2026-12-04T00:00:00Z")

	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	inTokyo := mustNew(t, schedule.Entry{Cron: "0 9 * * MON-FRI", Location: tokyo})
	// Thursday 3 December 2026, 09:00 in Tokyo is 00:00 UTC; then Friday,
	// then Monday.
	checkFires(t, fires(inTokyo, utc("2026-12-02T12:00:00Z"), 3), "2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z", "2026-12-07T00:00:00Z")
}

// Europe/Paris: clocks go forward on 29 March 2026 at 02:00 CET (01:00
// UTC) to 03:00 CEST, and back on 25 October 2026 at 03:00 CEST (01:00
// UTC) to 02:00 CET.
func TestNextAcrossDaylightSaving(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(cron string) *schedule.Schedule { return mustNew(t, schedule.Entry{Cron: cron, Location: paris}) }

	t.Run("forward: a skipped time fires at the jump", func(t *testing.T) {
		checkFires(t, fires(at("30 2 * * *"), utc("2026-03-28T12:00:00Z"), 3),
			"2026-03-29T01:00:00Z", // 02:30 does not exist: at 03:00 CEST
			"2026-03-30T00:30:00Z", // 02:30 CEST
			"2026-03-31T00:30:00Z")
	})
	t.Run("forward: skipped times make one fire", func(t *testing.T) {
		checkFires(t, fires(at("*/20 * * * *"), utc("2026-03-29T00:30:00Z"), 4),
			"2026-03-29T00:40:00Z", // 01:40 CET
			"2026-03-29T01:00:00Z", // 02:00, 02:20 and 02:40 are skipped: one fire at 03:00 CEST, which is 03:00's too
			"2026-03-29T01:20:00Z", // 03:20 CEST
			"2026-03-29T01:40:00Z")
	})
	t.Run("back: a repeated time fires once", func(t *testing.T) {
		checkFires(t, fires(at("30 2 * * *"), utc("2026-10-24T12:00:00Z"), 2),
			"2026-10-25T00:30:00Z", // 02:30 CEST; not again at 02:30 CET
			"2026-10-26T01:30:00Z") // 02:30 CET
		checkFires(t, fires(at("0 * * * *"), utc("2026-10-24T22:30:00Z"), 3),
			"2026-10-24T23:00:00Z", // 01:00 CEST
			"2026-10-25T00:00:00Z", // 02:00 CEST; 02:00 CET does not fire
			"2026-10-25T02:00:00Z") // 03:00 CET
	})
	t.Run("back: every second, from inside the repeated hour", func(t *testing.T) {
		// 02:30:00 CET is the second pass of 02:30; every wall time up to
		// 03:00 has fired in the first pass, so the next is 03:00:00 CET.
		checkFires(t, fires(at("* * * * * *"), utc("2026-10-25T01:30:00Z"), 2), "2026-10-25T02:00:00Z", "2026-10-25T02:00:01Z")
	})
	t.Run("a day of the week holds across the change", func(t *testing.T) {
		// Sundays at 09:00 local: 08:00 UTC before, 07:00 after.
		checkFires(t, fires(at("0 9 * * SUN"), utc("2026-03-21T00:00:00Z"), 2), "2026-03-22T08:00:00Z", "2026-03-29T07:00:00Z")
	})
}

func TestNextEvery(t *testing.T) {
	s := mustNew(t, schedule.Entry{Every: 5 * time.Minute})
	checkFires(t, fires(s, utc("2026-12-03T10:07:30Z"), 2), "2026-12-03T10:10:00Z", "2026-12-03T10:15:00Z")
	checkFires(t, fires(s, utc("2026-12-03T10:10:00Z"), 1), "2026-12-03T10:15:00Z")
	// The same times whatever the caller's zone, and @every is the same.
	paris, _ := time.LoadLocation("Europe/Paris")
	at := mustNew(t, schedule.Entry{Cron: "@every 5m"})
	checkFires(t, fires(at, utc("2026-12-03T10:07:30Z").In(paris), 1), "2026-12-03T10:10:00Z")
	if at.Every != 5*time.Minute || at.Cron != "" {
		t.Errorf("@every 5m gave Every %v, Cron %q", at.Every, at.Cron)
	}
}

func TestDue(t *testing.T) {
	every5 := func(m schedule.Missed) *schedule.Schedule {
		return mustNew(t, schedule.Entry{Every: 5 * time.Minute, Missed: m})
	}
	grace := 10 * time.Second
	cases := []struct {
		name      string
		s         *schedule.Schedule
		last, now string
		at        string // "" for nothing due
		missed    int
	}{
		{"not yet", every5(schedule.RunLate), "2026-12-03T10:00:00Z", "2026-12-03T10:04:59Z", "", 0},
		{"on time", every5(schedule.RunLate), "2026-12-03T10:00:00Z", "2026-12-03T10:05:00.2Z", "2026-12-03T10:05:00Z", 0},
		{"after an outage, run late once", every5(schedule.RunLate), "2026-12-03T10:00:00Z", "2026-12-03T10:31:00Z", "2026-12-03T10:30:00Z", 5},
		{"after an outage, skip", every5(schedule.Skip), "2026-12-03T10:00:00Z", "2026-12-03T10:31:00Z", "", 6},
		{"skip, but a moment late is on time", every5(schedule.Skip), "2026-12-03T10:00:00Z", "2026-12-03T10:30:05Z", "2026-12-03T10:30:00Z", 5},
		{"never fired: nothing owed", every5(schedule.RunLate), "", "2026-12-03T10:31:00Z", "", 0},
		{"never fired, now on a fire time", every5(schedule.RunLate), "", "2026-12-03T10:30:00Z", "2026-12-03T10:30:00Z", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var last time.Time
			if c.last != "" {
				last = utc(c.last)
			}
			at, ok, missed := c.s.Due(last, utc(c.now), grace)
			if ok != (c.at != "") || ok && !at.Equal(utc(c.at)) || missed != c.missed {
				t.Errorf("Due = %v, %v, %d missed; want %q, %d missed", at, ok, missed, c.at, c.missed)
			}
		})
	}
}

func TestDueAfterALongOutage(t *testing.T) {
	s := mustNew(t, schedule.Entry{Every: time.Second})
	now := utc("2026-12-03T10:00:00.5Z")
	start := time.Now()
	at, ok, missed := s.Due(now.Add(-30*24*time.Hour), now, time.Second)
	if el := time.Since(start); el > time.Second {
		t.Errorf("Due over 30 days of one-second fires took %v", el)
	}
	if !ok || !at.Equal(utc("2026-12-03T10:00:00Z")) {
		t.Errorf("Due = %v, %v; want the latest fire, 10:00:00", at, ok)
	}
	if missed < 9999 {
		t.Errorf("missed = %d, want at least 9999 (a lower bound past the count's cap)", missed)
	}
}

func TestFireID(t *testing.T) {
	a := mustNew(t, schedule.Entry{Name: "a", Every: time.Minute})
	b := mustNew(t, schedule.Entry{Name: "b", Every: time.Minute})
	at := utc("2026-12-03T10:05:00Z")
	id := a.FireID(at)
	if id != a.FireID(at) {
		t.Fatal("FireID is not deterministic")
	}
	if id == b.FireID(at) || id == a.FireID(at.Add(time.Minute)) {
		t.Error("FireID collides across names or times")
	}
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("FireID %q is not a version 7 UUID: %v", id, err)
	}
	if got, ok := task.IDTime(id); !ok || !got.Equal(at) {
		t.Errorf("task.IDTime(FireID) = %v, %v; want the fire time %v", got, ok, at)
	}
}

func TestNewRefuses(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	noop := task.Task{Name: "noop"}
	cases := []struct {
		e    schedule.Entry
		want string
	}{
		{schedule.Entry{Task: noop, Cron: "* * * * *"}, "no name"},
		{schedule.Entry{Name: "a b", Task: noop, Cron: "* * * * *"}, "name may hold only"},
		{schedule.Entry{Name: strings.Repeat("x", 101), Task: noop, Cron: "* * * * *"}, "longer than 100"},
		{schedule.Entry{Name: "x", Cron: "* * * * *"}, "no task name"},
		{schedule.Entry{Name: "x", Task: noop}, "neither a cron expression nor an interval"},
		{schedule.Entry{Name: "x", Task: noop, Cron: "* * * * *", Every: time.Minute}, "both"},
		{schedule.Entry{Name: "x", Task: noop, Cron: "0 25 * * *"}, "above maximum"},
		{schedule.Entry{Name: "x", Task: noop, Cron: "0 0 30 2 *"}, "never fires"},
		{schedule.Entry{Name: "x", Task: noop, Cron: "CRON_TZ=Asia/Tokyo 0 9 * * *"}, "time zone on its own"},
		{schedule.Entry{Name: "x", Task: noop, Every: time.Millisecond}, "under a second"},
		{schedule.Entry{Name: "x", Task: noop, Every: time.Second + time.Microsecond}, "whole number of milliseconds"},
		{schedule.Entry{Name: "x", Task: noop, Every: time.Minute, Location: paris}, "means nothing to a fixed interval"},
		{schedule.Entry{Name: "x", Task: noop, Cron: "@every soon"}, "invalid duration"},
		{schedule.Entry{Name: "x", Task: noop, Cron: "* * * * *", Missed: 7}, "missed-fire policy"},
	}
	for _, c := range cases {
		if _, err := schedule.New(c.e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", c.e, err, c.want)
		}
	}
}
