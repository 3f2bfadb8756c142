// Package celery lets warren share tasks with Celery apps on the same
// RabbitMQ: Go handlers run tasks that Python sends with send_task or
// .delay(), and Go code enqueues tasks that stock Celery workers run, each
// side awaiting the other's results.
//
// A task shared with Celery is defined with Define (or DefineWithResult),
// which makes it travel in Celery's message protocol v2: headers task, id,
// root_id, parent_id, eta, expires, retries, timelimit; a JSON body
// [args, kwargs, embed]. How args and kwargs map to the Go payload is
// Protocol's Decode (docs/celery.md has the table); Encode is the reverse.
// Everything else is warren's: a worker given the handlers consumes the
// queue Celery publishes to, retries and dead-letters as for any task,
// and replies to Celery's RPC result backend in its own shape
// (result.Update.EncodeCelery). Chains, callbacks and errbacks sent by
// Celery are followed (Envelope.OnSuccess, Envelope.OnFailure); chords
// and group steps, which need a result store warren does not keep, are
// refused with a dead letter that says so.
package celery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// DefaultQueue is the queue (and direct exchange, and routing key) a
// Celery app sends to and a Celery worker consumes when nothing is
// configured: task_default_queue.
const DefaultQueue = "celery"

// Headers of Celery's protocol v2 beyond the ones warren shares with it
// (task.HeaderTask, HeaderID, HeaderRetries, HeaderETA, HeaderExpires,
// HeaderTimeLimit).
const (
	HeaderLang         = "lang"          // the sender's language: "py" from Celery, "go" from warren
	HeaderRootID       = "root_id"       // the id of the first task of the workflow
	HeaderParentID     = "parent_id"     // the id of the task that sent this one
	HeaderGroup        = "group"         // the group the task belongs to
	HeaderIgnoreResult = "ignore_result" // true: the sender wants no result
	HeaderArgsRepr     = "argsrepr"      // args for logs
	HeaderKwargsRepr   = "kwargsrepr"    // kwargs for logs
	HeaderOrigin       = "origin"        // the sending node
)

// Protocol is Celery's message protocol v2 as a task.Format. Define sets
// it; task.WithFormat(celery.Protocol) does the same for task.Define.
var Protocol task.Format = protocol{}

type protocol struct{}

// Is reports whether f is Celery's protocol: the worker asks, to reply
// and follow workflows as Celery does.
func Is(f task.Format) bool {
	_, ok := f.(protocol)
	return ok
}

// Name returns "celery".
func (protocol) Name() string { return "celery" }

// Define returns the definition of a task shared with Celery: name is the
// Celery task's name ("tasks.add"), T the Go payload its args and kwargs
// map to. Enqueue it to reach a Celery worker; register its Handler to
// run what Celery sends.
func Define[T any](name string, opts ...task.DefOption) *task.Def[T] {
	return task.Define[T](name, append(opts, task.WithFormat(Protocol))...)
}

// DefineWithResult is Define for a task with a result of type R: a Go
// caller awaits a Celery worker's result with producer.EnqueueResult, and
// AsyncResult.get() in Python receives a Go handler's.
func DefineWithResult[T, R any](name string, opts ...task.DefOption) *task.ResultDef[T, R] {
	return task.DefineWithResult[T, R](name, append(opts, task.WithFormat(Protocol))...)
}

// Topology is the exchange, queue and binding a Celery app declares for a
// queue it sends to: a durable direct exchange and a durable classic
// queue, both named queue, bound with the queue's name. Give it to a
// worker or producer to declare the same entities, so that neither side
// meets a PRECONDITION_FAILED.
func Topology(queue string) routing.Topology {
	return routing.Topology{
		Exchanges: []routing.Exchange{{Name: queue}},
		Queues:    []routing.Queue{{Name: queue}},
		Bindings:  []routing.Binding{{Exchange: queue, Queue: queue, Key: queue}},
	}
}

// Route is where Celery sends a task routed to queue: the exchange named
// after the queue, with the queue's name as routing key.
func Route(queue string) routing.Route { return routing.Route{Exchange: queue, Key: queue} }

// Call is a payload spelled out as Celery's args and kwargs, for tasks
// whose parameters no Go struct describes: Define[celery.Call]. Decoded
// values are what encoding/json gives an any (float64 numbers, maps,
// slices).
type Call struct {
	Args   []any
	Kwargs map[string]any
}

// MarshalCelery returns c's args and kwargs as JSON.
func (c Call) MarshalCelery() (args, kwargs []byte, err error) {
	if args, err = json.Marshal(orEmpty(c.Args)); err != nil {
		return nil, nil, err
	}
	if c.Kwargs == nil {
		return args, []byte("{}"), nil
	}
	kwargs, err = json.Marshal(c.Kwargs)
	return args, kwargs, err
}

func orEmpty(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

// UnmarshalCelery fills c from a message's args and kwargs.
func (c *Call) UnmarshalCelery(args []json.RawMessage, kwargs map[string]json.RawMessage) error {
	c.Args = make([]any, len(args))
	for i, a := range args {
		if err := json.Unmarshal(a, &c.Args[i]); err != nil {
			return fmt.Errorf("args[%d]: %w", i, err)
		}
	}
	c.Kwargs = make(map[string]any, len(kwargs))
	for k, v := range kwargs {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("kwargs[%q]: %w", k, err)
		}
		c.Kwargs[k] = x
	}
	return nil
}

// Marshaler is a payload that builds its own args and kwargs (JSON: a
// list and an object) instead of the mapping Encode applies.
type Marshaler interface {
	MarshalCelery() (args, kwargs []byte, err error)
}

// Unmarshaler is a payload that reads its own args and kwargs instead of
// the mapping Decode applies.
type Unmarshaler interface {
	UnmarshalCelery(args []json.RawMessage, kwargs map[string]json.RawMessage) error
}

// emptyEmbed is the embed of a task that starts no workflow.
const emptyEmbed = `{"callbacks":null,"errbacks":null,"chain":null,"chord":null}`

// Encode builds m's body, [args, kwargs, embed], from payload, and adds
// Celery's headers: what a stock Celery 5 worker needs to run it.
func (protocol) Encode(m *task.Message, payload any, c task.Codec) error {
	if c != nil && c.ContentType() != task.ContentTypeJSON {
		return fmt.Errorf("celery: tasks shared with Celery travel as JSON, not %s", c.ContentType())
	}
	args, kwargs, err := marshalArgs(payload)
	if err != nil {
		return fmt.Errorf("celery: %s: %w", m.Task, err)
	}
	m.Body = body(args, kwargs, []byte(emptyEmbed))
	m.ContentType = task.ContentTypeJSON
	h := m.Headers
	h[HeaderLang] = "go"
	h[task.HeaderID] = m.ID
	h[HeaderRootID] = m.ID
	h[HeaderParentID] = nil
	h[HeaderGroup] = nil
	h[task.HeaderRetries] = int64(m.Retries)
	h[task.HeaderTimeLimit] = []any{nil, nil}
	h[HeaderIgnoreResult] = m.ReplyTo == ""
	h[HeaderArgsRepr] = clip(args)
	h[HeaderKwargsRepr] = clip(kwargs)
	h[HeaderOrigin] = origin()
	h[task.HeaderETA] = isoTime(m.ETA)
	h[task.HeaderExpires] = isoTime(m.Expires)
	return nil
}

// origin names this process as Celery names its nodes, for logs on the
// Celery side; looked up on first use, not at start-up.
var origin = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("gen%d@%s", os.Getpid(), host)
})

// clip bounds argsrepr and kwargsrepr, which are only for logs, as
// Celery's own default does (1024 bytes), without splitting a UTF-8
// sequence: a header that is not valid UTF-8 reaches Python as bytes.
func clip(b []byte) string {
	const limit = 1024
	if len(b) <= limit {
		return string(b)
	}
	n := limit
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "..."
}

// isoTime writes t as Celery's parser reads it: microseconds at most (it
// takes the fraction's digits as microseconds) and a +00:00 offset; nil
// for the zero time, as Celery sends an absent eta or expires.
func isoTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
}

func body(args, kwargs, embed []byte) []byte {
	b := make([]byte, 0, len(args)+len(kwargs)+len(embed)+4)
	b = append(b, '[')
	b = append(b, args...)
	b = append(b, ',')
	b = append(b, kwargs...)
	b = append(b, ',')
	b = append(b, embed...)
	return append(b, ']')
}

// marshalArgs is the mapping from a Go payload to Celery's args and
// kwargs: a struct or a map goes as kwargs (by its JSON names), a slice or
// an array as args, anything else as the one positional argument.
func marshalArgs(payload any) (args, kwargs []byte, err error) {
	if m, ok := payload.(Marshaler); ok {
		return m.MarshalCelery()
	}
	v := reflect.ValueOf(payload)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	enc, err := json.Marshal(payload)
	if err != nil {
		return nil, nil, err
	}
	switch v.Kind() {
	case reflect.Struct, reflect.Map:
		if bytes.Equal(enc, []byte("null")) {
			enc = []byte("{}")
		}
		if len(enc) == 0 || enc[0] != '{' {
			return nil, nil, fmt.Errorf("a %s payload must encode as a JSON object to be kwargs, not %.20s", v.Type(), enc)
		}
		return []byte("[]"), enc, nil
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() != reflect.Uint8 { // []byte encodes as a string
			if bytes.Equal(enc, []byte("null")) {
				enc = []byte("[]")
			}
			return enc, []byte("{}"), nil
		}
	}
	return body1(enc), []byte("{}"), nil
}

func body1(arg []byte) []byte {
	b := make([]byte, 0, len(arg)+2)
	b = append(b, '[')
	b = append(b, arg...)
	return append(b, ']')
}

// Decode reads a Celery body, [args, kwargs, embed], into p: see Bind for
// the mapping.
func (protocol) Decode(body []byte, c task.Codec, p any) error {
	if c != nil && c.ContentType() != task.ContentTypeJSON { // nil: JSON, as for Encode
		return UnsupportedSerializer(c.ContentType())
	}
	e, err := ParseBody(body)
	if err != nil {
		return err
	}
	return e.Bind(p)
}

// ErrUnsupported is wrapped by the errors for Celery messages warren does
// not read: a serializer other than JSON, compression, protocol 1.
var ErrUnsupported = errors.New("celery: not supported")

// UnsupportedSerializer is the error for a Celery message in a serializer
// other than JSON, naming Celery's setting that changes it.
func UnsupportedSerializer(contentType string) error {
	name := contentType
	switch contentType {
	case "application/x-python-serialize":
		name = "pickle"
	case "application/x-yaml":
		name = "yaml"
	case "application/x-msgpack":
		name = "msgpack"
	}
	return fmt.Errorf("%w: the %s serializer, only JSON; set task_serializer = 'json' (Celery's default) in the sending app", ErrUnsupported, name)
}

// UnsupportedCompression is the error for a Celery message compressed
// with task_compression (its compression header names the scheme).
func UnsupportedCompression(scheme string) error {
	return fmt.Errorf("%w: a body compressed with %.40s; leave task_compression unset (Celery's default) in the sending app", ErrUnsupported, scheme)
}

// ErrProtocolV1 is the error for a message in Celery's protocol v1 (the
// task name and arguments in the body, no task header), which warren
// does not read.
var ErrProtocolV1 = fmt.Errorf("%w: message protocol v1; set task_protocol = 2 (Celery's default since 4.0) in the sending app", ErrUnsupported)

// HeaderCompression names the scheme of a body Celery compressed
// (task_compression).
const HeaderCompression = "compression"
