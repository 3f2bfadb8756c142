package task

import (
	"context"
	"fmt"
	"time"
)

// Def is a task definition: a stable name on the wire plus the Go type of
// its payload. Define one per task, as a package-level value, and use it on
// both sides: the producer enqueues Def.New(payload) and the worker registers
// Def.Handler(fn), so the compiler catches a payload mismatch.
type Def[T any] struct {
	name                  string
	aliases               []string
	codec                 Codec
	format                Format // nil: warren's own (the payload is the body)
	settings              Settings
	priority              uint8
	unique                func(T) string // nil: not unique
	uniqueFor, uniqueHold time.Duration
}

// Settings are how a worker runs one kind of task. Zero fields mean the
// worker's defaults. They are plain data so that this package needs no
// other: the worker turns them into a retry.Policy.
type Settings struct {
	// MaxAttempts counts runs in all, the first included; 1 never retries.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the exponential backoff between
	// attempts.
	BackoffBase, BackoffMax time.Duration
	// Timeout bounds one run: the handler's context carries the deadline,
	// and exceeding it is an ordinary failure.
	Timeout time.Duration
	// DropExpired acks an expired task without a dead letter; by default it
	// is dead-lettered with reason "expired".
	DropExpired bool
}

// DefOption customises a Def.
type DefOption func(*defOptions)

type defOptions struct {
	aliases               []string
	codec                 Codec
	format                Format
	settings              Settings
	priority              uint8
	unique                any // a func(T) string, checked against the Def's T by Define
	uniqueFor, uniqueHold time.Duration
}

// WithMaxAttempts caps the runs of the task, the first included.
func WithMaxAttempts(n int) DefOption {
	return func(o *defOptions) { o.settings.MaxAttempts = n }
}

// WithBackoff sets the delay before the first retry (base) and the cap the
// doubling delays stop at (max).
func WithBackoff(base, max time.Duration) DefOption {
	return func(o *defOptions) { o.settings.BackoffBase, o.settings.BackoffMax = base, max }
}

// WithTimeout bounds each run of the task.
func WithTimeout(d time.Duration) DefOption {
	return func(o *defOptions) { o.settings.Timeout = d }
}

// WithDropExpired makes an expired task vanish (acked, counted) instead of
// being dead-lettered: for tasks whose result is worthless late, such as a
// push notification.
func WithDropExpired() DefOption {
	return func(o *defOptions) { o.settings.DropExpired = true }
}

// WithPriority makes p the AMQP priority the task is enqueued with when the
// enqueue sets none (producer.WithPriority wins, even with 0). Only a
// priority queue orders by it (routing.Queue.MaxPriority); other queues
// keep it on the message and ignore it.
func WithPriority(p uint8) DefOption {
	return func(o *defOptions) { o.priority = p }
}

// WithAliases lets a renamed task still accept messages sent under its old
// names: the registry routes every alias to the same handler. Enqueue under
// the new name once every worker knows it.
func WithAliases(names ...string) DefOption {
	return func(o *defOptions) { o.aliases = append(o.aliases, names...) }
}

// WithCodec makes the producer encode this task's payloads with c instead of
// JSON. Workers pick the decoder by content_type, so they need c in their
// registry's codecs too.
func WithCodec(c Codec) DefOption {
	return func(o *defOptions) { o.codec = c }
}

// WithFormat makes the task travel in another protocol's message shape
// than warren's own: the producer builds its messages with f and the
// worker reads them with f. Package celery's Protocol is Celery's message
// protocol v2, for tasks shared with Celery apps (celery.Define sets it).
func WithFormat(f Format) DefOption {
	return func(o *defOptions) { o.format = f }
}

// WithUnique makes the task unique by key(payload): while a task with the
// same key is queued, delayed or running, producer.Enqueue refuses another
// with a *producer.DuplicateError naming the one there. d bounds the lock:
// if the worker never hears of the task's end (its queue was purged, the
// broker dead-lettered it by a delivery limit), the lock frees itself d
// after the enqueue, and a task still queued then has lost its
// uniqueness; so make d longer than the task may wait and run. An empty
// key makes that enqueue an ordinary one. key's payload type must be the
// definition's: Define panics otherwise. producer.WithUnique overrides it
// per enqueue. README, "Unique tasks", says what it guarantees.
//
//	var Report = task.Define[Account]("report",
//		task.WithUnique(func(a Account) string { return a.ID }, time.Hour))
func WithUnique[T any](key func(payload T) string, d time.Duration) DefOption {
	return func(o *defOptions) { o.unique, o.uniqueFor = key, d }
}

// WithUniqueHold keeps a unique task's lock for h after the task succeeded
// or ended in the dead letters, so that the same key is refused for h more:
// at most one run per key in h. It needs WithUnique.
func WithUniqueHold(h time.Duration) DefOption {
	return func(o *defOptions) { o.uniqueHold = h }
}

// Unique is what makes one enqueue unique: its key and how long the lock
// holds at most (For) and after the task ended (Hold). The zero value is an
// ordinary enqueue.
type Unique struct {
	Key  string
	For  time.Duration
	Hold time.Duration
}

// Define returns the definition of the task called name with payload type T.
// It panics on an empty name, because that is a programming error found at
// start-up.
func Define[T any](name string, opts ...DefOption) *Def[T] {
	if name == "" {
		panic("task: Define with an empty name")
	}
	var o defOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.codec == nil {
		o.codec = JSON{}
	}
	d := &Def[T]{name: name, aliases: o.aliases, codec: o.codec, format: o.format, settings: o.settings, priority: o.priority, uniqueFor: o.uniqueFor, uniqueHold: o.uniqueHold}
	if o.unique != nil {
		key, ok := o.unique.(func(T) string)
		if !ok {
			panic(fmt.Sprintf("task: Define(%q): WithUnique's key is a %T, want a func(%T) string", name, o.unique, *new(T)))
		}
		if o.uniqueFor <= 0 {
			panic(fmt.Sprintf("task: Define(%q): WithUnique needs a duration above zero", name))
		}
		d.unique = key
	}
	return d
}

// Settings returns how workers run this task.
func (d *Def[T]) Settings() Settings { return d.settings }

// Name returns the task name sent in the "task" header.
func (d *Def[T]) Name() string { return d.name }

// Priority returns the priority the task is enqueued with unless the
// enqueue sets one (WithPriority); 0 by default.
func (d *Def[T]) Priority() uint8 { return d.priority }

// New wraps a payload as a Task ready to enqueue, with the definition's
// priority; for a unique task (WithUnique) it computes the key now.
func (d *Def[T]) New(payload T) Task {
	t := Task{Name: d.name, Payload: payload, Codec: d.codec, Format: d.format, Priority: d.priority}
	if d.unique != nil {
		t.Unique = Unique{Key: d.unique(payload), For: d.uniqueFor, Hold: d.uniqueHold}
	}
	return t
}

// Handler binds fn to this definition, for a Registry. The body is decoded
// into a T with the codec named by the message's content_type.
func (d *Def[T]) Handler(fn func(ctx context.Context, payload T) error) Handler {
	return Handler{
		name:     d.name,
		aliases:  d.aliases,
		settings: d.settings,
		format:   d.format,
		run: func(ctx context.Context, c Codec, body []byte) ([]byte, error) {
			var p T
			if err := d.decode(c, body, &p); err != nil {
				return nil, err
			}
			return nil, fn(ctx, p)
		},
	}
}

// decode reads a message body into p, with the definition's format if it
// has one, else as the bare payload in codec c.
func (d *Def[T]) decode(c Codec, body []byte, p *T) error {
	var err error
	if d.format != nil {
		err = d.format.Decode(body, c, p)
	} else {
		err = c.Unmarshal(body, p)
	}
	if err != nil {
		return &DecodeError{Task: d.name, Err: err}
	}
	return nil
}

// ResultDef is a task definition whose handler returns a result of type R,
// which a caller can await (producer.EnqueueResult). It is a Def[T] too:
// Name, New and Settings work the same.
type ResultDef[T, R any] struct {
	*Def[T]
}

// DefineWithResult returns the definition of the task called name with
// payload type T and result type R.
func DefineWithResult[T, R any](name string, opts ...DefOption) *ResultDef[T, R] {
	return &ResultDef[T, R]{Def: Define[T](name, opts...)}
}

// Handler binds fn to this definition. Its result is encoded as JSON (the
// result travels inside a JSON update, whatever the payload's codec) and
// sent to the caller, if one awaits it.
func (d *ResultDef[T, R]) Handler(fn func(ctx context.Context, payload T) (R, error)) Handler {
	codec := JSON{}
	return Handler{
		name:     d.name,
		aliases:  d.aliases,
		settings: d.settings,
		format:   d.format,
		run: func(ctx context.Context, c Codec, body []byte) ([]byte, error) {
			var p T
			if err := d.decode(c, body, &p); err != nil {
				return nil, err
			}
			r, err := fn(ctx, p)
			if err != nil {
				return nil, err
			}
			out, err := codec.Marshal(r)
			if err != nil {
				return nil, &ResultError{Task: d.name, Err: err}
			}
			return out, nil
		},
	}
}

// DecodeResult decodes a result (JSON) into an R.
func (d *ResultDef[T, R]) DecodeResult(body []byte) (R, error) {
	var r R
	err := JSON{}.Unmarshal(body, &r)
	return r, err
}

// Task is one task ready to enqueue: a name and a payload not yet encoded.
// Build it with Def.New so that the payload type is checked.
type Task struct {
	Name    string
	Payload any
	Codec   Codec // nil means JSON
	// Format is the message shape the task travels in (WithFormat); nil
	// is warren's own.
	Format Format
	// Priority is the AMQP priority the task is enqueued with unless the
	// enqueue sets one (producer.WithPriority); Def.New copies the
	// definition's (WithPriority).
	Priority uint8
	Unique   Unique // zero: not unique
}

// Encode returns the body and content type the task travels with in
// warren's own format: the payload encoded by its codec. A task with a
// Format is built by its Format's Encode instead.
func (t Task) Encode() (body []byte, contentType string, err error) {
	c := t.Codec
	if c == nil {
		c = JSON{}
	}
	body, err = c.Marshal(t.Payload)
	if err != nil {
		return nil, "", fmt.Errorf("task: encode %s: %w", t.Name, err)
	}
	return body, c.ContentType(), nil
}

// Handler runs one kind of task; build it with Def.Handler.
type Handler struct {
	name     string
	aliases  []string
	settings Settings
	format   Format
	run      func(ctx context.Context, c Codec, body []byte) ([]byte, error)
}

// Name returns the task name the handler serves.
func (h Handler) Name() string { return h.name }

// Settings returns how workers run the handler's task.
func (h Handler) Settings() Settings { return h.settings }

// Format returns the message shape the handler reads (WithFormat); nil is
// warren's own.
func (h Handler) Format() Format { return h.format }

// Format is a message shape other than warren's own, for tasks shared with
// another task queue's clients (package celery's Protocol is Celery's
// protocol v2). warren's headers (task, id, retries, eta, expires) are
// common to both; a Format decides the body and adds its own headers.
type Format interface {
	// Name names the format in errors and logs ("celery").
	Name() string
	// Encode fills m's Body and ContentType from payload, encoded with
	// codec c where the format leaves that open, and adds its own headers
	// to m.Headers, which already holds warren's for m's fields.
	Encode(m *Message, payload any, c Codec) error
	// Decode reads a body in this format, whose content type names codec
	// c, into the payload p points to.
	Decode(body []byte, c Codec, p any) error
}
