package worker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestTaskLogFields(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	base := newTaskLog(zap.New(core), "t", "i", "q", 2)
	ran := base
	ran.took(time.Second)
	l := ran.with(zap.String("extra", "x"))
	l.Debug("not written: below the level")
	l.Warn("task failed", zap.Error(errors.New("boom")))
	base.Info("base keeps its own fields")

	entries := logs.AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("%d lines, want 2 (debug is off)", len(entries))
	}
	got := entries[0].ContextMap()
	for k, want := range map[string]any{"task": "t", "id": "i", "queue": "q", "attempt": int64(2), "duration": time.Second, "extra": "x", "error": "boom"} {
		if got[k] != want {
			t.Errorf("field %s = %v, want %v", k, got[k], want)
		}
	}
	if _, has := entries[1].ContextMap()["duration"]; has {
		t.Error("took changed the logger it was copied from")
	}
	if _, has := entries[1].ContextMap()["extra"]; has {
		t.Error("with changed the logger it was called on")
	}
}

// A task's name and id come from the producer and may be as long as a
// frame; a log line carries only their start.
func TestTaskLogCutsProducerStrings(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	long := strings.Repeat("n", 10000)
	l := newTaskLog(zap.New(core), long, long, "q", 1)
	l.Info("line")
	got := logs.AllUntimed()[0].ContextMap()
	for _, k := range []string{"task", "id"} {
		if s := got[k].(string); len(s) > maxLogField+len("…") || !strings.HasPrefix(long, strings.TrimSuffix(s, "…")) {
			t.Errorf("%s field is %d bytes, want the first %d and an ellipsis", k, len(s), maxLogField)
		}
	}
}
