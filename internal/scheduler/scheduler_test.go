package scheduler_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
)

// candidate is one scheduler process, reached through a proxy so that the
// test can kill its connection as a kill -9 would.
type candidate struct {
	n    int
	px   *tcpproxy.Proxy
	stop func()
}

// fireLog records the fires the work queue received, and leader changes.
type fireLog struct {
	mu      sync.Mutex
	leaders []leaderChange
}

type leaderChange struct {
	n  int
	at time.Time
	on bool
}

func (l *fireLog) leader(n int, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaders = append(l.leaders, leaderChange{n, time.Now(), on})
}

// current returns the candidate leading now, or -1.
func (l *fireLog) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	state := map[int]bool{}
	for _, c := range l.leaders {
		state[c.n] = c.on
	}
	for n, on := range state {
		if on {
			return n
		}
	}
	return -1
}

// leaderSince returns when a candidate other than old last became leader
// after t, if one did.
func (l *fireLog) leaderSince(old int, t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.leaders {
		if c.on && c.n != old && c.at.After(t) {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// TestFailoverFiresEachTimeOnce runs three candidates with one schedule
// firing every second, kills the leader's connection twice in 20 s, and
// checks that every fire time from the first to the last reached the work
// queue exactly once, with its fire id, and that each new leader took over
// within 5 s.
func TestFailoverFiresEachTimeOnce(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	sched, election := scheduler.NewTestSchedule(t, b, "every-second", schedule.Entry{Task: task.Task{Name: "tick", Payload: map[string]int{"n": 1}}})
	q := sched.Queue

	log := &fireLog{}
	var cands []*candidate
	start := func(n int) *candidate {
		px, err := tcpproxy.Start(brokertest.Addr(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = px.Close() })
		_, stop := scheduler.Start(t, scheduler.Config{
			Conn:      conn.Config{URL: brokertest.WithHost(b.URL, px.Addr())},
			Schedules: []*schedule.Schedule{sched}, Election: election,
			OnLeader: func(on bool) { log.leader(n, on) },
		})
		return &candidate{n: n, px: px, stop: stop}
	}
	for n := range 3 {
		cands = append(cands, start(n))
	}
	brokertest.Eventually(t, 30*time.Second, func() bool { return log.current() >= 0 }, "no candidate became leader")

	// kill cuts the leader off the broker for good, as kill -9 would, and
	// returns how long the next leader took to take over.
	kill := func() time.Duration {
		old := log.current()
		killed := time.Now()
		_ = cands[old].px.Close()
		var took time.Duration
		brokertest.Eventually(t, 30*time.Second, func() bool {
			at, ok := log.leaderSince(old, killed)
			took = at.Sub(killed)
			return ok
		}, "no new leader after candidate %d was killed", old)
		cands[old].stop()
		t.Logf("candidate %d killed; the next leader took over in %v", old, took.Round(time.Millisecond))
		return took
	}
	time.Sleep(6 * time.Second)
	took1 := kill()
	time.Sleep(7 * time.Second)
	took2 := kill()
	time.Sleep(7 * time.Second)
	for _, c := range cands {
		c.stop()
	}
	for _, took := range []time.Duration{took1, took2} {
		if took > 5*time.Second {
			t.Errorf("a leader change took %v, want under 5 s", took)
		}
	}

	// Every fire in the work queue: its time and id.
	seen := map[int64]int{}
	var times []int64
	for {
		d, ok := b.Get(q)
		if !ok {
			break
		}
		us, _ := d.Headers[scheduler.HeaderFireAt].(int64)
		at := time.UnixMicro(us)
		if want := sched.FireID(at); d.MessageId != want {
			t.Errorf("fire at %v has id %s, want %s", at, d.MessageId, want)
		}
		if seen[us] == 0 {
			times = append(times, us)
		}
		seen[us]++
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	if len(times) < 15 {
		t.Fatalf("only %d fires in about 20 s of a schedule firing every second", len(times))
	}
	var dups, gaps []string
	for i, us := range times {
		if seen[us] > 1 {
			dups = append(dups, fmt.Sprintf("%v x%d", time.UnixMicro(us).Format(time.TimeOnly), seen[us]))
		}
		if i > 0 && us-times[i-1] != int64(time.Second/time.Microsecond) {
			gaps = append(gaps, fmt.Sprintf("%v..%v", time.UnixMicro(times[i-1]).Format(time.TimeOnly), time.UnixMicro(us).Format(time.TimeOnly)))
		}
	}
	if len(dups) > 0 {
		t.Errorf("fires run more than once: %v", dups)
	}
	if len(gaps) > 0 {
		t.Errorf("fire times missing between: %v", gaps)
	}
	t.Logf("%d fires from %s to %s, each once", len(times), time.UnixMicro(times[0]).Format(time.TimeOnly), time.UnixMicro(times[len(times)-1]).Format(time.TimeOnly))
}

// TestMissedFiresFollowThePolicy stops the only candidate after it fired,
// starts another 3.5 s later, and checks what the newcomer does with the
// fires due meanwhile: run the latest once, late, or skip them. Either way
// it starts from the progress the first left on the broker.
func TestMissedFiresFollowThePolicy(t *testing.T) {
	t.Parallel()
	for _, policy := range []schedule.Missed{schedule.RunLate, schedule.Skip} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			b := brokertest.New(t)
			sched, election := scheduler.NewTestSchedule(t, b, "missed", schedule.Entry{Missed: policy})
			type fire struct{ at, made time.Time }
			run := func(fires chan<- fire) (stop func()) {
				_, stop = scheduler.Start(t, scheduler.Config{
					Conn: conn.Config{URL: b.URL}, Schedules: []*schedule.Schedule{sched}, Election: election,
					Grace:  100 * time.Millisecond,
					OnFire: func(_ *schedule.Schedule, at time.Time, _ string) { fires <- fire{at, time.Now()} },
				})
				return stop
			}
			first := make(chan fire, 100)
			stop := run(first)
			var last fire
			for range 2 {
				select {
				case last = <-first:
				case <-time.After(30 * time.Second):
					t.Fatal("the first candidate did not fire twice")
				}
			}
			stop()
			for len(first) > 0 {
				last = <-first
			}
			time.Sleep(3500 * time.Millisecond)
			second := make(chan fire, 100)
			started := time.Now()
			defer run(second)()
			var got fire
			select {
			case got = <-second:
			case <-time.After(30 * time.Second):
				t.Fatal("the second candidate did not fire")
			}
			t.Logf("first's last fire %s; second started %s, fired %s at %s", last.at.Format("15:04:05.000"),
				started.Format("15:04:05.000"), got.at.Format("15:04:05.000"), got.made.Format("15:04:05.000"))
			switch policy {
			case schedule.RunLate:
				// The latest time due when it took over, fired late: at
				// least three seconds after the first's last fire.
				if !got.at.Before(started) || got.at.Sub(last.at) < 3*time.Second {
					t.Errorf("run-late: first fire at %v, want the latest missed one, before %v and 3 s or more after %v", got.at, started, last.at)
				}
			case schedule.Skip:
				if got.at.Before(started) {
					t.Errorf("skip: fired %v, a time missed before the candidate started at %v", got.at, started)
				}
			}
		})
	}
}

// A leader whose clock runs a minute ahead fires by it; the next leader,
// on a right clock, finds the last fire recorded in its future and says
// so, naming the process that recorded it.
func TestLeaderReportsAProgressRecordFromAClockAhead(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	sched, election := scheduler.NewTestSchedule(t, b, "skewed", schedule.Entry{})
	name := sched.Name
	run := func(now func() time.Time, logger *zap.Logger, fired chan<- struct{}) (stop func()) {
		_, stop = scheduler.Start(t, scheduler.Config{Conn: conn.Config{URL: b.URL, Logger: logger}, Schedules: []*schedule.Schedule{sched},
			Election: election, Now: now, OnFire: func(*schedule.Schedule, time.Time, string) {
				select {
				case fired <- struct{}{}:
				default:
				}
			}})
		return stop
	}
	fired := make(chan struct{}, 1)
	stop := run(func() time.Time { return time.Now().Add(time.Minute) }, nil, fired)
	select {
	case <-fired:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader a minute ahead did not fire")
	}
	stop()

	core, logs := observer.New(zapcore.WarnLevel)
	defer run(nil, zap.New(core), make(chan struct{}, 1))()
	brokertest.Eventually(t, 30*time.Second, func() bool {
		return len(logs.FilterMessageSnippet("ahead of this process's clock").All()) > 0
	}, "the next leader did not report the record from a clock ahead")
	f := logs.FilterMessageSnippet("ahead of this process's clock").All()[0].ContextMap()
	if f["schedule"] != name || f["recorded_by"] == "" || f["ahead"].(time.Duration) < 50*time.Second {
		t.Errorf("warning fields: %v", f)
	}
}

// Changing a schedule's times and restarting keeps its progress: the new
// leader goes on from the last fire under the new times, and no fire time
// is made twice.
func TestChangedScheduleGoesOnFromItsLastFire(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	everySecond, election := scheduler.NewTestSchedule(t, b, "changed", schedule.Entry{})
	run := func(every time.Duration, fired chan<- time.Time) (stop func()) {
		e := everySecond.Entry
		e.Every = every
		sched, err := schedule.New(e)
		if err != nil {
			t.Fatal(err)
		}
		_, stop = scheduler.Start(t, scheduler.Config{Conn: conn.Config{URL: b.URL}, Schedules: []*schedule.Schedule{sched}, Election: election,
			OnFire: func(_ *schedule.Schedule, at time.Time, _ string) { fired <- at }})
		return stop
	}
	next := func(c <-chan time.Time) time.Time {
		select {
		case at := <-c:
			return at
		case <-time.After(30 * time.Second):
			t.Fatal("no fire")
			return time.Time{}
		}
	}
	first := make(chan time.Time, 100)
	stop := run(time.Second, first)
	next(first)
	last := next(first)
	stop()
	for len(first) > 0 {
		last = <-first
	}
	second := make(chan time.Time, 100)
	defer run(2*time.Second, second)()
	at := next(second)
	if !at.After(last) || at.Unix()%2 != 0 {
		t.Errorf("after the change the first fire is %v; want a time after the last fire %v, on the new 2 s grid", at, last)
	}
	t.Logf("last fire every 1s: %s; first fire every 2s: %s", last.Format("15:04:05"), at.Format("15:04:05"))
}

// A leader whose clock runs a minute ahead of the broker's, or behind it,
// says so when it takes the lead; one on the broker's clock (this
// machine's) says nothing of clocks by its first fire.
func TestLeaderReportsItsClockOffTheBrokers(t *testing.T) {
	t.Parallel()
	for _, off := range []time.Duration{time.Minute, -time.Minute, 0} {
		b := brokertest.New(t)
		sched, election := scheduler.NewTestSchedule(t, b, "offclock", schedule.Entry{})
		core, logs := observer.New(zapcore.DebugLevel)
		_, stop := scheduler.Start(t, scheduler.Config{Conn: conn.Config{URL: b.URL, Logger: zap.New(core)}, Schedules: []*schedule.Schedule{sched},
			Election: election, Now: func() time.Time { return time.Now().Add(off) }})
		brokertest.Eventually(t, 30*time.Second, func() bool { return len(logs.FilterMessageSnippet("clock checked").All()) > 0 },
			"the leader never checked its clock")
		warned := func(s string) int { return len(logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet(s).All()) }
		switch {
		case off == 0 && warned("the broker's") != 0:
			t.Errorf("a leader on the broker's clock warned of clocks %d times", warned("the broker's"))
		case off > 0 && warned("runs ahead of the broker's") != 1:
			t.Errorf("a leader %v off the broker's clock did not say it runs ahead", off)
		case off < 0 && warned("runs behind the broker's") != 1:
			t.Errorf("a leader %v off the broker's clock did not say it runs behind", off)
		}
		stop()
	}
}
