package celery_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/celery"
	"github.com/warrenq/warren/task"
)

// fakeCodec is a codec of another content type, for the refusals.
type fakeCodec struct{ ct string }

func (c fakeCodec) ContentType() string              { return c.ct }
func (fakeCodec) Marshal(any) ([]byte, error)        { return nil, errors.New("fakeCodec") }
func (fakeCodec) Unmarshal(data []byte, v any) error { return errors.New("fakeCodec") }

type point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

type Base struct {
	ID string `json:"id"`
}

// flat has what fieldNames must skip or flatten: an embedded struct, a
// json:"-" field, an unexported field, and a field without a tag.
type flat struct {
	Base
	Name   string `json:"name"`
	Secret string `json:"-"`
	hidden int
	Count  int
}

type address struct {
	Street string  `json:"street"`
	Zip    *string `json:"zip,omitempty"`
}

type order struct {
	ID    string             `json:"id"`
	Qty   *int               `json:"qty"`
	At    time.Time          `json:"at"`
	Ship  address            `json:"ship"`
	Prev  *address           `json:"prev"`
	Tags  []string           `json:"tags"`
	Meta  map[string]float64 `json:"meta"`
	Note  string             `json:"note,omitempty"`
	Blob  []byte             `json:"blob"`
	Price float64            `json:"price"`
}

type named struct {
	Name string
	Age  int
}

// twoCase has two fields whose names differ in case only: a kwarg sets
// the one with its exact name.
type twoCase struct {
	Name  string
	Lower string `json:"name"`
}

// dashed has a field whose JSON name is "-", which encoding/json spells
// json:"-,".
type dashed struct {
	A    int `json:"a"`
	Dash int `json:"-,"`
}

const emptyEmbed = `{"callbacks":null,"errbacks":null,"chain":null,"chord":null}`

// newMessage returns m as a producer hands it to a Format: its headers
// built from its fields.
func newMessage(m task.Message) *task.Message {
	if m.ID == "" {
		m.ID = task.NewID(time.Now())
	}
	if m.Task == "" {
		m.Task = "tasks.add"
	}
	m.Headers = m.BuildHeaders(nil)
	return &m
}

// assertJSON fails unless got and want are the same JSON value.
func assertJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: the wanted %s is not JSON: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func jsonList(raws []json.RawMessage) []byte {
	if raws == nil {
		return []byte("null")
	}
	b, _ := json.Marshal(raws)
	return b
}

func TestEncodeBody(t *testing.T) {
	qty := 2
	tests := []struct {
		name    string
		payload any
		want    string // args and kwargs: the body is [want..., embed]
	}{
		{"struct as kwargs", point{X: 1, Y: 2}, `[], {"x":1,"y":2}`},
		{"pointer to struct", &point{X: 1, Y: 2}, `[], {"x":1,"y":2}`},
		{"struct with embedding", flat{Base: Base{ID: "a"}, Name: "n", Secret: "s", Count: 3}, `[], {"id":"a","name":"n","Count":3}`},
		{"struct with pointer", order{ID: "o", Qty: &qty, At: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)},
			`[], {"id":"o","qty":2,"at":"2024-05-01T10:00:00Z","ship":{"street":""},"prev":null,"tags":null,"meta":null,"blob":null,"price":0}`},
		{"slice as args", []int{1, 2}, `[1,2], {}`},
		{"array as args", [2]string{"a", "b"}, `["a","b"], {}`},
		{"nil slice", []int(nil), `[], {}`},
		{"empty slice", []any{}, `[], {}`},
		{"map as kwargs", map[string]int{"a": 1}, `[], {"a":1}`},
		{"nil map", map[string]int(nil), `[], {}`},
		{"int", 5, `[5], {}`},
		{"string", "hi", `["hi"], {}`},
		{"pointer to scalar", &qty, `[2], {}`},
		{"bytes are one base64 arg", []byte("hi"), `["aGk="], {}`},
		{"time is one arg", "2024-05-01", `["2024-05-01"], {}`},
		{"call", celery.Call{Args: []any{1, "a"}, Kwargs: map[string]any{"k": true}}, `[1,"a"], {"k":true}`},
		{"pointer to call", &celery.Call{Args: []any{1}}, `[1], {}`},
		{"empty call", celery.Call{}, `[], {}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMessage(task.Message{})
			if err := celery.Protocol.Encode(m, tt.payload, task.JSON{}); err != nil {
				t.Fatalf("Encode(%#v) = %v", tt.payload, err)
			}
			if m.ContentType != task.ContentTypeJSON {
				t.Errorf("ContentType = %q, want %q", m.ContentType, task.ContentTypeJSON)
			}
			assertJSON(t, "body", m.Body, "["+tt.want+","+emptyEmbed+"]")
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name    string
		payload any
		codec   task.Codec
		want    string
	}{
		{"non-JSON codec", point{}, fakeCodec{"application/x-msgpack"}, "JSON"},
		{"struct that is not an object", time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), task.JSON{}, "JSON object"},
		{"unencodable", make(chan int), task.JSON{}, "chan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMessage(task.Message{})
			err := celery.Protocol.Encode(m, tt.payload, tt.codec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// isoTime is how Celery's parser reads eta and expires: six fraction
// digits, a +00:00 offset.
var isoTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`)

func TestEncodeHeaders(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	eta := time.Date(2024, 5, 1, 12, 0, 0, 123456789, paris)
	expires := time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name              string
		msg               task.Message
		ignoreResult      bool
		wantETA, wantExps any
	}{
		{"plain", task.Message{}, true, nil, nil},
		{"awaited", task.Message{ReplyTo: "amq.rabbitmq.reply-to"}, false, nil, nil},
		{"retried, delayed and expiring", task.Message{Retries: 3, ETA: eta, Expires: expires}, true,
			"2024-05-01T10:00:00.123456+00:00", "2024-05-02T10:00:00.000000+00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMessage(tt.msg)
			if err := celery.Protocol.Encode(m, point{X: 1}, task.JSON{}); err != nil {
				t.Fatal(err)
			}
			h := m.Headers
			for k, want := range map[string]any{
				celery.HeaderLang:         "go",
				task.HeaderTask:           m.Task,
				task.HeaderID:             m.ID,
				celery.HeaderRootID:       m.ID,
				celery.HeaderParentID:     nil,
				celery.HeaderGroup:        nil,
				task.HeaderRetries:        int64(tt.msg.Retries),
				task.HeaderTimeLimit:      []any{nil, nil},
				celery.HeaderIgnoreResult: tt.ignoreResult,
				celery.HeaderArgsRepr:     "[]",
				celery.HeaderKwargsRepr:   `{"x":1,"y":0}`,
				task.HeaderETA:            tt.wantETA,
				task.HeaderExpires:        tt.wantExps,
			} {
				got, ok := h[k]
				if !ok {
					t.Errorf("header %q missing", k)
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("header %q = %#v (%T), want %#v (%T)", k, got, got, want, want)
				}
			}
			for _, k := range []string{task.HeaderETA, task.HeaderExpires} {
				if s, ok := h[k].(string); ok && !isoTime.MatchString(s) {
					t.Errorf("header %q = %q, want six fraction digits and +00:00", k, s)
				}
			}
			if o, _ := h[celery.HeaderOrigin].(string); !strings.HasPrefix(o, "gen") || !strings.Contains(o, "@") {
				t.Errorf("origin = %q, want gen<pid>@<host>", o)
			}
			// What Encode writes, warren's own parser reads back.
			var back task.Message
			if err := back.ParseHeaders(h); err != nil {
				t.Fatalf("ParseHeaders of the encoded headers = %v", err)
			}
			if !back.ETA.Equal(tt.msg.ETA.Truncate(time.Microsecond)) || !back.Expires.Equal(tt.msg.Expires) || back.Retries != tt.msg.Retries {
				t.Errorf("read back eta %v expires %v retries %d, want %v %v %d", back.ETA, back.Expires, back.Retries, tt.msg.ETA, tt.msg.Expires, tt.msg.Retries)
			}
		})
	}
}

func TestEncodeClipsRepr(t *testing.T) {
	m := newMessage(task.Message{})
	if err := celery.Protocol.Encode(m, []string{strings.Repeat("a", 2000)}, task.JSON{}); err != nil {
		t.Fatal(err)
	}
	if s := m.Headers[celery.HeaderArgsRepr].(string); len(s) != 1024+len("...") || !strings.HasSuffix(s, "...") {
		t.Errorf("argsrepr is %d bytes, want 1024 and an ellipsis", len(s))
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		into    func() any // a pointer to a fresh payload
		want    any        // what it points to after; ignored when wantErr is set
		wantErr string
	}{
		{"positional in declaration order", `[[1,2],{},null]`, func() any { return new(point) }, point{1, 2}, ""},
		{"kwargs by name", `[[],{"y":2,"x":1}]`, func() any { return new(point) }, point{1, 2}, ""},
		{"positional then kwargs", `[[1],{"y":2}]`, func() any { return new(point) }, point{1, 2}, ""},
		{"unknown kwargs ignored", `[[],{"z":1}]`, func() any { return new(point) }, point{}, ""},
		{"both ways", `[[1],{"x":2}]`, func() any { return new(point) }, nil, "multiple values"},
		{"both ways, kwarg in another case", `[["a"],{"name":"b"}]`, func() any { return new(named) }, nil, "multiple values"},
		{"kwarg in another case", `[[],{"name":"b","age":3}]`, func() any { return new(named) }, named{"b", 3}, ""},
		{"kwarg with an exact name elsewhere", `[["a"],{"name":"b"}]`, func() any { return new(twoCase) }, twoCase{"a", "b"}, ""},
		{"too many positional", `[[1,2,3],{}]`, func() any { return new(point) }, nil, "(x, y)"},
		{"embedded flattened, skips json:- and unexported", `[["a","n",3],{}]`, func() any { return new(flat) },
			flat{Base: Base{ID: "a"}, Name: "n", Count: 3}, ""},
		{"json:- not positional", `[["a","n",3,4],{}]`, func() any { return new(flat) }, nil, "(id, name, Count)"},
		{"field named -", `[[1,2],{}]`, func() any { return new(dashed) }, dashed{A: 1, Dash: 2}, ""},
		{"pointer to pointer", `[[1,2],{}]`, func() any { return new(*point) }, &point{1, 2}, ""},
		{"slice takes args", `[[1,2],{}]`, func() any { return new([]int) }, []int{1, 2}, ""},
		{"array takes args", `[["a","b"],{}]`, func() any { return new([2]string) }, [2]string{"a", "b"}, ""},
		{"slice refuses kwargs", `[[1],{"a":1}]`, func() any { return new([]int) }, nil, "kwargs"},
		{"map takes kwargs", `[[],{"a":1}]`, func() any { return new(map[string]int) }, map[string]int{"a": 1}, ""},
		{"map refuses args", `[[1],{"a":1}]`, func() any { return new(map[string]int) }, nil, "positional"},
		{"scalar", `[[5],{}]`, func() any { return new(int) }, 5, ""},
		{"scalar without args", `[[],{}]`, func() any { return new(int) }, nil, "exactly one"},
		{"scalar with two args", `[[1,2],{}]`, func() any { return new(int) }, nil, "exactly one"},
		{"scalar with kwargs", `[[1],{"a":1}]`, func() any { return new(int) }, nil, "exactly one"},
		{"bytes are one base64 arg", `[["aGk="],{}]`, func() any { return new([]byte) }, []byte("hi"), ""},
		{"call gets float64", `[[1,"a",[2]],{"k":2.5,"m":{"n":null}}]`, func() any { return new(celery.Call) },
			celery.Call{Args: []any{1.0, "a", []any{2.0}}, Kwargs: map[string]any{"k": 2.5, "m": map[string]any{"n": nil}}}, ""},
		{"call with nothing", `[[],{}]`, func() any { return new(celery.Call) }, celery.Call{Args: []any{}, Kwargs: map[string]any{}}, ""},
		{"wrong type", `[["x"],{}]`, func() any { return new(point) }, nil, "cannot unmarshal"},
		{"invalid UTF-8", "[[\"\xff\"],{}]", func() any { return new(string) }, nil, "UTF-8"},
		{"bad body", `{"x":1}`, func() any { return new(point) }, nil, "not a protocol 2 list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.into()
			err := celery.Protocol.Decode([]byte(tt.body), task.JSON{}, p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decode(%s) = %v, want an error mentioning %q", tt.body, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%s) = %v", tt.body, err)
			}
			if got := reflect.ValueOf(p).Elem().Interface(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%s) = %#v, want %#v", tt.body, got, tt.want)
			}
		})
	}
}

func TestDecodeInvalidUTF8(t *testing.T) {
	var s string
	err := celery.Protocol.Decode([]byte("[[\"\xff\"],{}]"), task.JSON{}, &s)
	if !errors.Is(err, task.ErrInvalidUTF8) {
		t.Fatalf("Decode = %v, want ErrInvalidUTF8", err)
	}
}

func TestDecodeRefusesSerializer(t *testing.T) {
	tests := []struct{ contentType, name string }{
		{"application/x-python-serialize", "pickle"},
		{"application/x-yaml", "yaml"},
		{"application/x-msgpack", "msgpack"},
		{"text/plain", "text/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p point
			err := celery.Protocol.Decode([]byte(`[[1,2],{}]`), fakeCodec{tt.contentType}, &p)
			if err == nil || err.Error() != celery.UnsupportedSerializer(tt.contentType).Error() {
				t.Fatalf("Decode = %v, want UnsupportedSerializer", err)
			}
			if !strings.Contains(err.Error(), "the "+tt.name+" serializer") {
				t.Errorf("Decode = %v, want it to name %s", err, tt.name)
			}
		})
	}
}

func TestBindNeedsPointer(t *testing.T) {
	e, err := celery.ParseBody([]byte(`[[1],{}]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []any{point{}, (*point)(nil), nil} {
		if err := e.Bind(p); err == nil {
			t.Errorf("Bind(%#v) = nil, want an error", p)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	qty, zip := 3, "75001"
	at := time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name    string
		payload any
	}{
		{"point", point{X: -1, Y: 7}},
		{"zero point", point{}},
		{"flattened", flat{Base: Base{ID: "a"}, Name: "n", Count: 3}},
		{"nested, pointers and time", order{
			ID: "o-1", Qty: &qty, At: at, Ship: address{Street: "rue", Zip: &zip}, Prev: &address{Street: "old"},
			Tags: []string{"a", "b"}, Meta: map[string]float64{"w": 1.5}, Note: "n", Blob: []byte{0, 1, 255}, Price: 9.99,
		}},
		{"nil pointers", order{ID: "o-2"}},
		{"named fields", named{Name: "x", Age: 4}},
		{"field named -", dashed{A: 1, Dash: 2}},
		{"slice", []string{"a", "b"}},
		{"array", [3]int{1, 2, 3}},
		{"byte array", [3]byte{1, 2, 3}},
		{"map", map[string][]int{"a": {1}}},
		{"int", 42},
		{"string", "hello"},
		{"bytes", []byte("hello")},
		{"time", at},
		{"call", celery.Call{Args: []any{1.0, "a"}, Kwargs: map[string]any{"k": true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := tt.payload.(time.Time); ok {
				// A struct that is not a JSON object has no kwargs form:
				// refused both ways rather than half decoded.
				if err := celery.Protocol.Encode(newMessage(task.Message{}), tt.payload, task.JSON{}); err == nil {
					t.Fatal("Encode(time.Time) = nil, want an error")
				}
				return
			}
			m := newMessage(task.Message{})
			if err := celery.Protocol.Encode(m, tt.payload, task.JSON{}); err != nil {
				t.Fatalf("Encode = %v", err)
			}
			p := reflect.New(reflect.TypeOf(tt.payload))
			if err := celery.Protocol.Decode(m.Body, task.JSON{}, p.Interface()); err != nil {
				t.Fatalf("Decode(%s) = %v", m.Body, err)
			}
			if got := p.Elem().Interface(); !reflect.DeepEqual(got, tt.payload) {
				t.Errorf("round trip through %s = %#v, want %#v", m.Body, got, tt.payload)
			}
		})
	}
}

func TestParseBody(t *testing.T) {
	group := `{"task":"celery.group","args":[],"kwargs":{"tasks":[]},"options":{},"subtask_type":"group","immutable":false}`
	sig := `{"task":"tasks.b","args":[1],"kwargs":{},"options":{},"subtask_type":null,"immutable":false}`
	tests := []struct {
		name    string
		body    string
		wantErr string // "" for a body that parses
	}{
		{"two elements", `[[1],{"a":2}]`, ""},
		{"null embed", `[[1],{"a":2},null]`, ""},
		{"empty embed", `[[],{},{}]`, ""},
		{"Celery's empty embed", `[[],{},` + emptyEmbed + `]`, ""},
		{"a chain and callbacks", `[[],{},{"callbacks":[` + sig + `],"errbacks":[` + sig + `],"chain":[` + sig + `,` + sig + `],"chord":null}]`, ""},
		{"not a list", `{"args":[]}`, "not a protocol 2 list"},
		{"not JSON", `[[],{}`, "not a protocol 2 list"},
		{"list of 1", `[[]]`, "list of 1"},
		{"list of 4", `[[],{},{},{}]`, "list of 4"},
		{"args an object", `[{},{}]`, "args must be a list"},
		{"args a string", `["a",{}]`, "args must be a list"},
		{"args null", `[null,{}]`, "args must be a list"},
		{"kwargs a list", `[[],[]]`, "kwargs must be an object"},
		{"kwargs null", `[[],null]`, "kwargs must be an object"},
		{"embed a list", `[[],{},[]]`, "embed"},
		{"chord", `[[],{},{"chord":` + sig + `}]`, "chord"},
		{"chain step a group", `[[],{},{"chain":[` + group + `]}]`, "chain step that is a group"},
		{"callback a group", `[[],{},{"callbacks":[` + group + `]}]`, "callback that is a group"},
		{"callback a string", `[[],{},{"callbacks":["tasks.b"]}]`, "callback"},
		{"errback without a task", `[[],{},{"errbacks":[{"args":[]}]}]`, "errback"},
		{"invalid UTF-8", "[[\"\xff\"],{}]", "UTF-8"},
		{"chain step with a chord in its options", `[[],{},{"chain":[{"task":"tasks.b","args":[],"kwargs":{},"options":{"chord":` + sig + `}}]}]`, "part of a chord"},
		{"chain step with a null chord option", `[[],{},{"chain":[{"task":"tasks.b","args":[],"kwargs":{},"options":{"chord":null}}]}]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := celery.ParseBody([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseBody(%s) = %v, want an error mentioning %q", tt.body, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBody(%s) = %v", tt.body, err)
			}
			if e.Args == nil || e.Kwargs == nil {
				t.Errorf("ParseBody(%s) = args %v kwargs %v, want both non-nil", tt.body, e.Args, e.Kwargs)
			}
		})
	}
}

func TestParseBodyParts(t *testing.T) {
	sig := `{"task":"tasks.b","args":[],"kwargs":{},"options":{},"subtask_type":null,"immutable":false}`
	e, err := celery.ParseBody([]byte(`[[1,"a"],{"k":{"n":2}},{"callbacks":[` + sig + `],"errbacks":null,"chain":[` + sig + `],"chord":null}]`))
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "args", jsonList(e.Args), `[1,"a"]`)
	assertJSON(t, "kwargs[k]", e.Kwargs["k"], `{"n":2}`)
	assertJSON(t, "callbacks", jsonList(e.Embed.Callbacks), `[`+sig+`]`)
	assertJSON(t, "chain", jsonList(e.Embed.Chain), `[`+sig+`]`)
	if e.Embed.Errbacks != nil {
		t.Errorf("errbacks = %s, want none", jsonList(e.Embed.Errbacks))
	}
}

// signature writes a Celery signature as its dict.
func signature(name, args, options string, immutable bool) string {
	s, _ := json.Marshal(map[string]any{
		"task": name, "args": json.RawMessage(args), "kwargs": json.RawMessage(`{"k":"v"}`),
		"options": json.RawMessage(options), "subtask_type": nil, "immutable": immutable,
	})
	return string(s)
}

// nextParts parses a Next's body.
func nextParts(t *testing.T, n celery.Next) *celery.Envelope {
	t.Helper()
	e, err := celery.ParseBody(n.Body)
	if err != nil {
		t.Fatalf("the body of %s does not parse: %v: %s", n.Task, err, n.Body)
	}
	return e
}

func TestOnSuccessChain(t *testing.T) {
	cb := signature("tasks.log", `[]`, `{}`, false)
	eb := signature("tasks.alert", `[]`, `{}`, false)
	c := signature("tasks.c", `[10]`, `{"task_id":"id-c"}`, false)
	b := signature("tasks.b", `[1,2]`, `{"task_id":"id-b","reply_to":"reply.q","link":`+cb+`,"link_error":[`+eb+`]}`, false)
	e, err := celery.ParseBody([]byte(`[[],{},{"chain":[` + c + `,` + b + `]}]`))
	if err != nil {
		t.Fatal(err)
	}
	m := &task.Message{ID: "id-a", Headers: map[string]any{celery.HeaderRootID: "id-root"}}
	next, err := e.OnSuccess(m, json.RawMessage(`4`))
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 1 {
		t.Fatalf("OnSuccess sent %d tasks, want the chain's next step only", len(next))
	}
	n := next[0]
	if n.Task != "tasks.b" || n.ID != "id-b" || n.ReplyTo != "reply.q" {
		t.Errorf("next = %s %s reply_to %q, want tasks.b id-b reply.q", n.Task, n.ID, n.ReplyTo)
	}
	p := nextParts(t, n)
	assertJSON(t, "args", jsonList(p.Args), `[4,1,2]`)
	assertJSON(t, "kwargs[k]", p.Kwargs["k"], `"v"`)
	assertJSON(t, "chain", jsonList(p.Embed.Chain), `[`+c+`]`)
	assertJSON(t, "callbacks", jsonList(p.Embed.Callbacks), `[`+cb+`]`)
	assertJSON(t, "errbacks", jsonList(p.Embed.Errbacks), `[`+eb+`]`)
	for k, want := range map[string]any{
		celery.HeaderLang: "go", task.HeaderTask: "tasks.b", task.HeaderID: "id-b",
		celery.HeaderRootID: "id-root", celery.HeaderParentID: "id-a", celery.HeaderGroup: nil,
		task.HeaderRetries: int64(0), task.HeaderTimeLimit: []any{nil, nil},
		celery.HeaderIgnoreResult: false, task.HeaderETA: nil, task.HeaderExpires: nil,
		celery.HeaderArgsRepr: "[4,1,2]",
	} {
		if got, ok := n.Headers[k]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("header %q = %#v, want %#v", k, got, want)
		}
	}

	// The step after: the chain's last, with nothing left after it.
	m2 := &task.Message{ID: n.ID, Headers: n.Headers}
	next2, err := p.OnSuccess(m2, json.RawMessage(`"x"`))
	if err != nil {
		t.Fatal(err)
	}
	if len(next2) != 2 || next2[0].Task != "tasks.c" || next2[1].Task != "tasks.log" {
		t.Fatalf("the step after sent %v, want tasks.c then its callback tasks.log", tasks(next2))
	}
	last := nextParts(t, next2[0])
	assertJSON(t, "last args", jsonList(last.Args), `["x",10]`)
	if last.Embed.Chain != nil {
		t.Errorf("last chain = %s, want none", jsonList(last.Embed.Chain))
	}
	if got := next2[0].Headers[celery.HeaderRootID]; got != "id-root" {
		t.Errorf("last root_id = %v, want id-root kept along the chain", got)
	}
	if got := next2[0].Headers[celery.HeaderParentID]; got != "id-b" {
		t.Errorf("last parent_id = %v, want id-b", got)
	}
}

func tasks(ns []celery.Next) []string {
	var names []string
	for _, n := range ns {
		names = append(names, n.Task)
	}
	return names
}

func TestOnSuccessNext(t *testing.T) {
	cb := signature("tasks.log", `[]`, `{}`, false)
	cb2 := signature("tasks.audit", `[]`, `{}`, false)
	tests := []struct {
		name   string
		step   string          // the chain's next step; "" for none
		cbs    []string        // the message's callbacks
		result json.RawMessage // the run's result
		msgHdr map[string]any  // the message's headers
		check  func(t *testing.T, next []celery.Next)
	}{
		{name: "no workflow", check: func(t *testing.T, next []celery.Next) {
			if len(next) != 0 {
				t.Errorf("sent %v, want nothing", tasks(next))
			}
		}},
		{name: "root is the message without root_id", step: signature("tasks.b", `[]`, `{}`, false),
			check: func(t *testing.T, next []celery.Next) {
				if got := next[0].Headers[celery.HeaderRootID]; got != "id-a" {
					t.Errorf("root_id = %v, want the message id", got)
				}
				if next[0].ID == "" || next[0].Headers[task.HeaderID] != next[0].ID {
					t.Errorf("id %q header %v, want a generated id in both", next[0].ID, next[0].Headers[task.HeaderID])
				}
				if next[0].Headers[celery.HeaderIgnoreResult] != true {
					t.Errorf("ignore_result = %v, want true without reply_to", next[0].Headers[celery.HeaderIgnoreResult])
				}
			}},
		{name: "immutable", step: signature("tasks.b", `[1]`, `{}`, true), result: json.RawMessage(`4`),
			check: func(t *testing.T, next []celery.Next) {
				assertJSON(t, "args", jsonList(nextParts(t, next[0]).Args), `[1]`)
			}},
		{name: "immutable without args", step: signature("tasks.b", `null`, `{}`, true), result: json.RawMessage(`4`),
			check: func(t *testing.T, next []celery.Next) {
				assertJSON(t, "args", jsonList(nextParts(t, next[0]).Args), `[]`)
			}},
		{name: "nil result is null", step: signature("tasks.b", `[1]`, `{}`, false),
			check: func(t *testing.T, next []celery.Next) {
				assertJSON(t, "args", jsonList(nextParts(t, next[0]).Args), `[null,1]`)
			}},
		{name: "callbacks each get the result", cbs: []string{cb, cb2}, result: json.RawMessage(`{"n":1}`),
			check: func(t *testing.T, next []celery.Next) {
				if len(next) != 2 || next[0].Task != "tasks.log" || next[1].Task != "tasks.audit" {
					t.Fatalf("sent %v, want both callbacks", tasks(next))
				}
				for _, n := range next {
					assertJSON(t, n.Task+" args", jsonList(nextParts(t, n).Args), `[{"n":1}]`)
				}
				if next[0].ID == next[1].ID {
					t.Errorf("both callbacks have id %s", next[0].ID)
				}
			}},
		{name: "chain step and callbacks", step: signature("tasks.b", `[]`, `{}`, false), cbs: []string{cb}, result: json.RawMessage(`1`),
			check: func(t *testing.T, next []celery.Next) {
				if got := tasks(next); !reflect.DeepEqual(got, []string{"tasks.b", "tasks.log"}) {
					t.Errorf("sent %v, want the step then the callback", got)
				}
			}},
		{name: "countdown", step: signature("tasks.b", `[]`, `{"countdown":30}`, false),
			check: func(t *testing.T, next []celery.Next) {
				assertAbout(t, next[0].Headers[task.HeaderETA], 30*time.Second)
			}},
		{name: "eta and expires", step: signature("tasks.b", `[]`, `{"eta":"2030-01-02T03:04:05.5+00:00","expires":60}`, false),
			check: func(t *testing.T, next []celery.Next) {
				if got := next[0].Headers[task.HeaderETA]; got != "2030-01-02T03:04:05.500000+00:00" {
					t.Errorf("eta = %v, want the option's time", got)
				}
				assertAbout(t, next[0].Headers[task.HeaderExpires], time.Minute)
			}},
		{name: "a number is no eta (countdown is)", step: signature("tasks.b", `[]`, `{"eta":30}`, false),
			check: func(t *testing.T, next []celery.Next) {
				if got := next[0].Headers[task.HeaderETA]; got != nil {
					t.Errorf("eta = %v, want none", got)
				}
			}},
		{name: "routing and priority", step: signature("tasks.b", `[]`, `{"queue":"q","exchange":"ex","routing_key":"rk","priority":7}`, false),
			check: func(t *testing.T, next []celery.Next) {
				n := next[0]
				if n.Queue != "q" || n.Exchange != "ex" || n.RoutingKey != "rk" || n.Priority != 7 {
					t.Errorf("next = queue %q exchange %q key %q priority %d, want q ex rk 7", n.Queue, n.Exchange, n.RoutingKey, n.Priority)
				}
			}},
		{name: "priority out of range", step: signature("tasks.b", `[]`, `{"priority":300}`, false),
			check: func(t *testing.T, next []celery.Next) {
				if next[0].Priority != 0 {
					t.Errorf("priority = %d, want 0 for 300", next[0].Priority)
				}
			}},
		{name: "time limits and group", step: signature("tasks.b", `[]`, `{"time_limit":60,"soft_time_limit":30.5,"group_id":"g"}`, false),
			check: func(t *testing.T, next []celery.Next) {
				if got := next[0].Headers[task.HeaderTimeLimit]; !reflect.DeepEqual(got, []any{60.0, 30.5}) {
					t.Errorf("timelimit = %#v, want [60 30.5]", got)
				}
				if got := next[0].Headers[celery.HeaderGroup]; got != "g" {
					t.Errorf("group = %v, want g", got)
				}
			}},
		{name: "link as one dict, link_error as a list", step: signature("tasks.b", `[]`, `{"link":`+cb+`,"link_error":[`+cb+`,`+cb2+`]}`, false),
			check: func(t *testing.T, next []celery.Next) {
				p := nextParts(t, next[0])
				assertJSON(t, "callbacks", jsonList(p.Embed.Callbacks), `[`+cb+`]`)
				assertJSON(t, "errbacks", jsonList(p.Embed.Errbacks), `[`+cb+`,`+cb2+`]`)
			}},
		{name: "link as a list, link_error null", step: signature("tasks.b", `[]`, `{"link":[`+cb+`],"link_error":null}`, false),
			check: func(t *testing.T, next []celery.Next) {
				p := nextParts(t, next[0])
				assertJSON(t, "callbacks", jsonList(p.Embed.Callbacks), `[`+cb+`]`)
				if p.Embed.Errbacks != nil {
					t.Errorf("errbacks = %s, want none", jsonList(p.Embed.Errbacks))
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			embed := map[string]any{"callbacks": nil, "chain": nil}
			if tt.step != "" {
				embed["chain"] = []json.RawMessage{json.RawMessage(tt.step)}
			}
			if tt.cbs != nil {
				var raws []json.RawMessage
				for _, s := range tt.cbs {
					raws = append(raws, json.RawMessage(s))
				}
				embed["callbacks"] = raws
			}
			eb, _ := json.Marshal(embed)
			e, err := celery.ParseBody([]byte(`[[],{},` + string(eb) + `]`))
			if err != nil {
				t.Fatal(err)
			}
			m := &task.Message{ID: "id-a", Headers: tt.msgHdr}
			next, err := e.OnSuccess(m, tt.result)
			if err != nil {
				t.Fatalf("OnSuccess = %v", err)
			}
			if tt.step != "" && len(next) == 0 {
				t.Fatal("OnSuccess sent nothing, want the chain's next step")
			}
			tt.check(t, next)
		})
	}
}

// assertAbout checks that an eta or expires header is about d from now.
func assertAbout(t *testing.T, v any, d time.Duration) {
	t.Helper()
	s, ok := v.(string)
	if !ok || !isoTime.MatchString(s) {
		t.Fatalf("time header = %#v, want an ISO time as Celery reads it", v)
	}
	got, err := task.ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	if off := time.Until(got); off < d-5*time.Second || off > d+time.Second {
		t.Errorf("time header %s is %v from now, want about %v", s, off, d)
	}
}

func TestOnFailure(t *testing.T) {
	eb := signature("tasks.alert", `[7]`, `{"task_id":"id-eb"}`, false)
	frozen := signature("tasks.cleanup", `[1]`, `{}`, true)
	cb := signature("tasks.log", `[]`, `{}`, false)
	e, err := celery.ParseBody([]byte(`[[],{},{"callbacks":[` + cb + `],"errbacks":[` + eb + `,` + frozen + `],"chain":[` + cb + `]}]`))
	if err != nil {
		t.Fatal(err)
	}
	m := &task.Message{ID: "id-a", Headers: map[string]any{celery.HeaderRootID: "id-root"}}
	next, err := e.OnFailure(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := tasks(next); !reflect.DeepEqual(got, []string{"tasks.alert", "tasks.cleanup"}) {
		t.Fatalf("OnFailure sent %v, want the errbacks only", got)
	}
	assertJSON(t, "errback args", jsonList(nextParts(t, next[0]).Args), `["id-a",7]`)
	assertJSON(t, "immutable errback args", jsonList(nextParts(t, next[1]).Args), `[1]`)
	if next[0].ID != "id-eb" || next[0].Headers[celery.HeaderParentID] != "id-a" || next[0].Headers[celery.HeaderRootID] != "id-root" {
		t.Errorf("errback id %s headers %v, want id-eb, parent id-a, root id-root", next[0].ID, next[0].Headers)
	}

	none, err := (&celery.Envelope{}).OnFailure(m)
	if err != nil || len(none) != 0 {
		t.Errorf("OnFailure without errbacks = %v, %v; want nothing", tasks(none), err)
	}
}

func TestLooksLikeV1(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		want                    bool
	}{
		{"pickle", "application/x-python-serialize", "\x80\x02}q\x00.", true},
		{"JSON v1", "application/json", `{"task":"tasks.add","id":"a1","args":[1,2],"kwargs":{},"retries":0,"eta":null}`, true},
		{"JSON v1 without args", "application/json", `{"task":"tasks.add","id":"a1","kwargs":{}}`, false},
		{"warren payload", "application/json", `{"name":"x"}`, false},
		{"warren payload with a task field", "application/json", `{"task":"x"}`, false},
		{"v2 body", "application/json", `[[1,2],{},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]`, false},
		{"not JSON", "application/json", `task`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := celery.LooksLikeV1(tt.contentType, []byte(tt.body)); got != tt.want {
				t.Errorf("LooksLikeV1(%q, %s) = %v, want %v", tt.contentType, tt.body, got, tt.want)
			}
		})
	}
}

// The headers of a next task are all values AMQP carries: a func or a
// struct would make the broker layer refuse the publish.
func TestNextHeadersAreAMQPValues(t *testing.T) {
	m := &task.Message{ID: "a", Task: "tasks.a", Headers: map[string]any{}}
	e, err := celery.ParseBody([]byte(`[[],{},{"chain":[{"task":"tasks.b","args":[],"kwargs":{},"options":{"time_limit":5}}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	next, err := e.OnSuccess(m, nil)
	if err != nil || len(next) != 1 {
		t.Fatalf("OnSuccess = %v, %v", next, err)
	}
	for k, v := range next[0].Headers {
		switch v := v.(type) {
		case nil, string, bool, int64, float64:
		case []any:
			for _, x := range v {
				switch x.(type) {
				case nil, float64:
				default:
					t.Errorf("header %s holds a %T", k, x)
				}
			}
		default:
			t.Errorf("header %s is a %T", k, v)
		}
	}
}

func TestIs(t *testing.T) {
	if !celery.Is(celery.Protocol) || celery.Is(nil) {
		t.Errorf("Is(Protocol) = %v, Is(nil) = %v", celery.Is(celery.Protocol), celery.Is(nil))
	}
}

func TestDefineUsesProtocol(t *testing.T) {
	d := celery.Define[point]("tasks.add")
	if got := d.New(point{}).Format; got != celery.Protocol {
		t.Errorf("Define's task format = %v, want celery.Protocol", got)
	}
	if got := d.Handler(nil).Format(); got != celery.Protocol {
		t.Errorf("Define's handler format = %v, want celery.Protocol", got)
	}
}

// FuzzDecode feeds hostile bodies to Decode and to the workflow steps a
// worker computes from them: bad input is an error, never a panic.
func FuzzDecode(f *testing.F) {
	sig := `{"task":"tasks.b","args":[1],"kwargs":{},"options":{"link":{"task":"x"},"countdown":1e300},"subtask_type":null,"immutable":false}`
	for _, s := range []string{
		`[[1,2],{}]`, `[[],{"x":1},null]`, `[[1],{"x":2}]`, `[[1,2,3],{}]`, `[null,null]`, `[[],{},[]]`,
		`[[],{},{"chain":[` + sig + `],"callbacks":[` + sig + `],"errbacks":[` + sig + `]}]`,
		`[[],{},{"chord":{"task":"c"}}]`, `[[],{},{"chain":["x"]}]`, "[[\"\xff\"],{}]", `{"task":"t","id":"i","args":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range []any{new(point), new(flat), new(order), new([]int), new(map[string]any), new(string), new(celery.Call)} {
			_ = celery.Protocol.Decode(body, task.JSON{}, p)
		}
		_ = celery.LooksLikeV1(task.ContentTypeJSON, body)
		e, err := celery.ParseBody(body)
		if err != nil {
			return
		}
		m := &task.Message{ID: "id-a"}
		_, _ = e.OnSuccess(m, json.RawMessage(`1`))
		_, _ = e.OnFailure(m)
	})
}
