package task

import (
	"context"
	"testing"
	"time"
)

type benchPayload struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

var benchDef = Define[benchPayload]("process_media")

// The per-task work of a producer: encode the payload, make an id and
// build headers.
func BenchmarkEncodeAndHeaders(b *testing.B) {
	b.ReportAllocs()
	p := benchPayload{Name: "/tmp/lolcat1.avi", Size: 1301013}
	for b.Loop() {
		t := benchDef.New(p)
		if _, _, err := t.Encode(); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		m := Message{ID: NewID(now), Task: t.Name, EnqueuedAt: now}
		_ = m.BuildHeaders(nil)
	}
}

// The per-task work of a worker between delivery and handler: parse the
// headers, look the task up, decode the body, call the handler.
func BenchmarkParseAndDispatch(b *testing.B) {
	b.ReportAllocs()
	reg := NewRegistry()
	reg.MustRegister(benchDef.Handler(func(context.Context, benchPayload) error { return nil }))
	body := []byte(`{"name": "/tmp/lolcat1.avi", "size": 1301013}`)
	now := time.Now()
	id := NewID(now)
	h := map[string]any{"task": "process_media", "id": id}
	ctx := context.Background()
	for b.Loop() {
		m := Message{ID: id, ContentType: ContentTypeJSON, Body: body, Timestamp: time.Unix(now.Unix(), 0)}
		if err := m.ParseHeaders(h); err != nil {
			b.Fatal(err)
		}
		if err := reg.Dispatch(ctx, &m); err != nil {
			b.Fatal(err)
		}
	}
}
