// Package schedule describes periodic tasks: what to enqueue, and when. An
// Entry names a task, its payload and enqueue settings, and either a cron
// expression in a time zone or a fixed interval; New checks it and gives a
// Schedule, whose Next, Due and FireID are the arithmetic a scheduler
// needs: pure functions of the times passed in, so that they are tested
// without a clock. ParseFile reads entries from a schedule file (YAML).
//
// Fire times are a function of the entry alone, never of when a process
// started: every candidate scheduler computes the same ones, and FireID
// gives each fire the same task id wherever it is computed, so a fire sent
// twice across a failover is recognisable.
//
// Workers fire schedules (worker.Config.Schedules, or the worker binary's
// -schedules FILE), one elected worker at a time: docs/schedules.md.
package schedule

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/warrenq/warren/task"
)

// Missed says what happens to fires that fell due while no scheduler ran.
type Missed int

const (
	// RunLate makes one fire, late, for the latest of the missed times,
	// however many were missed: a report that should have run at 02:00
	// runs when a scheduler is back, once. The default.
	RunLate Missed = iota
	// Skip drops missed fires: the schedule goes on at its next time.
	Skip
)

// String returns the policy's name in a schedule file.
func (m Missed) String() string {
	switch m {
	case RunLate:
		return "run-late"
	case Skip:
		return "skip"
	}
	return fmt.Sprintf("Missed(%d)", int(m))
}

// Entry is one periodic task.
type Entry struct {
	// Name identifies the schedule: unique among a deployment's schedules
	// and stable, since fire ids and the progress a scheduler keeps derive
	// from it. Letters, digits, '.', '_' and '-', at most 100.
	Name string
	// Task is what each fire enqueues: a task name and its payload.
	Task task.Task

	// Cron is a cron expression: five fields (minute hour day-of-month
	// month day-of-week), or six with seconds first, or a descriptor
	// (@yearly, @monthly, @weekly, @daily, @hourly, @every 5m). Its
	// times are wall-clock times in Location.
	Cron string
	// Every is a fixed interval instead of Cron (at least a second): fires
	// fall on the multiples of Every since the Unix epoch, whatever the
	// time zone (an hourly Every fires on the hour in UTC).
	Every time.Duration
	// Location is Cron's time zone; nil means UTC.
	Location *time.Location

	// Missed says what happens to fires missed while no scheduler ran.
	Missed Missed

	// Queue sends the fires to this queue rather than by the producer's
	// route for the task.
	Queue string
	// Expiry drops a fire not started within this long of its time; 0:
	// never.
	Expiry time.Duration
	// MaxAttempts overrides the task's MaxAttempts for the fires; 0: the
	// task's own.
	MaxAttempts int
}

// Schedule is a checked Entry.
type Schedule struct {
	Entry
	spec cron.Schedule // nil for Every; wall-clock times, read as UTC
}

// maxName bounds a schedule's name, which later goes into queue names.
const maxName = 100

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// cronParser takes five fields, or six with seconds first, and descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// New checks e and returns its Schedule.
func New(e Entry) (*Schedule, error) {
	s := &Schedule{Entry: e}
	if err := s.check(); err != nil {
		if e.Name == "" {
			return nil, fmt.Errorf("schedule: %w", err)
		}
		return nil, fmt.Errorf("schedule %q: %w", e.Name, err)
	}
	return s, nil
}

func (s *Schedule) check() error {
	switch {
	case s.Name == "":
		return errors.New("no name")
	case len(s.Name) > maxName:
		return fmt.Errorf("name longer than %d characters", maxName)
	case !validName.MatchString(s.Name):
		return errors.New("name may hold only letters, digits, '.', '_' and '-'")
	case s.Task.Name == "":
		return errors.New("no task name")
	case s.Missed != RunLate && s.Missed != Skip:
		return fmt.Errorf("unknown missed-fire policy %v", s.Missed)
	case s.Expiry < 0:
		return errors.New("negative expiry")
	case s.MaxAttempts < 0:
		return errors.New("negative max attempts")
	}
	if every, ok := strings.CutPrefix(strings.TrimSpace(s.Cron), "@every "); ok {
		if s.Every != 0 {
			return errors.New("both a cron expression and an interval: give one")
		}
		d, err := time.ParseDuration(strings.TrimSpace(every))
		if err != nil {
			return fmt.Errorf("cron %q: %w", s.Cron, err)
		}
		s.Cron, s.Every = "", d
	}
	switch {
	case s.Cron == "" && s.Every == 0:
		return errors.New("neither a cron expression nor an interval")
	case s.Cron != "" && s.Every != 0:
		return errors.New("both a cron expression and an interval: give one")
	case s.Every != 0 && s.Every < time.Second:
		return fmt.Errorf("interval %v is under a second", s.Every)
	case s.Every%time.Millisecond != 0:
		// Fire times travel in microseconds; whole milliseconds keep every
		// multiple of the interval exact there.
		return fmt.Errorf("interval %v is not a whole number of milliseconds", s.Every)
	case s.Every != 0 && s.Location != nil:
		return errors.New("a time zone means nothing to a fixed interval: drop it, or use a cron expression")
	}
	if s.Cron == "" {
		return nil
	}
	if f := strings.Fields(s.Cron); len(f) > 0 && (strings.HasPrefix(f[0], "CRON_TZ=") || strings.HasPrefix(f[0], "TZ=")) {
		return fmt.Errorf("cron %q: give the time zone on its own (Location, or timezone in a file), not in the expression", s.Cron)
	}
	spec, err := cronParser.Parse(s.Cron)
	if err != nil {
		return fmt.Errorf("cron %q: %w", s.Cron, err)
	}
	if ss, ok := spec.(*cron.SpecSchedule); ok {
		ss.Location = time.UTC // wall-clock fields, read as UTC; see Next
	}
	s.spec = spec
	if s.Next(time.Unix(0, 0)).IsZero() {
		return fmt.Errorf("cron %q never fires", s.Cron)
	}
	return nil
}

// location returns Cron's time zone.
func (s *Schedule) location() *time.Location {
	if s.Location == nil {
		return time.UTC
	}
	return s.Location
}

// Next returns the first fire time strictly after t, or the zero time if
// there is none (a cron expression naming a date that never comes, such as
// 30 February).
//
// A cron expression names wall-clock times in Location, and each one fires
// once: across a daylight-saving change, a time the clocks skip (02:30 on
// the night they go forward) fires at the moment they jump, together with
// any others skipped (one fire), and a time they repeat (02:30 on the
// night they go back) fires at its first occurrence only.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.spec == nil {
		d := s.Every
		return time.Unix(0, 0).Add((t.Sub(time.Unix(0, 0)) / d * d) + d).In(t.Location())
	}
	loc := s.location()
	wall := wallClock(t.In(loc))
	// Each candidate wall time after t's own, until one maps to an instant
	// after t: a repeated time's second occurrence maps to its first, and
	// skipped times map to the jump, which both may lie at or before t. A
	// repeated hour holds at most 3,600 fire times (a seconds field).
	for range 4000 {
		wall = s.spec.Next(wall)
		if wall.IsZero() {
			return time.Time{}
		}
		if at := instant(wall, loc); at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// wallClock returns t's wall-clock fields as a UTC time.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant returns the first instant whose wall clock in loc shows wall
// (wall-clock fields as UTC), or, when the clocks skip wall, the instant
// they jump.
func instant(wall time.Time, loc *time.Location) time.Time {
	var first time.Time
	// Offsets in effect half a day either side cover every real zone
	// change: a wall time exists under one of them, or under neither.
	for _, probe := range []time.Time{wall.Add(-12 * time.Hour), wall.Add(12 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		at := wall.Add(-time.Duration(off) * time.Second)
		if wallClock(at.In(loc)).Equal(wall) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if !first.IsZero() {
		return first.In(loc)
	}
	// In a gap: read with the offset before the jump, wall lands after it,
	// in the zone that the jump began.
	_, off := wall.Add(-12 * time.Hour).In(loc).Zone()
	start, _ := wall.Add(-time.Duration(off) * time.Second).In(loc).ZoneBounds()
	return start.In(loc)
}

// maxCatchUp bounds the fires Due counts one by one; past it, missed is a
// lower bound.
const maxCatchUp = 10000

// Due says what to fire at now, given last, the time of the last fire made.
// at is the fire to make now, if ok. missed counts the fire times after
// last, up to now, that will never be fired: with RunLate all but the
// latest, which is at; with Skip all of them, unless the latest is at most
// grace old (a scheduler a moment late is not a missed fire), when it is
// at. After firing at, pass it as last; while nothing is due, the next
// fire is s.Next(now).
//
// A zero last means the schedule has never fired: nothing is owed for the
// past, and only a fire time equal to now is due.
func (s *Schedule) Due(last, now time.Time, grace time.Duration) (at time.Time, ok bool, missed int) {
	if last.IsZero() {
		// A new schedule starts now: no fire is owed for the past, but a
		// time that falls exactly on now is due.
		if s.Next(now.Add(-time.Nanosecond)).Equal(now) {
			return now, true, 0
		}
		return time.Time{}, false, 0
	}
	next := s.Next(last)
	if next.IsZero() || next.After(now) {
		return time.Time{}, false, 0
	}
	latest, n := next, 1
	for {
		after := s.Next(latest)
		if after.IsZero() || after.After(now) {
			break
		}
		if n == maxCatchUp {
			latest = s.latestBefore(now, latest)
			break
		}
		latest, n = after, n+1
	}
	if s.Missed == Skip && now.Sub(latest) > grace {
		return time.Time{}, false, n
	}
	return latest, true, n - 1
}

// latestBefore returns the latest fire time at or before now, searching
// back from now in widening steps, but not before from, a fire time.
func (s *Schedule) latestBefore(now, from time.Time) time.Time {
	for back := time.Second; ; back *= 2 {
		start := now.Add(-back)
		if !start.After(from) {
			start = from
		}
		// Walk forward from start to the last time at or before now.
		latest := time.Time{}
		for at := s.Next(start.Add(-time.Nanosecond)); !at.IsZero() && !at.After(now); at = s.Next(at) {
			latest = at
		}
		if !latest.IsZero() || start.Equal(from) {
			if latest.IsZero() {
				return from
			}
			return latest
		}
	}
}

// FireID returns the task id of the fire at: a version 7 UUID carrying at
// (so that its enqueue time is the fire time, see task.NewID) whose other
// bits come from the schedule's name and at. Every scheduler computes the
// same id for the same fire, so a fire sent twice can be told apart from
// two fires.
func (s *Schedule) FireID(at time.Time) string {
	var u uuid.UUID
	ms := at.UnixMilli()
	frac := int64(at.Nanosecond()%int(time.Millisecond)) >> 8
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(frac>>8)&0x0f
	u[7] = byte(frac)
	h := sha256.New()
	h.Write([]byte(s.Name))
	var ns [9]byte
	binary.BigEndian.PutUint64(ns[1:], uint64(at.UnixNano()))
	h.Write(ns[:])
	sum := h.Sum(nil)
	copy(u[8:], sum[:8])
	u[8] = 0x80 | u[8]&0x3f // the RFC 9562 variant
	return u.String()
}
