package celery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/warrenq/warren/task"
)

// Envelope is a Celery message's body, [args, kwargs, embed], read but
// not yet bound to a payload.
type Envelope struct {
	Args   []json.RawMessage
	Kwargs map[string]json.RawMessage
	Embed  Embed
}

// Embed is the workflow a Celery message carries: what to send after it
// ran. Signatures stay raw until they are sent, so that what warren does
// not read passes on untouched.
type Embed struct {
	Callbacks []json.RawMessage `json:"callbacks"` // link: sent with the result prepended to their args
	Errbacks  []json.RawMessage `json:"errbacks"`  // link_error: sent with the task id as their first arg
	Chain     []json.RawMessage `json:"chain"`     // the rest of a chain, last step first
	Chord     json.RawMessage   `json:"chord"`     // a chord's body; warren refuses these
}

// signature is one task of a workflow as Celery serializes it.
type signature struct {
	Task        string                     `json:"task"`
	Args        []json.RawMessage          `json:"args"`
	Kwargs      map[string]json.RawMessage `json:"kwargs"`
	Options     map[string]json.RawMessage `json:"options"`
	SubtaskType *string                    `json:"subtask_type"`
	Immutable   bool                       `json:"immutable"`
}

// ParseBody reads a Celery body. Anything but a JSON list of args, a
// kwargs object and an optional embed object is an error that says what
// was found; so is an embed warren cannot honour (a chord, or a workflow
// step that is itself a group, chain or chord).
func ParseBody(body []byte) (*Envelope, error) {
	var parts []json.RawMessage
	if err := (task.JSON{}).Unmarshal(body, &parts); err != nil {
		return nil, fmt.Errorf("celery: the body is not a protocol 2 list [args, kwargs, embed]: %w", err)
	}
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("celery: the body is a list of %d, want [args, kwargs, embed]", len(parts))
	}
	e := &Envelope{}
	if err := json.Unmarshal(parts[0], &e.Args); err != nil || isNull(parts[0]) {
		return nil, fmt.Errorf("celery: args must be a list, not %.40s", parts[0])
	}
	if err := json.Unmarshal(parts[1], &e.Kwargs); err != nil || isNull(parts[1]) {
		return nil, fmt.Errorf("celery: kwargs must be an object, not %.40s", parts[1])
	}
	if len(parts) == 3 && !isNull(parts[2]) {
		if err := json.Unmarshal(parts[2], &e.Embed); err != nil {
			return nil, fmt.Errorf("celery: the embed is not {callbacks, errbacks, chain, chord}: %w", err)
		}
	}
	return e, e.Embed.check()
}

func isNull(b json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

// check refuses what warren cannot honour: a chord counts its header's
// results in a result store, and a group or nested workflow as a step
// needs the same; warren has none, so such a message is dead-lettered
// rather than half run.
func (e Embed) check() error {
	if len(e.Chord) > 0 && !isNull(e.Chord) {
		return fmt.Errorf("celery: a chord is not supported: its body runs when a result store has counted its header's results, and warren keeps no result store")
	}
	for _, list := range []struct {
		what string
		sigs []json.RawMessage
	}{{"callback", e.Callbacks}, {"errback", e.Errbacks}, {"chain step", e.Chain}} {
		for _, raw := range list.sigs {
			s, err := parseSignature(raw)
			if err != nil {
				return fmt.Errorf("celery: %s: %w", list.what, err)
			}
			if s.SubtaskType != nil && *s.SubtaskType != "" {
				return fmt.Errorf("celery: a %s that is a %s (%s) is not supported: warren follows single tasks only", list.what, *s.SubtaskType, s.Task)
			}
			if c, ok := s.Options["chord"]; ok && !isNull(c) {
				return fmt.Errorf("celery: a %s (%s) that is part of a chord is not supported: its chord's body runs when a result store has counted the header's results, and warren keeps no result store", list.what, s.Task)
			}
		}
	}
	return nil
}

func parseSignature(raw json.RawMessage) (*signature, error) {
	var s signature
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("not a signature: %w", err)
	}
	if s.Task == "" && s.SubtaskType == nil {
		return nil, fmt.Errorf("a signature without a task name")
	}
	return &s, nil
}

// Bind decodes the envelope's args and kwargs into the payload p points
// to, mapped as Python binds a call's arguments to parameters:
//
//   - an Unmarshaler (Call is one) reads them itself;
//   - a struct: positional args fill its fields in the order they are
//     declared (exported fields, skipping json:"-"; an embedded struct
//     without a JSON name counts as its own fields), kwargs fill fields by
//     their JSON names as encoding/json matches them; an argument given
//     both ways, or more positional args than fields, is an error;
//   - a slice or an array takes the args (kwargs must be empty);
//   - a map takes the kwargs (args must be empty);
//   - anything else takes the one positional argument (no kwargs).
//
// Kwargs that name no field are ignored, as encoding/json ignores unknown
// fields.
func (e *Envelope) Bind(p any) error {
	if u, ok := p.(Unmarshaler); ok {
		return u.UnmarshalCelery(e.Args, e.Kwargs)
	}
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("celery: Bind needs a non-nil pointer, not %T", p)
	}
	t := v.Elem().Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, err := e.object(fieldNames(t))
		if err != nil {
			return err
		}
		return task.JSON{}.Unmarshal(obj, p)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() != reflect.Uint8 {
			if len(e.Kwargs) > 0 {
				return fmt.Errorf("celery: a %s payload takes args only, not kwargs (%s)", t, strings.Join(sortedKeys(e.Kwargs), ", "))
			}
			list, _ := json.Marshal(e.Args)
			return task.JSON{}.Unmarshal(list, p)
		}
	case reflect.Map:
		if len(e.Args) > 0 {
			return fmt.Errorf("celery: a %s payload takes kwargs only, not %d positional args", t, len(e.Args))
		}
		obj, _ := json.Marshal(e.Kwargs)
		return task.JSON{}.Unmarshal(obj, p)
	}
	if len(e.Args) != 1 || len(e.Kwargs) > 0 {
		return fmt.Errorf("celery: a %s payload takes exactly one positional argument, not %d args and %d kwargs", t, len(e.Args), len(e.Kwargs))
	}
	return task.JSON{}.Unmarshal(e.Args[0], p)
}

// object builds the JSON object a struct is decoded from: positional args
// under the names of the fields in order, then the kwargs.
func (e *Envelope) object(names []string) ([]byte, error) {
	if len(e.Args) > len(names) {
		return nil, fmt.Errorf("celery: takes %d positional arguments (%s) but %d were given", len(names), strings.Join(names, ", "), len(e.Args))
	}
	keys := sortedKeys(e.Kwargs)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, a := range e.Args {
		for _, k := range keys {
			if fills(k, names[i], names) {
				return nil, fmt.Errorf("celery: got multiple values for argument %q (positional %d and kwarg %q)", names[i], i, k)
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(names[i]))
		b.WriteByte(':')
		b.Write(a)
	}
	for i, k := range keys {
		if i > 0 || len(e.Args) > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k) // JSON's escaping, not Go's
		b.Write(key)
		b.WriteByte(':')
		b.Write(e.Kwargs[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// fills reports whether kwarg k sets the field named name, as
// encoding/json matches keys: exactly, or ignoring case when no field has
// k's exact name. A kwarg "name" sets a field Name.
func fills(k, name string, names []string) bool {
	return k == name || strings.EqualFold(k, name) && !slices.Contains(names, k)
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fieldNames lists the JSON names of t's fields in declaration order, as
// positional args fill them.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" { // json:"-," names a field "-"
			continue
		}
		tag, _, _ = strings.Cut(tag, ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && tag == "" && ft.Kind() == reflect.Struct {
			names = append(names, fieldNames(ft)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		names = append(names, tag)
	}
	return names
}

// LooksLikeV1 reports whether a message that carries no task header is
// Celery's protocol v1, whose body holds the task name and arguments: so
// that it is refused with ErrProtocolV1 rather than as nameless.
func LooksLikeV1(contentType string, body []byte) bool {
	if contentType == "application/x-python-serialize" {
		return true // pickle, protocol 1's default
	}
	var v1 struct {
		Task *string         `json:"task"`
		ID   *string         `json:"id"`
		Args json.RawMessage `json:"args"`
	}
	return json.Unmarshal(body, &v1) == nil && v1.Task != nil && v1.ID != nil && v1.Args != nil
}

// Next is a task a Celery message asks to be sent once it ran: the next
// step of its chain, a callback or an errback, ready to publish.
type Next struct {
	Task, ID string
	// Queue, Exchange and RoutingKey are the signature's routing options;
	// all empty when it sets none, and the sender routes it.
	Queue, Exchange, RoutingKey string
	ReplyTo                     string // where its result goes, if awaited
	Priority                    uint8
	Headers                     map[string]any
	Body                        []byte
}

// OnSuccess returns what a run of m that returned result (JSON; nil for
// none) sends on: the chain's next step, with the result prepended to its
// args and the rest of the chain in its embed, and each callback, with
// the result prepended.
func (e *Envelope) OnSuccess(m *task.Message, result json.RawMessage) ([]Next, error) {
	if result == nil {
		result = json.RawMessage("null")
	}
	var out []Next
	if n := len(e.Embed.Chain); n > 0 {
		step, err := next(m, e.Embed.Chain[n-1], result, e.Embed.Chain[:n-1])
		if err != nil {
			return nil, err
		}
		out = append(out, step)
	}
	for _, raw := range e.Embed.Callbacks {
		cb, err := next(m, raw, result, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, cb)
	}
	return out, nil
}

// OnFailure returns the errbacks a run of m that failed for good sends,
// each with m's id as its first arg: what Celery does for an errback its
// worker does not have (its other kind needs the Python request object).
func (e *Envelope) OnFailure(m *task.Message) ([]Next, error) {
	var out []Next
	id, _ := json.Marshal(m.ID)
	for _, raw := range e.Embed.Errbacks {
		eb, err := next(m, raw, id, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, eb)
	}
	return out, nil
}

// next builds the message for signature raw, sent by m with first
// prepended to its args (unless the signature is immutable) and chain as
// the rest of its chain.
func next(m *task.Message, raw, first json.RawMessage, chain []json.RawMessage) (Next, error) {
	s, err := parseSignature(raw)
	if err != nil {
		return Next{}, fmt.Errorf("celery: %w", err)
	}
	args := s.Args
	if !s.Immutable {
		args = append([]json.RawMessage{first}, s.Args...)
	}
	if args == nil {
		args = []json.RawMessage{}
	}
	kwargs := s.Kwargs
	if kwargs == nil {
		kwargs = map[string]json.RawMessage{}
	}
	opt := options(s.Options)
	id := opt.str("task_id")
	if id == "" {
		id = uuid.NewString()
	}
	root, _ := m.Headers[HeaderRootID].(string)
	if root == "" {
		root = m.ID
	}
	embed := map[string]any{"callbacks": opt.raw("link"), "errbacks": opt.raw("link_error"), "chain": nil, "chord": nil}
	if len(chain) > 0 {
		embed["chain"] = chain
	}
	argsJSON, err := json.Marshal(args)
	if err != nil {
		return Next{}, err
	}
	kwargsJSON, err := json.Marshal(kwargs)
	if err != nil {
		return Next{}, err
	}
	embedJSON, err := json.Marshal(embed)
	if err != nil {
		return Next{}, err
	}
	now := time.Now()
	eta, expires := opt.time("eta", now), opt.time("expires", now)
	if cd, ok := opt.num("countdown"); ok {
		eta = now.Add(time.Duration(cd * float64(time.Second)))
	}
	n := Next{
		Task: s.Task, ID: id,
		Queue: opt.str("queue"), Exchange: opt.str("exchange"), RoutingKey: opt.str("routing_key"),
		ReplyTo: opt.str("reply_to"),
		Body:    body(argsJSON, kwargsJSON, embedJSON),
		Headers: map[string]any{
			HeaderLang: "go", task.HeaderTask: s.Task, task.HeaderID: id,
			HeaderRootID: root, HeaderParentID: m.ID, HeaderGroup: opt.strOrNil("group_id"),
			task.HeaderRetries: int64(0), task.HeaderTimeLimit: []any{opt.numOrNil("time_limit"), opt.numOrNil("soft_time_limit")},
			HeaderIgnoreResult: opt.str("reply_to") == "", HeaderArgsRepr: clip(argsJSON), HeaderKwargsRepr: clip(kwargsJSON),
			HeaderOrigin: origin(), task.HeaderETA: isoTime(eta), task.HeaderExpires: isoTime(expires),
		},
	}
	if p, ok := opt.num("priority"); ok && p >= 0 && p <= 255 {
		n.Priority = uint8(p)
	}
	return n, nil
}

// options reads a signature's options, which Celery fills with whatever
// apply_async was given: only the ones warren acts on are read.
type options map[string]json.RawMessage

func (o options) str(k string) string {
	var s string
	_ = json.Unmarshal(o[k], &s)
	return s
}

func (o options) strOrNil(k string) any {
	if s := o.str(k); s != "" {
		return s
	}
	return nil
}

func (o options) num(k string) (float64, bool) {
	var f *float64
	if json.Unmarshal(o[k], &f) != nil || f == nil {
		return 0, false
	}
	return *f, true
}

func (o options) numOrNil(k string) any {
	if f, ok := o.num(k); ok {
		return f
	}
	return nil
}

// raw returns a list option (link, link_error) as a list of signatures:
// Celery accepts one signature or a list.
func (o options) raw(k string) []json.RawMessage {
	v, ok := o[k]
	if !ok || isNull(v) {
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) == nil {
		return list
	}
	return []json.RawMessage{v}
}

// time reads eta or expires: an ISO 8601 string, or for expires a number
// of seconds from now (Celery's countdown is eta's number).
func (o options) time(k string, now time.Time) time.Time {
	if f, ok := o.num(k); ok {
		if k != "expires" {
			return time.Time{}
		}
		return now.Add(time.Duration(f * float64(time.Second)))
	}
	s := o.str(k)
	if s == "" {
		return time.Time{}
	}
	t, _ := task.ParseTime(s) // a bad one is no time at all: the step still runs
	return t
}
