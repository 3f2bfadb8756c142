package task

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseHeadersDefaults(t *testing.T) {
	for _, h := range []map[string]any{nil, {}, {"x-custom": "kept"}} {
		m := Message{}
		if err := m.ParseHeaders(h); err != nil {
			t.Fatalf("ParseHeaders(%v) = %v", h, err)
		}
		if m.Task != "" || m.ID != "" || m.Retries != 0 || !m.ETA.IsZero() || !m.Expires.IsZero() {
			t.Errorf("ParseHeaders(%v) = %+v, want every protocol field at its default", h, m)
		}
		if len(h) > 0 && m.Headers["x-custom"] != "kept" {
			t.Errorf("Headers = %v, want the table kept as is", m.Headers)
		}
	}
}

func TestParseHeadersGood(t *testing.T) {
	eta := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		h       map[string]any
		want    Message
		startID string // Message.ID before parsing, as set from message_id
	}{
		{name: "task and id", h: map[string]any{"task": "process_media", "id": "abc"}, want: Message{Task: "process_media", ID: "abc"}},
		{name: "message_id wins over id header", startID: "from-props", h: map[string]any{"id": "from-header"}, want: Message{ID: "from-props"}},
		{name: "retries int", h: map[string]any{"retries": 3}, want: Message{Retries: 3}},
		{name: "retries int8", h: map[string]any{"retries": int8(3)}, want: Message{Retries: 3}},
		{name: "retries int16", h: map[string]any{"retries": int16(300)}, want: Message{Retries: 300}},
		{name: "retries int32", h: map[string]any{"retries": int32(70000)}, want: Message{Retries: 70000}},
		{name: "retries int64", h: map[string]any{"retries": int64(5)}, want: Message{Retries: 5}},
		{name: "retries int64 max accepted", h: map[string]any{"retries": int64(math.MaxInt32)}, want: Message{Retries: math.MaxInt32}},
		{name: "retries uint8", h: map[string]any{"retries": uint8(255)}, want: Message{Retries: 255}},
		{name: "retries uint16", h: map[string]any{"retries": uint16(65535)}, want: Message{Retries: 65535}},
		{name: "retries uint32", h: map[string]any{"retries": uint32(9)}, want: Message{Retries: 9}},
		{name: "retries uint64", h: map[string]any{"retries": uint64(9)}, want: Message{Retries: 9}},
		{name: "retries whole float32", h: map[string]any{"retries": float32(2)}, want: Message{Retries: 2}},
		{name: "retries whole float64", h: map[string]any{"retries": float64(4)}, want: Message{Retries: 4}},
		{name: "retries zero", h: map[string]any{"retries": int64(0)}, want: Message{}},
		{name: "max attempts int64", h: map[string]any{"x-warren-max-attempts": int64(5)}, want: Message{MaxAttempts: 5}},
		{name: "max attempts int8", h: map[string]any{"x-warren-max-attempts": int8(1)}, want: Message{MaxAttempts: 1}},
		{name: "eta UTC", h: map[string]any{"eta": "2024-05-01T10:00:00Z"}, want: Message{ETA: eta}},
		{name: "eta with offset", h: map[string]any{"eta": "2024-05-01T12:00:00+02:00"}, want: Message{ETA: eta}},
		{name: "eta with microseconds, as Celery writes it", h: map[string]any{"eta": "2024-05-01T10:00:00.000001+00:00"}, want: Message{ETA: eta.Add(time.Microsecond)}},
		{name: "eta as AMQP timestamp", h: map[string]any{"eta": eta}, want: Message{ETA: eta}},
		{name: "eta without an offset, as Python's isoformat of a naive datetime: UTC, as Celery reads it", h: map[string]any{"eta": "2024-05-01T10:00:00.000001"}, want: Message{ETA: eta.Add(time.Microsecond)}},
		{name: "timelimit [hard, soft]: the lower", h: map[string]any{"timelimit": []any{int64(30), float64(2.5)}}, want: Message{TimeLimit: 2500 * time.Millisecond}},
		{name: "timelimit hard only", h: map[string]any{"timelimit": []any{int32(7), nil}}, want: Message{TimeLimit: 7 * time.Second}},
		{name: "timelimit soft only", h: map[string]any{"timelimit": []any{nil, int64(3)}}, want: Message{TimeLimit: 3 * time.Second}},
		{name: "timelimit none, as Celery's default", h: map[string]any{"timelimit": []any{nil, nil}}, want: Message{}},
		{name: "timelimit zero is none", h: map[string]any{"timelimit": []any{int64(0), nil}}, want: Message{}},
		{name: "timelimit null", h: map[string]any{"timelimit": nil}, want: Message{}},
		{name: "eta empty string", h: map[string]any{"eta": ""}, want: Message{}},
		{name: "eta nil, as Celery's None", h: map[string]any{"eta": nil}, want: Message{}},
		{name: "expires UTC", h: map[string]any{"expires": "2024-05-01T10:00:00Z"}, want: Message{Expires: eta}},
		{name: "expires as AMQP timestamp", h: map[string]any{"expires": eta}, want: Message{Expires: eta}},
		{name: "expires nil", h: map[string]any{"expires": nil}, want: Message{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Message{ID: tc.startID}
			if err := m.ParseHeaders(tc.h); err != nil {
				t.Fatalf("ParseHeaders(%v) = %v", tc.h, err)
			}
			if m.Task != tc.want.Task || m.ID != tc.want.ID || m.Retries != tc.want.Retries || m.MaxAttempts != tc.want.MaxAttempts || m.TimeLimit != tc.want.TimeLimit {
				t.Errorf("got task=%q id=%q retries=%d max-attempts=%d timelimit=%v, want task=%q id=%q retries=%d max-attempts=%d timelimit=%v",
					m.Task, m.ID, m.Retries, m.MaxAttempts, m.TimeLimit, tc.want.Task, tc.want.ID, tc.want.Retries, tc.want.MaxAttempts, tc.want.TimeLimit)
			}
			if !m.ETA.Equal(tc.want.ETA) {
				t.Errorf("ETA = %v, want %v", m.ETA, tc.want.ETA)
			}
			if !m.Expires.Equal(tc.want.Expires) {
				t.Errorf("Expires = %v, want %v", m.Expires, tc.want.Expires)
			}
		})
	}
}

func TestParseHeadersBad(t *testing.T) {
	tests := []struct {
		name   string
		h      map[string]any
		header string // the header the error must name
	}{
		{name: "task not a string", h: map[string]any{"task": 42}, header: "task"},
		{name: "task as bytes", h: map[string]any{"task": []byte("process_media")}, header: "task"},
		{name: "task nil", h: map[string]any{"task": nil}, header: "task"},
		{name: "id as bytes", h: map[string]any{"id": []byte("abc")}, header: "id"},
		{name: "id not a string", h: map[string]any{"id": int64(7)}, header: "id"},
		{name: "retries string", h: map[string]any{"retries": "x"}, header: "retries"},
		{name: "retries numeric string", h: map[string]any{"retries": "3"}, header: "retries"},
		{name: "retries negative int64", h: map[string]any{"retries": int64(-1)}, header: "retries"},
		{name: "retries negative int8", h: map[string]any{"retries": int8(-1)}, header: "retries"},
		{name: "retries negative float", h: map[string]any{"retries": float64(-2)}, header: "retries"},
		{name: "retries fraction", h: map[string]any{"retries": 1.5}, header: "retries"},
		{name: "retries NaN", h: map[string]any{"retries": math.NaN()}, header: "retries"},
		{name: "retries infinity", h: map[string]any{"retries": math.Inf(1)}, header: "retries"},
		{name: "retries huge int64", h: map[string]any{"retries": int64(math.MaxInt64)}, header: "retries"},
		{name: "retries just past int32", h: map[string]any{"retries": int64(math.MaxInt32) + 1}, header: "retries"},
		{name: "retries huge uint64", h: map[string]any{"retries": uint64(math.MaxUint64)}, header: "retries"},
		{name: "retries huge float", h: map[string]any{"retries": 1e300}, header: "retries"},
		{name: "retries bool", h: map[string]any{"retries": true}, header: "retries"},
		{name: "max attempts zero", h: map[string]any{"x-warren-max-attempts": int64(0)}, header: "x-warren-max-attempts"},
		{name: "max attempts negative", h: map[string]any{"x-warren-max-attempts": int32(-3)}, header: "x-warren-max-attempts"},
		{name: "max attempts string", h: map[string]any{"x-warren-max-attempts": "5"}, header: "x-warren-max-attempts"},
		{name: "max attempts huge", h: map[string]any{"x-warren-max-attempts": uint64(1) << 40}, header: "x-warren-max-attempts"},
		{name: "eta garbage", h: map[string]any{"eta": "garbage"}, header: "eta"},
		{name: "eta date only", h: map[string]any{"eta": "2024-05-01"}, header: "eta"},
		{name: "timelimit not a list", h: map[string]any{"timelimit": int64(5)}, header: "timelimit"},
		{name: "timelimit of three", h: map[string]any{"timelimit": []any{int64(1), int64(2), int64(3)}}, header: "timelimit"},
		{name: "timelimit negative", h: map[string]any{"timelimit": []any{int64(-1), nil}}, header: "timelimit"},
		{name: "timelimit string", h: map[string]any{"timelimit": []any{"10", nil}}, header: "timelimit"},
		{name: "timelimit NaN", h: map[string]any{"timelimit": []any{math.NaN(), nil}}, header: "timelimit"},
		{name: "timelimit past a Duration", h: map[string]any{"timelimit": []any{1e300, nil}}, header: "timelimit"},
		{name: "eta number", h: map[string]any{"eta": 12}, header: "eta"},
		{name: "eta bytes", h: map[string]any{"eta": []byte("2024-05-01T10:00:00Z")}, header: "eta"},
		{name: "expires garbage", h: map[string]any{"expires": "garbage"}, header: "expires"},
		{name: "expires number", h: map[string]any{"expires": 12}, header: "expires"},
		{name: "expires float", h: map[string]any{"expires": 1714557600.0}, header: "expires"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			err := m.ParseHeaders(tc.h)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("ParseHeaders(%v) = %v (%T), want a *DecodeError", tc.h, err, err)
			}
			if want := fmt.Sprintf("%q", tc.header); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name header %s", err, want)
			}
			if got := Reason(err); got != "undecodable" {
				t.Errorf("Reason = %q, want undecodable", got)
			}
		})
	}
}

// A bad header after a good task header names the task, so the dead letter
// and the logs say which task it was.
func TestParseHeadersErrorNamesTask(t *testing.T) {
	for _, bad := range []string{HeaderRetries, HeaderMaxAttempts, HeaderETA, HeaderExpires} {
		var m Message
		err := m.ParseHeaders(map[string]any{"task": "process_media", bad: "garbage"})
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%s: error = %v, want *DecodeError", bad, err)
		}
		if de.Task != "process_media" {
			t.Errorf("%s: DecodeError.Task = %q, want process_media", bad, de.Task)
		}
		if !strings.Contains(err.Error(), "process_media") {
			t.Errorf("%s: error %q does not name the task", bad, err)
		}
	}
}

func TestBuildHeaders(t *testing.T) {
	eta := time.Date(2024, 5, 1, 12, 0, 0, 500, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name  string
		m     Message
		extra map[string]any
		want  map[string]any
	}{
		{
			name: "zero fields omitted",
			m:    Message{Task: "process_media", ID: "abc"},
			want: map[string]any{"task": "process_media", "id": "abc"},
		},
		{
			name: "every field",
			m:    Message{Task: "t", ID: "abc", Retries: 2, MaxAttempts: 4, ETA: eta, Expires: eta.Add(time.Hour)},
			want: map[string]any{
				"task": "t", "id": "abc", "retries": int64(2), "x-warren-max-attempts": int64(4),
				"eta": "2024-05-01T10:00:00.0000005Z", "expires": "2024-05-01T11:00:00.0000005Z",
			},
		},
		{
			name:  "extra kept",
			m:     Message{Task: "t", ID: "abc"},
			extra: map[string]any{"x-custom": int32(1), "tenant": "acme"},
			want:  map[string]any{"task": "t", "id": "abc", "x-custom": int32(1), "tenant": "acme"},
		},
		{
			name:  "extra never overrides set fields",
			m:     Message{Task: "t", ID: "abc", Retries: 1, MaxAttempts: 3, ETA: eta, Expires: eta},
			extra: map[string]any{"task": "evil", "id": "evil", "retries": int64(9), "x-warren-max-attempts": int64(9), "eta": "garbage", "expires": "garbage"},
			want: map[string]any{
				"task": "t", "id": "abc", "retries": int64(1), "x-warren-max-attempts": int64(3),
				"eta": "2024-05-01T10:00:00.0000005Z", "expires": "2024-05-01T10:00:00.0000005Z",
			},
		},
		{
			name:  "extra never supplies protocol headers for zero fields",
			m:     Message{Task: "t", ID: "abc"},
			extra: map[string]any{"retries": "x", "x-warren-max-attempts": int64(0), "eta": "2999-01-01T00:00:00Z", "expires": "garbage"},
			want:  map[string]any{"task": "t", "id": "abc"},
		},
		{
			name: "empty task and id omitted",
			m:    Message{},
			want: map[string]any{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before map[string]any
			if tc.extra != nil {
				before = maps.Clone(tc.extra)
			}
			got := tc.m.BuildHeaders(tc.extra)
			if !maps.Equal(got, tc.want) {
				t.Errorf("BuildHeaders = %v, want %v", got, tc.want)
			}
			if tc.extra != nil && !maps.Equal(tc.extra, before) {
				t.Errorf("BuildHeaders changed extra to %v", tc.extra)
			}
		})
	}
}

func TestBuildHeadersParseHeadersRoundTrip(t *testing.T) {
	in := Message{
		Task:        "process_media",
		ID:          "0f8fad5b-d9cb-469f-a165-70867728950e",
		Retries:     7,
		MaxAttempts: 9,
		ETA:         time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600)),
		Expires:     time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC),
	}
	var out Message
	if err := out.ParseHeaders(in.BuildHeaders(nil)); err != nil {
		t.Fatal(err)
	}
	if out.Task != in.Task || out.ID != in.ID || out.Retries != in.Retries || out.MaxAttempts != in.MaxAttempts {
		t.Errorf("round trip = task=%q id=%q retries=%d max-attempts=%d, want %q %q %d %d",
			out.Task, out.ID, out.Retries, out.MaxAttempts, in.Task, in.ID, in.Retries, in.MaxAttempts)
	}
	if !out.ETA.Equal(in.ETA) {
		t.Errorf("ETA = %v, want %v (nanoseconds must survive)", out.ETA, in.ETA)
	}
	if !out.Expires.Equal(in.Expires) {
		t.Errorf("Expires = %v, want %v", out.Expires, in.Expires)
	}
}

func TestIsBrokerHeader(t *testing.T) {
	tests := map[string]bool{
		"x-death":                 true,
		"x-first-death-exchange":  true,
		"x-first-death-queue":     true,
		"x-first-death-reason":    true,
		"x-last-death-exchange":   true,
		"x-last-death-queue":      true,
		"x-last-death-reason":     true,
		"x-deaths":                false,
		"x-warren-reason":         false,
		"x-warren-original-queue": false,
		"task":                    false,
		"retries":                 false,
		"X-Death-Count":           false,
		"":                        false,
	}
	for name, want := range tests {
		if got := IsBrokerHeader(name); got != want {
			t.Errorf("IsBrokerHeader(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "unknown task", err: fmt.Errorf("%w: %q", ErrUnknownTask, "nope"), want: "unknown_task"},
		{name: "no task name", err: ErrNoTaskName, want: "unknown_task"},
		{name: "decode error", err: &DecodeError{Task: "t", Err: errors.New("bad")}, want: "undecodable"},
		{name: "wrapped decode error", err: fmt.Errorf("worker: %w", &DecodeError{Err: errors.New("bad")}), want: "undecodable"},
		{name: "unknown content type", err: &DecodeError{Err: ErrUnknownContentType}, want: "undecodable"},
		{name: "too large", err: &TooLargeError{Part: PartBody, Size: 2, Limit: 1}, want: "too_large"},
		{name: "wrapped too large", err: fmt.Errorf("worker: %w", &TooLargeError{Part: PartHeaders}), want: "too_large"},
		{name: "panic is the retry policy's to judge", err: &PanicError{Value: "boom"}, want: ""},
		{name: "wrapped panic", err: fmt.Errorf("run: %w", &PanicError{Value: "boom"}), want: ""},
		{name: "handler error is the retry policy's to judge", err: errors.New("disk full"), want: ""},
	}
	for _, tc := range tests {
		if got := Reason(tc.err); string(got) != tc.want {
			t.Errorf("%s: Reason(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestErrorTexts(t *testing.T) {
	inner := errors.New("unexpected end of JSON input")
	tests := []struct {
		err  error
		want string
	}{
		{&DecodeError{Err: inner}, "task: undecodable message: unexpected end of JSON input"},
		{&DecodeError{Task: "process_media", Err: inner}, "task: undecodable message for process_media: unexpected end of JSON input"},
		{&PanicError{Value: "boom"}, "task: handler panicked: boom"},
		{&PanicError{Value: errors.New("nil map")}, "task: handler panicked: nil map"},
		{&PanicError{Value: 42}, "task: handler panicked: 42"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	if !errors.Is(&DecodeError{Err: inner}, inner) {
		t.Error("DecodeError does not unwrap to its cause")
	}
}
