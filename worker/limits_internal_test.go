package worker

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/task"
)

func TestLimitsDefaults(t *testing.T) {
	tests := []struct {
		name          string
		body, headers int
		want          limits
	}{
		{"zero values take the defaults", 0, 0, limits{MaxBody: DefaultMaxBodyBytes, MaxHeaders: DefaultMaxHeaderBytes}},
		{"set values are kept", 1 << 10, 4 << 10, limits{MaxBody: 1 << 10, MaxHeaders: 4 << 10}},
		{"negative body means no limit", -1, 0, limits{MaxBody: -1, MaxHeaders: DefaultMaxHeaderBytes}},
		{"headers above the ceiling are lowered", 0, 1 << 20, limits{MaxBody: DefaultMaxBodyBytes, MaxHeaders: MaxHeaderBytesCeiling}},
		{"negative headers mean the ceiling, never unlimited", 0, -1, limits{MaxBody: DefaultMaxBodyBytes, MaxHeaders: MaxHeaderBytesCeiling}},
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
// most maxOwnHeaderEntry, or else counted) at their largest, and every other property
// at its largest.
func TestHeaderCeilingFitsAFrame(t *testing.T) {
	uncounted := []string{task.HeaderTask, task.HeaderID, task.HeaderRetries, task.HeaderETA, task.HeaderExpires,
		task.HeaderMaxAttempts, task.HeaderEnqueuedAt, HeaderReason, HeaderError, HeaderFirstError, HeaderAttempts,
		HeaderQueue, HeaderDiedAt, HeaderDroppedHeaders, broker.HeaderPublishSeq}
	h := map[string]any{}
	for _, k := range uncounted {
		h[k] = string(make([]byte, maxOwnHeaderEntry-(1+len(k)+5))) // each entry at the bound
	}
	if n, entries := userHeaderSize(h); entries != 0 {
		t.Fatalf("UserHeaderSize counts %d bytes in %d entries of warren's own headers", n, entries)
	}
	h["user"] = string(make([]byte, MaxHeaderBytesCeiling-4-(1+4+5))) // the producer's, at the ceiling
	if n, _ := userHeaderSize(h); n != MaxHeaderBytesCeiling {
		t.Fatalf("test table counts %d bytes, want %d", n, MaxHeaderBytesCeiling)
	}
	const (
		frame         = 128 << 10
		contentHeader = 14      // class, weight, body size, property flags
		shortStrings  = 9 * 256 // content type and encoding, correlation id, reply to, expiration, message id, type, user id, app id
		fixed         = 2 + 8   // delivery mode, priority, timestamp
	)
	total := broker.TableSize(h) + contentHeader + shortStrings + fixed
	if total > frame {
		t.Errorf("a copy at the ceiling may take %d bytes, over the %d-byte frame", total, frame)
	}
	t.Logf("largest copy at the ceiling: %d of %d bytes", total, frame)
}

// The broker layer stamps every publish with a header that the size limit
// must not count, or a retried message would grow past it.
func TestPublishSeqHeaderIsNotCounted(t *testing.T) {
	h := map[string]any{"k": "v"}
	before, _ := userHeaderSize(h)
	h[broker.HeaderPublishSeq] = int64(1 << 40)
	if after, _ := userHeaderSize(h); after != before {
		t.Errorf("userHeaderSize grew from %d to %d with %s", before, after, broker.HeaderPublishSeq)
	}
}

// What MaxHeaders caps: the producer's own headers, not the protocol's or
// warren's bookkeeping (bounded, replaced by each copy) nor the broker's
// x-death (dropped by each copy).
func TestUserHeaderSize(t *testing.T) {
	long := strings.Repeat("e", 3000)
	tests := []struct {
		name          string
		h             map[string]any
		size, entries int
	}{
		{"none", nil, 4, 0},
		{"protocol headers only", map[string]any{task.HeaderTask: "t", task.HeaderID: "abc", task.HeaderRetries: int64(3), task.HeaderETA: "2024-05-01T10:00:00Z"}, 4, 0},
		{"warren's bookkeeping", map[string]any{HeaderError: "boom", HeaderFirstError: "bang", HeaderReason: "permanent", HeaderQueue: "q", HeaderDroppedHeaders: int64(2)}, 4, 0},
		{"broker's dead-lettering", map[string]any{"x-death": []any{map[string]any{"count": int64(1)}}, "x-first-death-queue": "q"}, 4, 0},
		{"a producer's header", map[string]any{task.HeaderTask: "t", "trace": "abc"}, 4 + 1 + 5 + 5 + 3, 1},
		{"an oversized protocol header counts", map[string]any{task.HeaderTask: long}, 4 + 1 + 4 + 5 + 3000, 1},
		{"an oversized bookkeeping header counts", map[string]any{HeaderFirstError: long}, 4 + 1 + len(HeaderFirstError) + 5 + 3000, 1},
	}
	for _, tc := range tests {
		size, entries := userHeaderSize(tc.h)
		if size != tc.size || entries != tc.entries {
			t.Errorf("%s: userHeaderSize = %d bytes, %d entries; want %d, %d", tc.name, size, entries, tc.size, tc.entries)
		}
	}
}

func TestLimitsCheck(t *testing.T) {
	small := map[string]any{"task": "t", "k": "v"} // counted: 4 + 1 + 1 + 5 + 1 = 12 bytes
	big := map[string]any{"task": "t", "blob": strings.Repeat("b", 100)}
	tests := []struct {
		name    string
		l       limits
		body    []byte
		h       map[string]any
		part    string // "" for no error
		size    int
		entries int
	}{
		{name: "under both", l: limits{MaxBody: 10, MaxHeaders: 12}, body: []byte("0123456789"), h: small},
		{name: "zero limits mean none", l: limits{}, body: make([]byte, 1<<20), h: big},
		{name: "negative limits mean none", l: limits{MaxBody: -1, MaxHeaders: -1}, body: make([]byte, 1<<20), h: big},
		{name: "body one over", l: limits{MaxBody: 9, MaxHeaders: 12}, body: []byte("0123456789"), h: small, part: task.PartBody, size: 10},
		{name: "headers one over", l: limits{MaxBody: 10, MaxHeaders: 11}, body: []byte("x"), h: small, part: task.PartHeaders, size: 12, entries: 1},
		{name: "headers win over body", l: limits{MaxBody: 1, MaxHeaders: 20}, body: []byte("0123456789"), h: big, part: task.PartHeaders, size: 4 + 1 + 4 + 5 + 100, entries: 1},
		{name: "x-death does not count", l: limits{MaxHeaders: 12}, h: map[string]any{"k": "v", "x-death": []any{strings.Repeat("d", 500)}}},
	}
	for _, tc := range tests {
		err := tc.l.check(tc.body, tc.h)
		if over := tc.l.headersOver(tc.h); over != (tc.part == task.PartHeaders) {
			t.Errorf("%s: HeadersOver = %v", tc.name, over)
		}
		if tc.part == "" {
			if err != nil {
				t.Errorf("%s: Check = %v, want nil", tc.name, err)
			}
			continue
		}
		var tl *task.TooLargeError
		if !errors.As(err, &tl) {
			t.Fatalf("%s: Check = %v (%T), want a *task.TooLargeError", tc.name, err, err)
		}
		limit := tc.l.MaxBody
		if tc.part == task.PartHeaders {
			limit = tc.l.MaxHeaders
		}
		if tl.Part != tc.part || tl.Size != tc.size || tl.Limit != limit || tl.Entries != tc.entries {
			t.Errorf("%s: got %+v, want part %q size %d limit %d entries %d", tc.name, *tl, tc.part, tc.size, limit, tc.entries)
		}
		if got := task.Reason(err); got != "too_large" {
			t.Errorf("%s: Reason = %q, want too_large", tc.name, got)
		}
	}
}

func TestSummarizeHeaders(t *testing.T) {
	h := map[string]any{
		task.HeaderTask: "resize", task.HeaderID: "abc", task.HeaderRetries: int64(2), task.HeaderETA: "2024-05-01T10:00:00Z",
		task.HeaderEnqueuedAt: int64(1714557600000000), HeaderFirstError: "db down",
		"x-death":          []any{map[string]any{"count": int64(1)}},
		"x-custom":         "small but not ours",
		task.HeaderExpires: strings.Repeat("e", 3000), // ours, but too big to keep
	}
	for i := range 1000 {
		h[fmt.Sprintf("h%04d", i)] = "v"
	}
	kept, dropped := summarizeHeaders(h)
	want := map[string]any{task.HeaderTask: "resize", task.HeaderID: "abc", task.HeaderRetries: int64(2), task.HeaderETA: "2024-05-01T10:00:00Z",
		task.HeaderEnqueuedAt: int64(1714557600000000), HeaderFirstError: "db down"}
	if len(kept) != len(want) {
		t.Errorf("kept %d headers %v, want %v", len(kept), keys(kept), keys(want))
	}
	for k, v := range want {
		if kept[k] != v {
			t.Errorf("kept[%q] = %v, want %v", k, kept[k], v)
		}
	}
	if wantDropped := len(h) - len(want); dropped != wantDropped {
		t.Errorf("dropped = %d, want %d", dropped, wantDropped)
	}
}

// Whatever the input, a summary is small enough that a dead letter with it
// fits in one 128 KiB frame with room to spare.
func TestSummarizeHeadersIsBounded(t *testing.T) {
	h := map[string]any{}
	for _, k := range []string{task.HeaderTask, task.HeaderID, task.HeaderRetries, task.HeaderETA, task.HeaderExpires, task.HeaderMaxAttempts, task.HeaderEnqueuedAt,
		HeaderFirstError, HeaderError, HeaderReason, HeaderAttempts, HeaderQueue, HeaderDiedAt} {
		h[k] = strings.Repeat("x", maxOwnHeaderEntry-(1+len(k)+5)) // each entry exactly at the bound
	}
	for i := range 5000 {
		h[fmt.Sprintf("x-warren-extra-%d", i)] = "small"
	}
	kept, _ := summarizeHeaders(h)
	if len(kept) != 13 {
		t.Errorf("kept %d headers, want the 13 known ones at the bound", len(kept))
	}
	if n, entries := userHeaderSize(kept); entries != 0 {
		t.Errorf("userHeaderSize counts %d bytes in %d entries of a summary; want none, or a retry would grow it", n, entries)
	}
	if n := broker.TableSize(kept); n > 23<<10 {
		t.Errorf("summary is %d bytes, want at most 23 KiB", n)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
