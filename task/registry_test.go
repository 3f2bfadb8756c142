package task

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

type media struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

func TestRegisterDuplicates(t *testing.T) {
	a := Define[media]("a", WithAliases("old_a"))
	b := Define[media]("b")
	alsoA := Define[media]("a")
	bAliasA := Define[media]("b2", WithAliases("a"))
	bAliasOldA := Define[media]("b3", WithAliases("old_a"))
	self := Define[media]("self", WithAliases("self"))
	noop := func(context.Context, media) error { return nil }

	tests := []struct {
		name    string
		hs      []Handler
		wantDup string // "" means Register must succeed
	}{
		{name: "distinct", hs: []Handler{a.Handler(noop), b.Handler(noop)}},
		{name: "same def twice", hs: []Handler{a.Handler(noop), a.Handler(noop)}, wantDup: "a"},
		{name: "two defs, one name", hs: []Handler{a.Handler(noop), alsoA.Handler(noop)}, wantDup: "a"},
		{name: "alias takes a name", hs: []Handler{a.Handler(noop), bAliasA.Handler(noop)}, wantDup: "a"},
		{name: "name taken by an alias", hs: []Handler{bAliasA.Handler(noop), a.Handler(noop)}, wantDup: "a"},
		{name: "alias taken by an alias", hs: []Handler{a.Handler(noop), bAliasOldA.Handler(noop)}, wantDup: "old_a"},
		{name: "alias equal to own name", hs: []Handler{self.Handler(noop)}, wantDup: "self"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := NewRegistry().Register(tc.hs...)
			if tc.wantDup == "" {
				if err != nil {
					t.Fatalf("Register = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Register succeeded, want an error for %q", tc.wantDup)
			}
			if !strings.Contains(err.Error(), `"`+tc.wantDup+`"`) {
				t.Errorf("error %q does not name %q", err, tc.wantDup)
			}
		})
	}
}

func TestRegisterHandlerNotFromDef(t *testing.T) {
	if err := NewRegistry().Register(Handler{}); err == nil {
		t.Fatal("Register(Handler{}) succeeded, want an error")
	}
}

func TestMustRegisterPanicsOnDuplicate(t *testing.T) {
	d := Define[media]("a")
	h := d.Handler(func(context.Context, media) error { return nil })
	defer func() {
		if recover() == nil {
			t.Error("MustRegister with a duplicate did not panic")
		}
	}()
	NewRegistry().MustRegister(h, h)
}

func TestDefineEmptyNamePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error(`Define("") did not panic`)
		}
	}()
	Define[media]("")
}

func TestDefHandlerDecodesTypedPayload(t *testing.T) {
	d := Define[media]("process_media")
	var got media
	calls := 0
	r := NewRegistry()
	r.MustRegister(d.Handler(func(_ context.Context, p media) error {
		calls++
		got = p
		return nil
	}))
	if h := d.Handler(nil); h.Name() != "process_media" {
		t.Errorf("Handler.Name() = %q", h.Name())
	}
	m := &Message{Task: "process_media", ContentType: "application/json", Body: []byte(`{"name":"/tmp/lolcat1.avi","size":1301013}`)}
	if err := r.Dispatch(context.Background(), m); err != nil {
		t.Fatalf("Dispatch = %v", err)
	}
	if calls != 1 || got != (media{Name: "/tmp/lolcat1.avi", Size: 1301013}) {
		t.Errorf("handler ran %d times with %+v", calls, got)
	}
}

var errHandler = errors.New("handler failed")

func TestDispatch(t *testing.T) {
	r := NewRegistry()
	var calls int
	ok := Define[media]("ok")
	fails := Define[media]("fails")
	panics := Define[media]("panics")
	r.MustRegister(
		ok.Handler(func(context.Context, media) error { calls++; return nil }),
		fails.Handler(func(context.Context, media) error { calls++; return errHandler }),
		panics.Handler(func(context.Context, media) error { calls++; panic("boom") }),
	)
	good := []byte(`{"name":"a.avi","size":1}`)

	tests := []struct {
		name      string
		m         Message
		check     func(t *testing.T, err error)
		wantCalls int
	}{
		{
			name: "success", m: Message{Task: "ok", Body: good}, wantCalls: 1,
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
			},
		},
		{
			name: "unknown task", m: Message{Task: "nope", Body: good},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrUnknownTask) {
					t.Errorf("err = %v, want ErrUnknownTask", err)
				}
				if err != nil && !strings.Contains(err.Error(), `"nope"`) {
					t.Errorf("error %q does not name the task", err)
				}
			},
		},
		{
			name: "no task name", m: Message{Body: good},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrNoTaskName) {
					t.Errorf("err = %v, want ErrNoTaskName", err)
				}
			},
		},
		{name: "bad JSON", m: Message{Task: "ok", Body: []byte(`{"name":`)}, check: wantDecodeError("ok", nil)},
		{name: "wrong JSON type", m: Message{Task: "ok", Body: []byte(`{"size":"big"}`)}, check: wantDecodeError("ok", nil)},
		{name: "empty body", m: Message{Task: "ok"}, check: wantDecodeError("ok", nil)},
		{
			name:  "unknown content type",
			m:     Message{Task: "ok", ContentType: "application/x-msgpack", Body: good},
			check: wantDecodeError("ok", ErrUnknownContentType),
		},
		{
			name: "handler error", m: Message{Task: "fails", Body: good}, wantCalls: 1,
			check: func(t *testing.T, err error) {
				if err != errHandler {
					t.Errorf("err = %v, want the handler's own error, unwrapped", err)
				}
				if got := Reason(err); got != "" {
					t.Errorf("Reason = %q, want none (the retry policy judges handler errors)", got)
				}
			},
		},
		{
			name: "handler panic", m: Message{Task: "panics", Body: good}, wantCalls: 1,
			check: func(t *testing.T, err error) {
				var pe *PanicError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v (%T), want *PanicError", err, err)
				}
				if pe.Value != "boom" {
					t.Errorf("PanicError.Value = %v, want boom", pe.Value)
				}
				if !bytes.Contains(pe.Stack, []byte("registry_test.go")) {
					t.Errorf("PanicError.Stack does not show the panicking handler:\n%s", pe.Stack)
				}
				if got := Reason(err); got != "" {
					t.Errorf("Reason = %q, want none (a panic is an ordinary failure)", got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls = 0
			m := tc.m
			tc.check(t, r.Dispatch(context.Background(), &m))
			if calls != tc.wantCalls {
				t.Errorf("handler ran %d times, want %d", calls, tc.wantCalls)
			}
		})
	}
}

// wantDecodeError checks for a *DecodeError naming task and, if target is
// not nil, wrapping it.
func wantDecodeError(task string, target error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("err = %v (%T), want *DecodeError", err, err)
		}
		if de.Task != task {
			t.Errorf("DecodeError.Task = %q, want %q", de.Task, task)
		}
		if target != nil && !errors.Is(err, target) {
			t.Errorf("err = %v, want it to wrap %v", err, target)
		}
		if got := Reason(err); got != "undecodable" {
			t.Errorf("Reason = %q, want undecodable", got)
		}
	}
}

func TestFromContext(t *testing.T) {
	if m, ok := FromContext(context.Background()); ok || m != nil {
		t.Errorf("FromContext(Background) = %v, %v; want nil, false", m, ok)
	}

	type ctxKey struct{}
	d := Define[media]("process_media")
	var seen *Message
	var parentValue any
	r := NewRegistry()
	r.MustRegister(d.Handler(func(ctx context.Context, _ media) error {
		m, ok := FromContext(ctx)
		if !ok {
			return errors.New("no message in context")
		}
		seen = m
		parentValue = ctx.Value(ctxKey{})
		return nil
	}))
	m := &Message{ID: "abc", Task: "process_media", Retries: 2, Body: []byte(`{}`)}
	ctx := context.WithValue(context.Background(), ctxKey{}, "parent")
	if err := r.Dispatch(ctx, m); err != nil {
		t.Fatal(err)
	}
	if seen != m {
		t.Errorf("FromContext gave %p, want the dispatched message %p", seen, m)
	}
	if parentValue != "parent" {
		t.Errorf("handler context lost the caller's values: got %v", parentValue)
	}
}

func TestWithAliases(t *testing.T) {
	d := Define[media]("process_media", WithAliases("media.process", "encode_video"))
	var got []string
	r := NewRegistry()
	r.MustRegister(d.Handler(func(ctx context.Context, p media) error {
		m, _ := FromContext(ctx)
		got = append(got, m.Task+":"+p.Name)
		return nil
	}))
	for _, name := range []string{"process_media", "media.process", "encode_video"} {
		if !r.Has(name) {
			t.Errorf("Has(%q) = false", name)
		}
		if err := r.Dispatch(context.Background(), &Message{Task: name, Body: []byte(`{"name":"x"}`)}); err != nil {
			t.Errorf("Dispatch(%q) = %v", name, err)
		}
	}
	if want := []string{"process_media:x", "media.process:x", "encode_video:x"}; !slices.Equal(got, want) {
		t.Errorf("handler saw %v, want %v", got, want)
	}
	if r.Has("other") {
		t.Error(`Has("other") = true`)
	}
	names := r.Names()
	slices.Sort(names)
	if want := []string{"encode_video", "media.process", "process_media"}; !slices.Equal(names, want) {
		t.Errorf("Names() = %v, want %v", names, want)
	}
	if d.Name() != "process_media" || d.New(media{}).Name != "process_media" {
		t.Errorf("Def name = %q / task name = %q, want the new name", d.Name(), d.New(media{}).Name)
	}
}

func TestRegistryAddCodec(t *testing.T) {
	d := Define[string]("shout", WithCodec(textCodec{}))
	var got string
	r := NewRegistry()
	r.MustRegister(d.Handler(func(_ context.Context, s string) error { got = s; return nil }))

	body, ct, err := d.New("hello").Encode()
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{Task: "shout", ContentType: ct, Body: body}
	if err := r.Dispatch(context.Background(), m); !errors.Is(err, ErrUnknownContentType) {
		t.Fatalf("before AddCodec: Dispatch = %v, want ErrUnknownContentType", err)
	}
	r.AddCodec(textCodec{})
	if err := r.Dispatch(context.Background(), m); err != nil {
		t.Fatalf("after AddCodec: Dispatch = %v", err)
	}
	if got != "hello" {
		t.Errorf("handler got %q, want hello", got)
	}
}

func TestCodecUnmarshalErrorIsDecodeError(t *testing.T) {
	d := Define[media]("t")
	r := NewRegistry()
	r.AddCodec(failCodec{})
	r.MustRegister(d.Handler(func(context.Context, media) error { return nil }))
	err := r.Dispatch(context.Background(), &Message{Task: "t", ContentType: failCodec{}.ContentType()})
	wantDecodeError("t", errCodec)(t, err)
}

func TestTaskEncode(t *testing.T) {
	tests := []struct {
		name     string
		task     Task
		wantBody string
		wantCT   string
		wantErr  error
	}{
		{name: "default JSON", task: Define[media]("m").New(media{Name: "a", Size: 2}), wantBody: `{"name":"a","size":2}`, wantCT: "application/json"},
		{name: "nil codec is JSON", task: Task{Name: "m", Payload: []int{1, 2}}, wantBody: `[1,2]`, wantCT: "application/json"},
		{name: "custom codec", task: Define[string]("s", WithCodec(textCodec{})).New("hi"), wantBody: "hi", wantCT: "text/plain"},
		{name: "failing codec", task: Define[media]("broken", WithCodec(failCodec{})).New(media{}), wantErr: errCodec},
		{name: "unencodable payload", task: Task{Name: "broken", Payload: make(chan int)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, ct, err := tc.task.Encode()
			if tc.wantCT == "" {
				if err == nil {
					t.Fatalf("Encode = %q, %q, want an error", body, ct)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want it to wrap %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.task.Name) {
					t.Errorf("error %q does not name task %q", err, tc.task.Name)
				}
				if body != nil || ct != "" {
					t.Errorf("Encode returned %q, %q with its error", body, ct)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tc.wantBody || ct != tc.wantCT {
				t.Errorf("Encode = %q, %q; want %q, %q", body, ct, tc.wantBody, tc.wantCT)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	want := Settings{MaxAttempts: 5, BackoffBase: time.Second, BackoffMax: time.Minute, Timeout: 30 * time.Second, DropExpired: true}
	d := Define[media]("notify", WithAliases("old_notify"),
		WithMaxAttempts(5), WithBackoff(time.Second, time.Minute), WithTimeout(30*time.Second), WithDropExpired())
	plain := Define[media]("plain")
	r := NewRegistry()
	r.MustRegister(
		d.Handler(func(context.Context, media) error { return nil }),
		plain.Handler(func(context.Context, media) error { return nil }),
	)
	tests := []struct {
		name string
		got  Settings
		want Settings
	}{
		{"Def.Settings", d.Settings(), want},
		{"Handler.Settings", d.Handler(nil).Settings(), want},
		{"Registry.Settings by name", r.Settings("notify"), want},
		{"Registry.Settings by alias", r.Settings("old_notify"), want},
		{"no options", r.Settings("plain"), Settings{}},
		{"unknown task", r.Settings("nope"), Settings{}},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}
