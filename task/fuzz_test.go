package task

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type fuzzPayload struct {
	Name string            `json:"name"`
	Size int               `json:"size"`
	Tags []string          `json:"tags"`
	Meta map[string]string `json:"meta"`
}

var errFuzzHandler = errors.New("fuzz handler failed")

// FuzzDecode feeds hostile deliveries through ParseHeaders and Dispatch, as a
// worker does with whatever a queue holds. Bad input must come back as an
// error the worker can dead-letter, never as a panic or an unclassified error.
func FuzzDecode(f *testing.F) {
	const name = "process_media"
	f.Add(name, []byte(`{"name":"/tmp/lolcat1.avi","size":1301013}`), "application/json", "0", int64(0), "")
	f.Add(name, []byte(`{"name":"fail"}`), "", "3", int64(3), "2024-05-01T10:00:00Z")
	f.Add(name, []byte(`{"name":"a","tags":["x"],"meta":{"k":"v"}}`), "Application/JSON; charset=utf-8", "", int64(1), "2024-05-01T10:00:00.123456+00:00")
	f.Add("", []byte(`{}`), "application/json", "", int64(0), "")
	f.Add("unknown", []byte(`{}`), "application/json", "", int64(0), "")
	f.Add(name, []byte(`{}`), "application/x-msgpack", "", int64(0), "")
	f.Add(name, []byte(`{}`), "application/json; charset", "", int64(0), "")
	f.Add(name, []byte(strings.Repeat("[", 10000)), "application/json", "1", int64(1), "")
	f.Add(name, []byte(`{"meta":`+strings.Repeat(`{"a":`, 10001)+`1`+strings.Repeat(`}`, 10001)+`}`), "", "", int64(0), "")
	f.Add(name, []byte("{\"name\":\"\xff\xfe\xfd\"}"), "application/json", "\xff", int64(0), "\xff")
	f.Add(name, []byte(`{"size":99999999999999999999999999999}`), "application/json", "99999999999999999999", int64(math.MaxInt64), "")
	f.Add(name, []byte(`{"size":1e999}`), "application/json", "-1", int64(-1), "")
	f.Add(name, []byte(`{"size":-9223372036854775809}`), "application/json", "1.5", int64(math.MinInt64), "")
	f.Add(name, []byte(`null`), "", "", int64(math.MaxInt32), "9999-12-31T23:59:59.999999999+14:00")
	f.Add(name, []byte(``), "", "", int64(math.MaxInt32)+1, "garbage")
	f.Add(name, []byte(`{"name":"a"} trailing`), "", "", int64(0), "2024-13-45T99:99:99Z")
	f.Add(name, []byte(`"\ud800"`), "text/plain", "", int64(0), "0000-01-01T00:00:00Z")

	f.Fuzz(func(t *testing.T, taskName string, body []byte, contentType, retriesStr string, retriesInt int64, eta string) {
		var got *fuzzPayload
		r := NewRegistry()
		r.MustRegister(Define[fuzzPayload](name).Handler(func(ctx context.Context, p fuzzPayload) error {
			if _, ok := FromContext(ctx); !ok {
				t.Error("handler context carries no message")
			}
			got = &p
			if p.Name == "fail" {
				return errFuzzHandler
			}
			return nil
		}))

		// retries as a string: never a valid type, always a DecodeError.
		var sm Message
		err := sm.ParseHeaders(map[string]any{HeaderTask: taskName, HeaderRetries: retriesStr, HeaderETA: eta})
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("ParseHeaders(retries=%q) = %v, want a *DecodeError", retriesStr, err)
		}

		// retries as an int64, as amqp091-go delivers a long-long header.
		m := Message{ContentType: contentType, Body: body}
		err = m.ParseHeaders(map[string]any{HeaderTask: taskName, HeaderRetries: retriesInt, HeaderETA: eta, HeaderExpires: eta})
		wantETA, etaErr := time.Parse(time.RFC3339Nano, eta)
		if etaErr != nil { // Python's isoformat() of a naive datetime: UTC
			wantETA, etaErr = time.Parse("2006-01-02T15:04:05.999999999", eta)
		}
		retriesOK := retriesInt >= 0 && retriesInt <= math.MaxInt32
		switch {
		case err != nil:
			if !errors.As(err, &de) {
				t.Fatalf("ParseHeaders = %v (%T), want a *DecodeError", err, err)
			}
			if retriesOK && (eta == "" || etaErr == nil) {
				t.Fatalf("ParseHeaders rejected valid headers (retries=%d, eta=%q): %v", retriesInt, eta, err)
			}
		case !retriesOK:
			t.Fatalf("ParseHeaders accepted retries=%d", retriesInt)
		case eta != "" && etaErr != nil:
			t.Fatalf("ParseHeaders accepted eta=%q", eta)
		default:
			if m.Task != taskName || m.Retries != int(retriesInt) {
				t.Fatalf("ParseHeaders gave task=%q retries=%d, want %q %d", m.Task, m.Retries, taskName, retriesInt)
			}
			if eta != "" && (!m.ETA.Equal(wantETA) || !m.Expires.Equal(wantETA)) {
				t.Fatalf("ETA/Expires = %v/%v, want %v", m.ETA, m.Expires, wantETA)
			}
		}
		m.Task = taskName // a worker dispatches to dead-letter by reason either way

		var panicked any
		func() {
			defer func() { panicked = recover() }()
			err = r.Dispatch(context.Background(), &m)
		}()
		if panicked != nil {
			t.Fatalf("Dispatch panicked: %v", panicked)
		}

		var pe *PanicError
		switch {
		case err == nil:
			if got == nil {
				t.Fatal("Dispatch succeeded without running the handler")
			}
			if !utf8.Valid(body) {
				t.Fatalf("Dispatch succeeded on a body that is not UTF-8: %q", body)
			}
			var want fuzzPayload
			if jerr := json.Unmarshal(body, &want); jerr != nil {
				t.Fatalf("Dispatch succeeded on a body encoding/json rejects: %v", jerr)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("handler got %+v, want %+v", *got, want)
			}
		case err == errFuzzHandler:
			if got == nil || got.Name != "fail" {
				t.Fatalf("handler error without the handler failing: %+v", got)
			}
		case errors.Is(err, ErrNoTaskName):
			if taskName != "" {
				t.Fatalf("ErrNoTaskName for task %q", taskName)
			}
		case errors.Is(err, ErrUnknownTask):
			if taskName == name || taskName == "" {
				t.Fatalf("ErrUnknownTask for task %q", taskName)
			}
		case errors.As(err, &de):
			if got != nil {
				t.Fatalf("handler ran although decoding failed: %v", err)
			}
			// Stricter than encoding/json only on invalid UTF-8.
			var std fuzzPayload
			_, lerr := (&Codecs{}).Lookup(contentType)
			if m.Task == name && lerr == nil && json.Unmarshal(body, &std) == nil && !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("Dispatch refused a body encoding/json takes, for a reason other than UTF-8: %v", err)
			}
		case errors.As(err, &pe):
			t.Fatalf("decoding panicked inside Dispatch: %v\n%s", pe.Value, pe.Stack)
		default:
			t.Fatalf("Dispatch = %v (%T), not a classified error", err, err)
		}
		if reason := Reason(err); err != nil && reason != "unknown_task" && reason != "undecodable" && reason != "" {
			t.Fatalf("Reason(%v) = %q", err, reason)
		}
	})
}
