package worker

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// taskLog writes log lines about one task with its fields (task, id, queue,
// attempt, and later duration and error). It keeps the values, not zap
// fields, and builds the fields only for lines that are written: a success
// logs at debug, which is usually off, and the hot path should not pay for
// a line nobody reads.
type taskLog struct {
	l               *zap.Logger
	task, id, queue string
	attempt         int
	duration        time.Duration // the handler's run, once ran is set
	ran             bool
	extra           []zap.Field
}

func newTaskLog(l *zap.Logger, task, id, queue string, attempt int) taskLog {
	return taskLog{l: l, task: task, id: id, queue: queue, attempt: attempt}
}

// with returns a taskLog with more fields; t is unchanged.
func (t *taskLog) with(fs ...zap.Field) *taskLog {
	c := *t
	c.extra = append(t.extra[:len(t.extra):len(t.extra)], fs...)
	return &c
}

// took records the handler's run time for the lines that follow.
func (t *taskLog) took(d time.Duration) { t.duration, t.ran = d, true }

func (t *taskLog) write(lvl zapcore.Level, msg string, fs []zap.Field) {
	ce := t.l.Check(lvl, msg)
	if ce == nil {
		return
	}
	// Task name and id come from the producer and may be as long as a frame.
	all := make([]zap.Field, 0, 5+len(t.extra)+len(fs))
	all = append(all, zap.String("task", truncate(t.task, maxLogField)), zap.String("id", truncate(t.id, maxLogField)),
		zap.String("queue", t.queue), zap.Int("attempt", t.attempt))
	if t.ran {
		all = append(all, zap.Duration("duration", t.duration))
	}
	ce.Write(append(append(all, t.extra...), fs...)...)
}

func (t *taskLog) Debug(msg string, fs ...zap.Field) { t.write(zapcore.DebugLevel, msg, fs) }
func (t *taskLog) Info(msg string, fs ...zap.Field)  { t.write(zapcore.InfoLevel, msg, fs) }
func (t *taskLog) Warn(msg string, fs ...zap.Field)  { t.write(zapcore.WarnLevel, msg, fs) }
func (t *taskLog) Error(msg string, fs ...zap.Field) { t.write(zapcore.ErrorLevel, msg, fs) }
