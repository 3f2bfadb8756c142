package scheduler

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
)

// NewTestSchedule returns a schedule named for t from base, firing task tick
// every second into a queue of its own unless e says otherwise (e's Name
// and Queue are set here), with an election queue of its own: the three
// are deleted, with the schedule's exchange, when t ends.
func NewTestSchedule(t *testing.T, b *brokertest.Broker, base string, e schedule.Entry) (s *schedule.Schedule, election string) {
	t.Helper()
	e.Name = strings.TrimSuffix(b.Queue(base), ".")
	e.Queue = b.Queue("fires")
	if e.Task.Name == "" {
		e.Task = task.Task{Name: "tick"}
	}
	if e.Every == 0 && e.Cron == "" {
		e.Every = time.Second
	}
	b.Track(Name(e.Name))
	t.Cleanup(func() { _ = b.Channel().ExchangeDelete(Name(e.Name), false, false) })
	s, err := schedule.New(e)
	if err != nil {
		t.Fatal(err)
	}
	return s, b.Queue("election")
}

// Start runs a candidate of cfg until stop is called or t ends; stop
// waits for Run to return and may be called again.
func Start(t *testing.T, cfg Config) (s *Scheduler, stop func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return s, stop
}
