package worker

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestTaskLogFields(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	base := newTaskLog(zap.New(core), zap.String("task", "t"), zap.String("id", "i"), zap.String("queue", "q"), zap.Int("attempt", 2))
	l := base.with(zap.Duration("duration", time.Second))
	l.Debug("not written: below the level")
	l.Warn("task failed", zap.Error(errors.New("boom")))
	base.Info("base keeps its own fields")

	entries := logs.AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("%d lines, want 2 (debug is off)", len(entries))
	}
	got := entries[0].ContextMap()
	for k, want := range map[string]any{"task": "t", "id": "i", "queue": "q", "attempt": int64(2), "duration": time.Second, "error": "boom"} {
		if got[k] != want {
			t.Errorf("field %s = %v, want %v", k, got[k], want)
		}
	}
	if _, has := entries[1].ContextMap()["duration"]; has {
		t.Error("with changed the logger it was called on")
	}
}
