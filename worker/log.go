package worker

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// taskLog writes log lines about one task with its fields (task, id, queue,
// attempt, and later duration and error). Unlike zap's With, it encodes the
// fields only for lines that are written: a success logs at debug, which is
// usually off, and the hot path should not pay for it.
type taskLog struct {
	l      *zap.Logger
	fields []zap.Field
}

func newTaskLog(l *zap.Logger, fields ...zap.Field) *taskLog {
	return &taskLog{l: l, fields: fields}
}

// with returns a taskLog with more fields; t is unchanged.
func (t *taskLog) with(fs ...zap.Field) *taskLog {
	all := make([]zap.Field, 0, len(t.fields)+len(fs))
	return &taskLog{l: t.l, fields: append(append(all, t.fields...), fs...)}
}

func (t *taskLog) write(lvl zapcore.Level, msg string, fs []zap.Field) {
	if ce := t.l.Check(lvl, msg); ce != nil {
		ce.Write(append(t.fields[:len(t.fields):len(t.fields)], fs...)...)
	}
}

func (t *taskLog) Debug(msg string, fs ...zap.Field) { t.write(zapcore.DebugLevel, msg, fs) }
func (t *taskLog) Info(msg string, fs ...zap.Field)  { t.write(zapcore.InfoLevel, msg, fs) }
func (t *taskLog) Warn(msg string, fs ...zap.Field)  { t.write(zapcore.WarnLevel, msg, fs) }
func (t *taskLog) Error(msg string, fs ...zap.Field) { t.write(zapcore.ErrorLevel, msg, fs) }
