package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// textCodec is a custom codec for tests: it carries a string payload as the
// raw body under text/plain.
type textCodec struct{}

func (textCodec) ContentType() string { return "text/plain" }

func (textCodec) Marshal(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, errors.New("textCodec: payload is not a string")
	}
	return []byte(s), nil
}

func (textCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return errors.New("textCodec: target is not a *string")
	}
	*p = string(data)
	return nil
}

// strictJSON stands in for a user's own JSON codec that replaces the default
// one under application/json.
type strictJSON struct{ JSON }

// failCodec fails every call, to test error paths.
type failCodec struct{}

var errCodec = errors.New("failCodec: always fails")

func (failCodec) ContentType() string                { return "application/x-fail" }
func (failCodec) Marshal(any) ([]byte, error)        { return nil, errCodec }
func (failCodec) Unmarshal(data []byte, v any) error { return errCodec }

func TestCodecsLookup(t *testing.T) {
	withText := func() *Codecs { var cs Codecs; cs.Add(textCodec{}); return &cs }
	withStrictJSON := func() *Codecs { var cs Codecs; cs.Add(strictJSON{}); return &cs }

	tests := []struct {
		name        string
		codecs      func() *Codecs
		contentType string
		want        Codec // nil: want ErrUnknownContentType
	}{
		{name: "empty means JSON", codecs: func() *Codecs { return &Codecs{} }, contentType: "", want: JSON{}},
		{name: "application/json", codecs: func() *Codecs { return &Codecs{} }, contentType: "application/json", want: JSON{}},
		{name: "case and parameters ignored", codecs: func() *Codecs { return &Codecs{} }, contentType: "Application/JSON; charset=utf-8", want: JSON{}},
		{name: "space before parameters", codecs: func() *Codecs { return &Codecs{} }, contentType: "application/json ; charset=utf-8", want: JSON{}},
		{name: "unknown type", codecs: func() *Codecs { return &Codecs{} }, contentType: "application/x-msgpack"},
		{name: "custom type unknown until added", codecs: func() *Codecs { return &Codecs{} }, contentType: "text/plain"},
		{name: "custom codec", codecs: withText, contentType: "text/plain", want: textCodec{}},
		{name: "custom codec with parameters", codecs: withText, contentType: "Text/Plain; charset=utf-8", want: textCodec{}},
		{name: "JSON still known beside a custom codec", codecs: withText, contentType: "application/json", want: JSON{}},
		{name: "custom codec replaces JSON", codecs: withStrictJSON, contentType: "application/json", want: strictJSON{}},
		{
			name: "empty content type follows a replaced JSON codec", codecs: withStrictJSON, contentType: "", want: strictJSON{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.codecs().Lookup(tc.contentType)
			if tc.want == nil {
				if !errors.Is(err, ErrUnknownContentType) {
					t.Fatalf("Lookup(%q) error = %v, want ErrUnknownContentType", tc.contentType, err)
				}
				if !strings.Contains(err.Error(), tc.contentType) {
					t.Errorf("error %q does not name the content type %q", err, tc.contentType)
				}
				if got != nil {
					t.Errorf("Lookup(%q) codec = %T, want nil with the error", tc.contentType, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup(%q) error = %v", tc.contentType, err)
			}
			if got != tc.want {
				t.Errorf("Lookup(%q) = %T, want %T", tc.contentType, got, tc.want)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	type payload struct {
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	c := JSON{}
	if c.ContentType() != ContentTypeJSON {
		t.Fatalf("ContentType() = %q, want %q", c.ContentType(), ContentTypeJSON)
	}
	body, err := c.Marshal(payload{Name: "/tmp/lolcat1.avi", Size: 1301013})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"/tmp/lolcat1.avi","size":1301013}`; string(body) != want {
		t.Errorf("Marshal = %s, want %s", body, want)
	}
	var got payload
	if err := c.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got != (payload{Name: "/tmp/lolcat1.avi", Size: 1301013}) {
		t.Errorf("Unmarshal = %+v", got)
	}
}

// encoding/json turns invalid UTF-8 into U+FFFD without a word; the JSON
// codec refuses it, saying where, so the handler never sees data the
// producer did not send.
func TestJSONRejectsInvalidUTF8(t *testing.T) {
	type payload struct {
		Note string `json:"note"`
	}
	tests := []struct {
		name string
		body string
		at   int
	}{
		{"latin-1 byte in a string", "{\"note\":\"caf\xe9\"}", 12},
		{"truncated sequence", "{\"note\":\"\xe2\x82\"}", 9},
		{"lone continuation byte", "{\"note\":\"a\x80\"}", 10},
		{"UTF-8 encoded surrogate", "{\"note\":\"\xed\xa0\x80\"}", 9},
		{"overlong encoding", "{\"note\":\"\xc0\xaf\"}", 9},
		{"invalid byte in a key", "{\"no\xfft\":\"x\"}", 4},
		{"invalid byte outside strings", "{\"note\":\"x\"}\xff", 12},
	}
	// The silent replacement this codec exists to refuse.
	var std payload
	if err := json.Unmarshal([]byte(tests[0].body), &std); err != nil || std.Note != "caf"+string(utf8.RuneError) {
		t.Errorf("encoding/json gave %q, %v; the codec's check assumes it substitutes U+FFFD", std.Note, err)
	}
	for _, tc := range tests {
		var p payload
		err := JSON{}.Unmarshal([]byte(tc.body), &p)
		if !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("%s: Unmarshal = %v, want ErrInvalidUTF8", tc.name, err)
			continue
		}
		if want := fmt.Sprintf("at byte %d of %d", tc.at, len(tc.body)); !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q, want it to say %q", tc.name, err, want)
		}
	}
	var p payload
	for _, ok := range []string{`{"note":"héllo wörld ✓ 🐇"}`, `{"note":"\ud83d\udc07"}`, ``} {
		err := JSON{}.Unmarshal([]byte(ok), &p)
		if errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("Unmarshal(%q) = %v: valid UTF-8 refused", ok, err)
		}
	}
}

// Deep nesting costs time linear in the body and ends in an error that says
// what is wrong; it never recurses deep enough to crash the worker.
func TestJSONNestingTooDeep(t *testing.T) {
	for _, body := range []string{
		strings.Repeat("[", 100_000),
		strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001),
		`{"note":` + strings.Repeat(`{"a":`, 100_000),
	} {
		var v any
		start := time.Now()
		err := JSON{}.Unmarshal([]byte(body), &v)
		took := time.Since(start)
		if !errors.Is(err, ErrNestingTooDeep) {
			t.Errorf("%.20s... (%d bytes): Unmarshal = %v, want ErrNestingTooDeep", body, len(body), err)
			continue
		}
		if !strings.Contains(err.Error(), "(10000 levels) at byte") {
			t.Errorf("error %q does not say the limit and where", err)
		}
		if took > time.Second {
			t.Errorf("%d bytes took %v to refuse", len(body), took)
		}
	}
	var v any
	if err := (JSON{}).Unmarshal([]byte(strings.Repeat("[", MaxJSONDepth)+strings.Repeat("]", MaxJSONDepth)), &v); err != nil {
		t.Errorf("nesting of exactly MaxJSONDepth refused: %v", err)
	}
}

func TestJSONSyntaxErrorSaysWhere(t *testing.T) {
	var v struct{ N int }
	err := JSON{}.Unmarshal([]byte(`{"n": `), &v)
	if err == nil || !strings.Contains(err.Error(), "invalid JSON at byte 6 of 6") {
		t.Errorf("Unmarshal = %v, want the offset", err)
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("error %v does not wrap the *json.SyntaxError", err)
	}
	err = JSON{}.Unmarshal([]byte(`{"n": "seven"}`), &v)
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		t.Errorf("type error = %v, want the *json.UnmarshalTypeError as is", err)
	}
}

// Through the registry, a body with invalid UTF-8 is undecodable and the
// handler does not run.
func TestDispatchInvalidUTF8IsUndecodable(t *testing.T) {
	ran := false
	r := NewRegistry()
	r.MustRegister(Define[struct{ Note string }]("note").Handler(func(context.Context, struct{ Note string }) error {
		ran = true
		return nil
	}))
	err := r.Dispatch(context.Background(), &Message{Task: "note", Body: []byte("{\"Note\":\"\xff\"}")})
	if Reason(err) != "undecodable" || !errors.Is(err, ErrInvalidUTF8) || ran {
		t.Errorf("Dispatch = %v (reason %q, handler ran %v), want undecodable wrapping ErrInvalidUTF8, not run", err, Reason(err), ran)
	}
}
