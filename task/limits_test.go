package task

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// table and decimal stand for amqp091-go's Table and Decimal, named types
// that HeaderTableSize must size without importing the client.
type (
	table   map[string]any
	decimal struct {
		Scale uint8
		Value int32
	}
)

// Sizes as amqp091-go's writeField and writeTable encode them: a type octet,
// then the value; strings and arrays with a 4-byte length, tables too.
func TestHeaderTableSize(t *testing.T) {
	tests := []struct {
		name string
		h    map[string]any
		want int
	}{
		{"nil table", nil, 4},
		{"empty table", map[string]any{}, 4},
		{"string", map[string]any{"task": "process_media"}, 4 + 1 + 4 + 1 + 4 + 13},
		{"empty key and value", map[string]any{"": ""}, 4 + 1 + 5},
		{"nil value", map[string]any{"k": nil}, 4 + 2 + 1},
		{"bool", map[string]any{"k": true}, 4 + 2 + 2},
		{"int8", map[string]any{"k": int8(-1)}, 4 + 2 + 2},
		{"uint8", map[string]any{"k": uint8(1)}, 4 + 2 + 2},
		{"int16", map[string]any{"k": int16(1)}, 4 + 2 + 3},
		{"uint16", map[string]any{"k": uint16(1)}, 4 + 2 + 3},
		{"int, written as int32", map[string]any{"k": 7}, 4 + 2 + 5},
		{"int32", map[string]any{"k": int32(7)}, 4 + 2 + 5},
		{"uint32", map[string]any{"k": uint32(7)}, 4 + 2 + 5},
		{"float32", map[string]any{"k": float32(1)}, 4 + 2 + 5},
		{"int64", map[string]any{"k": int64(7)}, 4 + 2 + 9},
		{"float64", map[string]any{"k": 1.5}, 4 + 2 + 9},
		{"timestamp", map[string]any{"k": time.Unix(0, 0)}, 4 + 2 + 9},
		{"bytes", map[string]any{"k": []byte("abc")}, 4 + 2 + 5 + 3},
		{"array", map[string]any{"k": []any{"ab", int64(1), nil}}, 4 + 2 + 5 + (5 + 2) + 9 + 1},
		{"nested map", map[string]any{"k": map[string]any{"a": int32(1)}}, 4 + 2 + 1 + 4 + 2 + 5},
		{"nested named table", map[string]any{"k": table{"a": int32(1)}}, 4 + 2 + 1 + 4 + 2 + 5},
		{"x-death as amqp091-go reads it", map[string]any{"x-death": []any{table{"count": int64(1)}}}, 4 + 8 + 5 + 1 + 4 + 6 + 9},
		{"decimal", map[string]any{"k": decimal{Scale: 2, Value: 100}}, 4 + 2 + 6},
		{"unsupported type counts as 9", map[string]any{"k": uint64(1)}, 4 + 2 + 9},
		{"several", map[string]any{"task": "t", "retries": int64(2)}, 4 + (1 + 4 + 5 + 1) + (1 + 7 + 9)},
	}
	for _, tc := range tests {
		if got := HeaderTableSize(tc.h); got != tc.want {
			t.Errorf("%s: HeaderTableSize(%v) = %d, want %d", tc.name, tc.h, got, tc.want)
		}
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
		{"protocol headers only", map[string]any{HeaderTask: "t", HeaderID: "abc", HeaderRetries: int64(3), HeaderETA: "2024-05-01T10:00:00Z"}, 4, 0},
		{"warren's bookkeeping", map[string]any{HeaderError: "boom", HeaderFirstError: "bang", HeaderReason: "permanent", HeaderQueue: "q", HeaderDroppedHeaders: int64(2)}, 4, 0},
		{"broker's dead-lettering", map[string]any{"x-death": []any{table{"count": int64(1)}}, "x-first-death-queue": "q"}, 4, 0},
		{"a producer's header", map[string]any{HeaderTask: "t", "trace": "abc"}, 4 + 1 + 5 + 5 + 3, 1},
		{"an oversized protocol header counts", map[string]any{HeaderTask: long}, 4 + 1 + 4 + 5 + 3000, 1},
		{"an oversized bookkeeping header counts", map[string]any{HeaderFirstError: long}, 4 + 1 + len(HeaderFirstError) + 5 + 3000, 1},
	}
	for _, tc := range tests {
		size, entries := UserHeaderSize(tc.h)
		if size != tc.size || entries != tc.entries {
			t.Errorf("%s: UserHeaderSize = %d bytes, %d entries; want %d, %d", tc.name, size, entries, tc.size, tc.entries)
		}
	}
}

func TestLimitsCheck(t *testing.T) {
	small := map[string]any{"task": "t", "k": "v"} // counted: 4 + 1 + 1 + 5 + 1 = 12 bytes
	big := map[string]any{"task": "t", "blob": strings.Repeat("b", 100)}
	tests := []struct {
		name    string
		l       Limits
		body    []byte
		h       map[string]any
		part    string // "" for no error
		size    int
		entries int
	}{
		{name: "under both", l: Limits{MaxBody: 10, MaxHeaders: 12}, body: []byte("0123456789"), h: small},
		{name: "zero limits mean none", l: Limits{}, body: make([]byte, 1<<20), h: big},
		{name: "negative limits mean none", l: Limits{MaxBody: -1, MaxHeaders: -1}, body: make([]byte, 1<<20), h: big},
		{name: "body one over", l: Limits{MaxBody: 9, MaxHeaders: 12}, body: []byte("0123456789"), h: small, part: PartBody, size: 10},
		{name: "headers one over", l: Limits{MaxBody: 10, MaxHeaders: 11}, body: []byte("x"), h: small, part: PartHeaders, size: 12, entries: 1},
		{name: "headers win over body", l: Limits{MaxBody: 1, MaxHeaders: 20}, body: []byte("0123456789"), h: big, part: PartHeaders, size: 4 + 1 + 4 + 5 + 100, entries: 1},
		{name: "x-death does not count", l: Limits{MaxHeaders: 12}, h: map[string]any{"k": "v", "x-death": []any{strings.Repeat("d", 500)}}},
	}
	for _, tc := range tests {
		err := tc.l.Check(tc.body, tc.h)
		if over := tc.l.HeadersOver(tc.h); over != (tc.part == PartHeaders) {
			t.Errorf("%s: HeadersOver = %v", tc.name, over)
		}
		if tc.part == "" {
			if err != nil {
				t.Errorf("%s: Check = %v, want nil", tc.name, err)
			}
			continue
		}
		var tl *TooLargeError
		if !errors.As(err, &tl) {
			t.Fatalf("%s: Check = %v (%T), want a *TooLargeError", tc.name, err, err)
		}
		limit := tc.l.MaxBody
		if tc.part == PartHeaders {
			limit = tc.l.MaxHeaders
		}
		if tl.Part != tc.part || tl.Size != tc.size || tl.Limit != limit || tl.Entries != tc.entries {
			t.Errorf("%s: got %+v, want part %q size %d limit %d entries %d", tc.name, *tl, tc.part, tc.size, limit, tc.entries)
		}
		if got := Reason(err); got != "too_large" {
			t.Errorf("%s: Reason = %q, want too_large", tc.name, got)
		}
	}
}

func TestTooLargeErrorText(t *testing.T) {
	tests := []struct {
		err  *TooLargeError
		want string
	}{
		{&TooLargeError{Part: PartBody, Size: 20, Limit: 10}, "task: message too large: body is 20 bytes, over the limit of 10 bytes"},
		{&TooLargeError{Task: "resize", Part: PartHeaders, Size: 128004, Limit: 65536, Entries: 4000},
			"task: message for resize too large: headers are 128004 bytes in 4000 entries, over the limit of 65536 bytes"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestSummarizeHeaders(t *testing.T) {
	h := map[string]any{
		HeaderTask: "resize", HeaderID: "abc", HeaderRetries: int64(2), HeaderETA: "2024-05-01T10:00:00Z",
		HeaderEnqueuedAt: int64(1714557600000000), HeaderFirstError: "db down",
		"x-death":     []any{table{"count": int64(1)}},
		"x-custom":    "small but not ours",
		HeaderExpires: strings.Repeat("e", 3000), // ours, but too big to keep
	}
	for i := range 1000 {
		h[fmt.Sprintf("h%04d", i)] = "v"
	}
	kept, dropped := SummarizeHeaders(h)
	want := map[string]any{HeaderTask: "resize", HeaderID: "abc", HeaderRetries: int64(2), HeaderETA: "2024-05-01T10:00:00Z",
		HeaderEnqueuedAt: int64(1714557600000000), HeaderFirstError: "db down"}
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
	for _, k := range []string{HeaderTask, HeaderID, HeaderRetries, HeaderETA, HeaderExpires, HeaderMaxAttempts, HeaderEnqueuedAt,
		HeaderFirstError, HeaderError, HeaderReason, HeaderAttempts, HeaderQueue, HeaderDiedAt} {
		h[k] = strings.Repeat("x", MaxOwnHeaderEntry-(1+len(k)+5)) // each entry exactly at the bound
	}
	for i := range 5000 {
		h[fmt.Sprintf("x-warren-extra-%d", i)] = "small"
	}
	kept, _ := SummarizeHeaders(h)
	if len(kept) != 13 {
		t.Errorf("kept %d headers, want the 13 known ones at the bound", len(kept))
	}
	if n, entries := UserHeaderSize(kept); entries != 0 {
		t.Errorf("UserHeaderSize counts %d bytes in %d entries of a summary; want none, or a retry would grow it", n, entries)
	}
	if n := HeaderTableSize(kept); n > 23<<10 {
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

// A producer's header value can be as long as a frame; the error quoting it
// must not be.
func TestHeaderErrorClipsLongValues(t *testing.T) {
	long := strings.Repeat("9", 100_000)
	for _, h := range []map[string]any{{HeaderRetries: long}, {HeaderETA: long}, {HeaderTask: []byte(long)}} {
		var m Message
		err := m.ParseHeaders(h)
		if err == nil {
			t.Fatalf("ParseHeaders(%d-byte value) succeeded", len(long))
		}
		if len(err.Error()) > 300 {
			t.Errorf("error is %d bytes: %.120s...", len(err.Error()), err)
		}
		if !strings.Contains(err.Error(), "bytes)") {
			t.Errorf("error %q does not say how long the value was", err)
		}
	}
	if got := clip("héllo"); got != "héllo" {
		t.Errorf("clip of a short string = %q", got)
	}
	// Cut on a rune boundary: 63 ASCII bytes then a 2-byte rune.
	if got := clip(strings.Repeat("a", 63) + "éééé"); !strings.HasPrefix(got, strings.Repeat("a", 63)+"…") {
		t.Errorf("clip split a rune: %q", got)
	}
}

// A task name is the producer's and may be as long as the frame; errors
// that name it stay short.
func TestErrorsClipTaskNames(t *testing.T) {
	long := strings.Repeat("t", 50_000)
	for _, err := range []error{
		&TooLargeError{Task: long, Part: PartBody, Size: 2, Limit: 1},
		&DecodeError{Task: long, Err: errors.New("bad")},
	} {
		if n := len(err.Error()); n > 300 {
			t.Errorf("%T error is %d bytes", err, n)
		}
		if !strings.Contains(err.Error(), "(50000 bytes)") {
			t.Errorf("%T error %q does not say how long the name was", err, err)
		}
	}
}
