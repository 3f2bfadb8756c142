package task

import (
	"context"
	"fmt"
	"runtime/debug"
)

// Registry maps task names to handlers and content types to codecs. A
// worker owns one; there is no default registry. The zero value is ready
// to use.
type Registry struct {
	handlers map[string]Handler
	codecs   Codecs
}

// NewRegistry returns an empty registry that decodes JSON.
func NewRegistry() *Registry {
	return &Registry{handlers: make(map[string]Handler)}
}

// Register adds handlers under their names and aliases. A name registered
// twice is an error: two handlers for one task is always a mistake.
func (r *Registry) Register(hs ...Handler) error {
	// Check everything first, so that a failed Register changes nothing.
	names := map[string]bool{}
	for _, h := range hs {
		if h.run == nil {
			return fmt.Errorf("task: register: handler %q was not built with Def.Handler", h.name)
		}
		for _, n := range append([]string{h.name}, h.aliases...) {
			if _, dup := r.handlers[n]; dup || names[n] {
				return fmt.Errorf("task: register: %q is already registered", n)
			}
			names[n] = true
		}
	}
	if r.handlers == nil {
		r.handlers = make(map[string]Handler)
	}
	for _, h := range hs {
		for _, n := range append([]string{h.name}, h.aliases...) {
			r.handlers[n] = h
		}
	}
	return nil
}

// MustRegister is Register for start-up code: it panics on error.
func (r *Registry) MustRegister(hs ...Handler) {
	if err := r.Register(hs...); err != nil {
		panic(err)
	}
}

// AddCodec lets the registry decode bodies of c's content type.
func (r *Registry) AddCodec(c Codec) { r.codecs.Add(c) }

// Settings returns the settings of the task called name (zero if none
// serves it).
func (r *Registry) Settings(name string) Settings { return r.handlers[name].settings }

// Format returns the message shape of the task called name (WithFormat):
// nil for warren's own, or for a name no handler serves.
func (r *Registry) Format(name string) Format { return r.handlers[name].format }

// Has reports whether a handler serves name.
func (r *Registry) Has(name string) bool {
	_, ok := r.handlers[name]
	return ok
}

// Names returns the registered task names and aliases.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	return names
}

// Dispatch runs the handler for m. It returns ErrUnknownTask for a name no
// handler serves, a *DecodeError for a body or content type it cannot
// decode, a *PanicError if the handler panicked, and otherwise what the
// handler returned. The handler's context carries m (see FromContext).
func (r *Registry) Dispatch(ctx context.Context, m *Message) error {
	_, err := r.DispatchResult(ctx, m)
	return err
}

// DispatchResult is Dispatch that also returns the encoded result of a
// handler built with ResultDef.Handler (nil for other handlers).
func (r *Registry) DispatchResult(ctx context.Context, m *Message) (result []byte, err error) {
	h, ok := r.handlers[m.Task]
	if !ok {
		if m.Task == "" {
			return nil, ErrNoTaskName
		}
		return nil, fmt.Errorf("%w: %q", ErrUnknownTask, m.Task)
	}
	c, err := r.codecs.Lookup(m.ContentType)
	if err != nil {
		return nil, &DecodeError{Task: m.Task, Err: err}
	}
	defer func() {
		if v := recover(); v != nil {
			result, err = nil, &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.run(withMessage(ctx, m), c, m.Body)
}

type messageKey struct{}

func withMessage(ctx context.Context, m *Message) context.Context {
	return context.WithValue(ctx, messageKey{}, m)
}

// FromContext returns the message a handler is running, so a handler can
// read the task id (a stable key for idempotency) or its attempt count.
func FromContext(ctx context.Context) (*Message, bool) {
	m, ok := ctx.Value(messageKey{}).(*Message)
	return m, ok
}
