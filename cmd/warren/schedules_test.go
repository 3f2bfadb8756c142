package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/schedule"
)

func TestSchedules(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("ticks")
	name, idle := strings.TrimSuffix(b.Queue("tick"), "."), strings.TrimSuffix(b.Queue("idle"), ".")
	group := strings.TrimSuffix(b.Queue("group"), ".")
	for _, n := range []string{name, idle} {
		b.Track(scheduler.Name(n))
		t.Cleanup(func() { _ = b.Channel().ExchangeDelete(scheduler.Name(n), false, false) })
	}
	b.Track(scheduler.ElectionQueue + "." + group)
	file := filepath.Join(t.TempDir(), "schedules.yaml")
	text := "schedules:\n" +
		"  - {name: " + name + ", task: tick, every: 1s, queue: " + q + "}\n" +
		"  - {name: " + idle + ", task: report, cron: '30 2 * * *', timezone: Europe/Paris, queue: " + q + "}\n"
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	// Before any worker ran the file: nothing fired, no candidate.
	r := cli(t, nil, "schedules", file, "-group", group, "-broker", b.URL).want(t, exitOK)
	if !strings.Contains(r.stdout, "no worker is consuming it") || !strings.Contains(r.stdout, "no fire names its leader yet") || !strings.Contains(r.stdout, "30 2 * * * Europe/Paris") {
		t.Errorf("before any worker:\n%s", r.stdout)
	}

	// One candidate fires the first schedule a few times.
	ss, err := schedule.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fired := make(chan time.Time, 100)
	s, err := scheduler.New(scheduler.Config{Conn: conn.Config{URL: b.URL}, Schedules: ss, Election: scheduler.ElectionQueue + "." + group,
		OnFire: func(_ *schedule.Schedule, at time.Time, _ string) { fired <- at }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	var last time.Time
	for range 2 {
		select {
		case last = <-fired:
		case <-time.After(30 * time.Second):
			t.Fatal("the schedule did not fire")
		}
	}

	r = cli(t, nil, "schedules", file, "-group", group, "-json", "-broker", b.URL).want(t, exitOK)
	var got struct {
		Election  string `json:"election"`
		Consuming bool   `json:"consuming"`
		Leader    string `json:"leader"`
		Schedules []struct {
			Name      string     `json:"name"`
			When      string     `json:"when"`
			Last      *time.Time `json:"last_fire"`
			FirstSeen *time.Time `json:"first_seen"`
			Next      *time.Time `json:"next_fire"`
		} `json:"schedules"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if !got.Consuming || got.Leader == "" || len(got.Schedules) != 2 {
		t.Fatalf("report: %s", r.stdout)
	}
	tick, rep := got.Schedules[0], got.Schedules[1]
	if tick.When != "every 1s" || tick.Last == nil || tick.Last.Before(last) || tick.FirstSeen != nil || tick.Next == nil || !tick.Next.After(*tick.Last) {
		t.Errorf("the firing schedule: %s (last fire seen %v)", r.stdout, last)
	}
	// The nightly one has not fired: its record is the leader's baseline,
	// and its next fire is 02:30 in Paris.
	if rep.Last != nil || rep.FirstSeen == nil || rep.Next == nil || rep.Next.In(mustZone(t, "Europe/Paris")).Format("15:04") != "02:30" {
		t.Errorf("the nightly schedule: %s", r.stdout)
	}

	r = cli(t, nil, "schedules", "-broker", b.URL).want(t, exitUsage)
	if !strings.Contains(r.stderr, "name the schedule file") {
		t.Errorf("no file: %s", r.stderr)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
