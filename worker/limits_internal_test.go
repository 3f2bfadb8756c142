package worker

import (
	"testing"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/task"
)

func TestLimitsDefaults(t *testing.T) {
	tests := []struct {
		name          string
		body, headers int
		want          task.Limits
	}{
		{"zero values take the defaults", 0, 0, task.Limits{MaxBody: DefaultMaxBodyBytes, MaxHeaders: DefaultMaxHeaderBytes}},
		{"set values are kept", 1 << 10, 4 << 10, task.Limits{MaxBody: 1 << 10, MaxHeaders: 4 << 10}},
		{"negative body means no limit", -1, 0, task.Limits{MaxBody: -1, MaxHeaders: DefaultMaxHeaderBytes}},
		{"headers above the ceiling are lowered", 0, 1 << 20, task.Limits{MaxBody: DefaultMaxBodyBytes, MaxHeaders: MaxHeaderBytesCeiling}},
		{"negative headers mean the ceiling, never unlimited", 0, -1, task.Limits{MaxBody: DefaultMaxBodyBytes, MaxHeaders: MaxHeaderBytesCeiling}},
	}
	for _, tc := range tests {
		w := &Worker{cfg: Config{MaxBodyBytes: tc.body, MaxHeaderBytes: tc.headers}}
		if got := w.limits(); got != tc.want {
			t.Errorf("%s: limits() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// The ceiling leaves room in a 128 KiB frame for the rest of any copy: the
// headers MaxHeaders does not count (the protocol's and warren's, each at
// most task.MaxOwnHeaderEntry, or else counted) at their largest, and every other property
// at its largest.
func TestHeaderCeilingFitsAFrame(t *testing.T) {
	uncounted := []string{task.HeaderTask, task.HeaderID, task.HeaderRetries, task.HeaderETA, task.HeaderExpires,
		task.HeaderMaxAttempts, task.HeaderEnqueuedAt, HeaderReason, HeaderError, HeaderFirstError, HeaderAttempts,
		HeaderQueue, HeaderDiedAt, HeaderDroppedHeaders, task.HeaderPublishSeq}
	h := map[string]any{}
	for _, k := range uncounted {
		h[k] = string(make([]byte, task.MaxOwnHeaderEntry-(1+len(k)+5))) // each entry at the bound
	}
	if n, entries := task.UserHeaderSize(h); entries != 0 {
		t.Fatalf("UserHeaderSize counts %d bytes in %d entries of warren's own headers", n, entries)
	}
	h["user"] = string(make([]byte, MaxHeaderBytesCeiling-4-(1+4+5))) // the producer's, at the ceiling
	if n, _ := task.UserHeaderSize(h); n != MaxHeaderBytesCeiling {
		t.Fatalf("test table counts %d bytes, want %d", n, MaxHeaderBytesCeiling)
	}
	const (
		frame         = 128 << 10
		contentHeader = 14      // class, weight, body size, property flags
		shortStrings  = 9 * 256 // content type and encoding, correlation id, reply to, expiration, message id, type, user id, app id
		fixed         = 2 + 8   // delivery mode, priority, timestamp
	)
	total := task.HeaderTableSize(h) + contentHeader + shortStrings + fixed
	if total > frame {
		t.Errorf("a copy at the ceiling may take %d bytes, over the %d-byte frame", total, frame)
	}
	t.Logf("largest copy at the ceiling: %d of %d bytes", total, frame)
}

// The broker layer stamps every publish with a header that the size limit
// must not count, or a retried message would grow past it.
func TestPublishSeqHeaderIsKnown(t *testing.T) {
	if task.HeaderPublishSeq != broker.HeaderPublishSeq {
		t.Errorf("task.HeaderPublishSeq = %q, broker.HeaderPublishSeq = %q: UserHeaderSize would count the broker layer's stamp",
			task.HeaderPublishSeq, broker.HeaderPublishSeq)
	}
}
