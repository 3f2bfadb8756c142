package result

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/outcome"
)

// celeryDate is date_done as EncodeCelery writes it: naive UTC with
// microseconds, as Celery's isoformat() does.
var celeryDate = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$`)

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s is not JSON: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s is not JSON: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestEncodeCelery(t *testing.T) {
	tests := []struct {
		name          string
		u             Update
		wantResult    string
		wantTraceback any // nil for null, else the string
		wantDone      bool
	}{
		{"success", Update{ID: "t1", State: Success, Result: json.RawMessage(`{"n": 3, "s": [1, "a"]}`)},
			`{"n":3,"s":[1,"a"]}`, nil, true},
		{"success without a result", Update{ID: "t1", State: Success}, `null`, nil, true},
		{"failure", Update{ID: "t2", State: Failure, Error: "boom", Kind: outcome.ReasonPermanent, Retries: 2},
			`{"exc_type":"TaskError","exc_message":["permanent: boom"],"exc_module":null}`, "permanent: boom", true},
		{"failure without a kind", Update{ID: "t2", State: Failure, Error: "boom"},
			`{"exc_type":"TaskError","exc_message":["boom"],"exc_module":null}`, "boom", true},
		{"retry", Update{ID: "t3", State: Retry, Error: "flaky", Retries: 1},
			`{"exc_type":"TaskError","exc_message":["flaky"],"exc_module":null}`, "flaky", false},
		{"started", Update{ID: "t4", State: Started}, `null`, nil, false},
		{"expired: revoked, as Celery reports it", Update{ID: "t5", State: Failure, Error: "expired at 2026-12-03T18:52:19Z", Kind: outcome.ReasonExpired},
			`{"exc_type":"TaskRevokedError","exc_message":["expired"],"exc_module":"celery.exceptions"}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().UTC().Truncate(time.Microsecond)
			b, err := tt.u.EncodeCelery()
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("EncodeCelery = %s, not a JSON object: %v", b, err)
			}
			for _, k := range []string{"task_id", "status", "result", "traceback", "children"} {
				if _, ok := m[k]; !ok {
					t.Errorf("EncodeCelery = %s, missing %q", b, k)
				}
			}
			if got := string(m["task_id"]); got != `"`+tt.u.ID+`"` {
				t.Errorf("task_id = %s, want %q", got, tt.u.ID)
			}
			wantStatus := string(tt.u.State)
			if tt.u.Kind == outcome.ReasonExpired {
				wantStatus = "REVOKED"
			}
			if got := string(m["status"]); got != `"`+wantStatus+`"` {
				t.Errorf("status = %s, want %q", got, wantStatus)
			}
			if !sameJSON(t, m["result"], []byte(tt.wantResult)) {
				t.Errorf("result = %s, want %s", m["result"], tt.wantResult)
			}
			var tb any
			_ = json.Unmarshal(m["traceback"], &tb)
			if tb != tt.wantTraceback {
				t.Errorf("traceback = %s, want %#v", m["traceback"], tt.wantTraceback)
			}
			if got := string(m["children"]); got != `[]` {
				t.Errorf("children = %s, want []", got)
			}
			var done string
			_ = json.Unmarshal(m["date_done"], &done)
			if !tt.wantDone {
				if done != "" {
					t.Errorf("date_done = %s, want none before the task is done", m["date_done"])
				}
				return
			}
			if !celeryDate.MatchString(done) {
				t.Fatalf("date_done = %q, want naive ISO with microseconds", done)
			}
			at, err := time.Parse("2006-01-02T15:04:05.999999", done)
			if err != nil {
				t.Fatal(err)
			}
			if at.Before(before) || at.After(time.Now().UTC()) {
				t.Errorf("date_done = %v, want between %v and now (UTC)", at, before)
			}
		})
	}
}

func TestDecodeUpdateCelery(t *testing.T) {
	const done = `"traceback":null,"children":[],"date_done":"2024-05-01T10:00:00.000000"`
	tests := []struct {
		name    string
		body    string
		want    Update
		wantErr bool
	}{
		{name: "success", body: `{"task_id":"t1","status":"SUCCESS","result":{"n":3},` + done + `}`,
			want: Update{ID: "t1", State: Success, Result: json.RawMessage(`{"n":3}`)}},
		{name: "success of None", body: `{"task_id":"t1","status":"SUCCESS","result":null,` + done + `}`,
			want: Update{ID: "t1", State: Success, Result: json.RawMessage(`null`)}},
		{name: "failure", body: `{"task_id":"t2","status":"FAILURE","result":{"exc_type":"ValueError","exc_message":["bad"],"exc_module":"builtins"},"traceback":"Traceback...","children":[]}`,
			want: Update{ID: "t2", State: Failure, Kind: outcome.ReasonPermanent, Error: "ValueError: bad"}},
		{name: "failure with several args", body: `{"task_id":"t2","status":"FAILURE","result":{"exc_type":"KeyError","exc_message":["a",1],"exc_module":"builtins"}}`,
			want: Update{ID: "t2", State: Failure, Kind: outcome.ReasonPermanent, Error: `KeyError: ["a",1]`}},
		{name: "failure without a message", body: `{"task_id":"t2","status":"FAILURE","result":{"exc_type":"Boom","exc_message":[],"exc_module":"app"}}`,
			want: Update{ID: "t2", State: Failure, Kind: outcome.ReasonPermanent, Error: "Boom"}},
		{name: "a Go worker's failure keeps its kind", body: `{"task_id":"t2","status":"FAILURE","result":{"exc_type":"TaskError","exc_message":["exhausted: flaky"],"exc_module":null}}`,
			want: Update{ID: "t2", State: Failure, Kind: outcome.ReasonExhausted, Error: "flaky"}},
		{name: "a Python TaskError is Python's", body: `{"task_id":"t2","status":"FAILURE","result":{"exc_type":"TaskError","exc_message":["exhausted: flaky"],"exc_module":"app.errors"}}`,
			want: Update{ID: "t2", State: Failure, Kind: outcome.ReasonPermanent, Error: "TaskError: exhausted: flaky"}},
		{name: "retry", body: `{"task_id":"t3","status":"RETRY","result":{"exc_type":"Retry","exc_message":["later"],"exc_module":"celery.exceptions"},"traceback":"..."}`,
			want: Update{ID: "t3", State: Retry, Error: "Retry: later"}},
		{name: "revoked", body: `{"task_id":"t4","status":"REVOKED","result":{"exc_type":"TaskRevokedError","exc_message":["expired"],"exc_module":"celery.exceptions"}}`,
			want: Update{ID: "t4", State: Failure, Kind: outcome.ReasonExpired, Error: "revoked: TaskRevokedError: expired"}},
		{name: "received", body: `{"task_id":"t5","status":"RECEIVED","result":null}`, want: Update{ID: "t5", State: Started}},
		{name: "started", body: `{"task_id":"t5","status":"STARTED","result":{"pid":12,"hostname":"celery@h"}}`, want: Update{ID: "t5", State: Started}},
		{name: "custom state", body: `{"task_id":"t5","status":"PROGRESS","result":{"done":3}}`, want: Update{ID: "t5", State: Started}},
		{name: "pending", body: `{"task_id":"t6","status":"PENDING","result":null}`, want: Update{ID: "t6", State: Pending}},
		{name: "warren success", body: `{"id":"w1","state":"SUCCESS","result":{"n":1},"retries":0}`,
			want: Update{ID: "w1", State: Success, Result: json.RawMessage(`{"n":1}`)}},
		{name: "warren failure", body: `{"id":"w2","state":"FAILURE","error":"no such account","kind":"exhausted","retries":4}`,
			want: Update{ID: "w2", State: Failure, Error: "no such account", Kind: outcome.ReasonExhausted, Retries: 4}},
		{name: "warren retry", body: `{"id":"w3","state":"RETRY","error":"flaky","retries":1}`,
			want: Update{ID: "w3", State: Retry, Error: "flaky", Retries: 1}},
		{name: "neither state nor status", body: `{"task_id":"t7","result":1}`, wantErr: true},
		{name: "empty object", body: `{}`, wantErr: true},
		{name: "not JSON", body: `SUCCESS`, wantErr: true},
		{name: "status not a string", body: `{"task_id":"t8","status":1}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeUpdate([]byte(tt.body))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("DecodeUpdate(%s) = %+v, want an error", tt.body, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeUpdate(%s) = %v", tt.body, err)
			}
			gotResult, wantResult := got.Result, tt.want.Result
			got.Result, tt.want.Result = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeUpdate(%s) = %+v, want %+v", tt.body, got, tt.want)
			}
			if (gotResult == nil) != (wantResult == nil) || wantResult != nil && !sameJSON(t, gotResult, wantResult) {
				t.Errorf("DecodeUpdate(%s).Result = %s, want %s", tt.body, gotResult, wantResult)
			}
			if final := tt.want.State.Final(); got.State.Final() != final {
				t.Errorf("DecodeUpdate(%s) final = %v, want %v", tt.body, !final, final)
			}
		})
	}
}

func TestCeleryRoundTrip(t *testing.T) {
	for _, res := range []string{`{"n":3}`, `[1,"a",null]`, `"text"`, `12.5`, `true`, `null`} {
		u := Update{ID: "t1", State: Success, Result: json.RawMessage(res)}
		b, err := u.EncodeCelery()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeUpdate(b)
		if err != nil {
			t.Fatalf("DecodeUpdate(%s) = %v", b, err)
		}
		if got.ID != u.ID || got.State != Success || !sameJSON(t, got.Result, u.Result) {
			t.Errorf("round trip of %s = %+v (result %s)", res, got, got.Result)
		}
	}
	for _, u := range []Update{
		{ID: "t2", State: Failure, Error: "no such account", Kind: outcome.ReasonPermanent},
		{ID: "t2", State: Failure, Error: `quoted "text", ünïcode`, Kind: outcome.ReasonExhausted},
		{ID: "t3", State: Retry, Error: "flaky"},
		{ID: "t4", State: Failure, Error: "unknown_task in the text: not a prefix", Kind: outcome.ReasonPermanent},
	} {
		b, err := u.EncodeCelery()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeUpdate(b)
		if err != nil {
			t.Fatalf("DecodeUpdate(%s) = %v", b, err)
		}
		// A Go worker's failure, read by a Go caller, keeps its kind and text.
		if got.ID != u.ID || got.State != u.State || got.Kind != u.Kind || !strings.HasSuffix(got.Error, u.Error) || (u.State == Failure && got.Error != u.Error) {
			t.Errorf("round trip of %+v = %+v", u, got)
		}
	}
}
