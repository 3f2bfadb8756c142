package task_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren/task"
)

// Media is the payload of the process_media task.
type Media struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// ProcessMedia is defined once and used by producers and workers alike.
var ProcessMedia = task.Define[Media]("process_media")

// A worker registers a handler for the typed payload, builds a Message from
// a delivery and dispatches it. The handler gets a Media, not bytes, and can
// read the task id and attempt count from its context.
func ExampleRegistry_Dispatch() {
	reg := task.NewRegistry()
	reg.MustRegister(ProcessMedia.Handler(func(ctx context.Context, m Media) error {
		msg, _ := task.FromContext(ctx)
		fmt.Printf("task %s attempt %d: %s (%d bytes)\n", msg.ID, msg.Retries+1, m.Name, m.Size)
		return nil
	}))

	// What a worker reads from an AMQP delivery, here as a Kombu producer
	// would have sent it.
	msg := &task.Message{
		ID:          "0f8fad5b-d9cb-469f-a165-70867728950e",
		ContentType: "application/json",
		Body:        []byte(`{"name": "/tmp/lolcat1.avi", "size": 1301013}`),
	}
	if err := msg.ParseHeaders(map[string]any{"task": "process_media", "retries": int8(1)}); err != nil {
		fmt.Println("dead-letter:", task.Reason(err))
		return
	}
	if err := reg.Dispatch(context.Background(), msg); err != nil {
		fmt.Println("dispatch:", err)
	}

	// A task nobody registered is an error the worker dead-letters.
	err := reg.Dispatch(context.Background(), &task.Message{Task: "resize_image", Body: []byte(`{}`)})
	fmt.Println(errors.Is(err, task.ErrUnknownTask), task.Reason(err))
	// Output:
	// task 0f8fad5b-d9cb-469f-a165-70867728950e attempt 2: /tmp/lolcat1.avi (1301013 bytes)
	// true unknown_task
}

// A producer wraps a payload with New; Encode gives the body and the
// content_type it is published with.
func ExampleDef_New() {
	t := ProcessMedia.New(Media{Name: "/tmp/lolcat1.avi", Size: 1301013})
	body, contentType, err := t.Encode()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Name)
	fmt.Println(contentType)
	fmt.Println(string(body))
	// Output:
	// process_media
	// application/json
	// {"name":"/tmp/lolcat1.avi","size":1301013}
}

// A renamed task keeps accepting messages sent under its old name.
func ExampleWithAliases() {
	encode := task.Define[Media]("encode_media", task.WithAliases("process_media"))
	reg := task.NewRegistry()
	reg.MustRegister(encode.Handler(func(ctx context.Context, m Media) error {
		msg, _ := task.FromContext(ctx)
		fmt.Printf("%s handled by %s: %s\n", msg.Task, encode.Name(), m.Name)
		return nil
	}))
	for _, name := range []string{"process_media", "encode_media"} {
		if err := reg.Dispatch(context.Background(), &task.Message{Task: name, Body: []byte(`{"name":"a.avi"}`)}); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// process_media handled by encode_media: a.avi
	// encode_media handled by encode_media: a.avi
}

// A task that should go ahead of others in a priority queue
// (routing.Queue.MaxPriority) carries its priority in its definition; an
// enqueue may still set another with producer.WithPriority.
func ExampleWithPriority() {
	refund := task.Define[Media]("refund", task.WithPriority(5))
	fmt.Println(refund.Priority(), refund.New(Media{}).Priority)
	fmt.Println(ProcessMedia.New(Media{}).Priority) // none given: 0
	// Output:
	// 5 5
	// 0
}

// A task id made by NewID carries its enqueue time, which IDTime reads back:
// ids sort by enqueue time, and a worker measures how long a task waited
// without an extra header.
func ExampleIDTime() {
	at := time.Date(2026, 11, 29, 12, 0, 0, 250_000_000, time.UTC)
	id := task.NewID(at)
	t, ok := task.IDTime(id)
	fmt.Println(t.UTC().Format(time.RFC3339Nano), ok)
	// Output: 2026-11-29T12:00:00.25Z true
}
