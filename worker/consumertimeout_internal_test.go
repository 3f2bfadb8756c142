package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/warrenq/warren/task"
)

func timeoutWorker(cfg time.Duration, learned time.Duration, reg *task.Registry) (*Worker, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	if reg == nil {
		reg = task.NewRegistry()
	}
	w := &Worker{cfg: Config{ConsumerTimeout: cfg, Registry: reg}, log: zap.New(core)}
	w.learnedTimeout.Store(int64(learned))
	return w, logs
}

func TestRunLimit(t *testing.T) {
	tests := []struct {
		name             string
		cfg, learned     time.Duration
		taskTimeout      time.Duration
		want             time.Duration
		byConsumerTimout bool
	}{
		{"unknown: the task's own timeout only", 0, 0, time.Hour, time.Hour, false},
		{"unknown and no task timeout: no limit", 0, 0, 0, 0, false},
		{"configured: no task timeout is cut a tenth before it", 10 * time.Minute, 0, 0, 9 * time.Minute, true},
		{"configured: a shorter task timeout wins", 10 * time.Minute, 0, 5 * time.Minute, 5 * time.Minute, false},
		{"configured: a longer task timeout is cut", 10 * time.Minute, 0, 20 * time.Minute, 9 * time.Minute, true},
		{"the margin is at most a minute", time.Hour, 0, 0, 59 * time.Minute, true},
		{"the margin is at least a second", 5 * time.Second, 0, 0, 4 * time.Second, true},
		{"the margin is at most half the timeout", 500 * time.Millisecond, 0, 0, 250 * time.Millisecond, true},
		{"negative: the broker has none", -1, 0, time.Hour, time.Hour, false},
		{"learned from the broker", 0, 30 * time.Second, 0, 27 * time.Second, true},
		{"learned below the configured value wins", 10 * time.Minute, 3 * time.Second, 0, 2 * time.Second, true},
		{"configured below the learned value wins", 2 * time.Second, 3 * time.Second, 0, 1 * time.Second, true},
		{"learned overrides a configured none", -1, 3 * time.Second, time.Hour, 2 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := timeoutWorker(tc.cfg, tc.learned, nil)
			got, by := w.runLimit(tc.taskTimeout)
			if got != tc.want || by != tc.byConsumerTimout {
				t.Errorf("runLimit(%v) = %v, %v; want %v, %v", tc.taskTimeout, got, by, tc.want, tc.byConsumerTimout)
			}
		})
	}
}

// The broker's close names its timeout: the worker keeps the lowest it has
// seen, counts every close and says so at error level.
func TestConsumerTimedOutLearns(t *testing.T) {
	w, logs := timeoutWorker(0, 0, nil)
	w.consumerTimedOut("video", 5*time.Second)
	w.consumerTimedOut("video", 3*time.Second)
	w.consumerTimedOut("video", 4*time.Second)
	w.consumerTimedOut("video", 0) // a close that named no value
	if got := time.Duration(w.learnedTimeout.Load()); got != 3*time.Second {
		t.Errorf("learned %v, want the lowest named, 3s", got)
	}
	if got := w.consumerTimeouts.Load(); got != 4 {
		t.Errorf("counted %d consumer timeouts, want 4", got)
	}
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("outlived the broker's consumer_timeout").All()
	if len(errs) != 4 {
		t.Fatalf("%d error lines, want 4", len(errs))
	}
	if got := errs[3].ContextMap()["run_limit"]; got != 2*time.Second {
		t.Errorf("run_limit field %v, want 2s", got)
	}
}

func TestWarnConsumerTimeout(t *testing.T) {
	reg := task.NewRegistry()
	reg.MustRegister(
		task.Define[struct{}]("long", task.WithTimeout(time.Hour)).Handler(func(context.Context, struct{}) error { return nil }),
		task.Define[struct{}]("medium", task.WithTimeout(time.Minute)).Handler(func(context.Context, struct{}) error { return nil }),
		task.Define[struct{}]("untimed").Handler(func(context.Context, struct{}) error { return nil }),
	)
	tests := []struct {
		name   string
		cfg    time.Duration
		warned []string
		cut    bool // the warning names the run limit
	}{
		{"unknown: against RabbitMQ's 30m default", 0, []string{"long"}, false},
		{"configured 10m", 10 * time.Minute, []string{"long"}, true},
		{"configured 30s", 30 * time.Second, []string{"long", "medium"}, true},
		{"configured none", -1, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, logs := timeoutWorker(tc.cfg, 0, reg)
			w.warnConsumerTimeout()
			var warned []string
			for _, e := range logs.FilterMessageSnippet("exceeds the broker's consumer_timeout").All() {
				warned = append(warned, e.ContextMap()["task"].(string))
				if _, ok := e.ContextMap()["run_limit"]; ok != tc.cut {
					t.Errorf("%s: run_limit present %v, want %v", e.ContextMap()["task"], ok, tc.cut)
				}
			}
			if strings.Join(warned, ",") != strings.Join(tc.warned, ",") {
				t.Errorf("warned about %v, want %v", warned, tc.warned)
			}
		})
	}
}
