package worker_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// A fire that arrives 30 s before its fire time was fired by a leader
// whose clock runs ahead: the worker runs it and says so, naming the
// leader, once; a fire on time says nothing.
func TestWorkerReportsAFireFromAClockAhead(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("fires")
	core, logs := observer.New(zapcore.WarnLevel)
	ran := make(chan struct{}, 4)
	tick := task.Define[struct{}]("tick")
	warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL, Logger: zap.New(core)}, Queues: []string{q}},
		tick.Handler(func(context.Context, struct{}) error { ran <- struct{}{}; return nil }))

	fire := func(at time.Time) {
		b.Publish("", q, amqp.Publishing{ContentType: "application/json", Body: []byte("{}"), MessageId: task.NewID(at),
			Headers: amqp.Table{"task": "tick", scheduler.HeaderFireAt: at.UnixMicro(), scheduler.HeaderSchedule: "s", scheduler.HeaderHolder: "host/1/abc"}})
		select {
		case <-ran:
		case <-time.After(20 * time.Second):
			t.Fatal("the fire did not run")
		}
	}
	fire(time.Now().Truncate(time.Second))
	if n := len(logs.FilterMessageSnippet("before its fire time").All()); n != 0 {
		t.Fatalf("a fire on time was reported %d times", n)
	}
	fire(time.Now().Add(30 * time.Second).Truncate(time.Second))
	fire(time.Now().Add(30 * time.Second).Truncate(time.Second))
	warned := logs.FilterMessageSnippet("before its fire time").All()
	if len(warned) != 1 {
		t.Fatalf("%d warnings for two early fires, want 1 (at most one a minute)", len(warned))
	}
	f := warned[0].ContextMap()
	if f["fired_by"] != "host/1/abc" || f["schedule"] != "s" || f["ahead"].(time.Duration) < 25*time.Second {
		t.Errorf("warning fields: %v", f)
	}
}
