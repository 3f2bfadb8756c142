package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

// Resize is the payload of the example's task.
type Resize struct {
	Path  string `json:"path"`
	Width int    `json:"width"`
}

// ResizeImage is defined once and used by both producer and worker.
var ResizeImage = task.Define[Resize]("resize_image")

// A worker consumes a queue and runs the registered handler; a producer
// enqueues to it. The example runs against the local test broker.
func Example() {
	queue := "example.images." + uuid.NewString()[:8]
	defer brokertest.DeleteQueues(queue, routing.DeadQueue(queue))
	topo := routing.Topology{Queues: []routing.Queue{{Name: queue}}}

	done := make(chan struct{})
	reg := task.NewRegistry()
	reg.MustRegister(ResizeImage.Handler(func(ctx context.Context, r Resize) error {
		fmt.Printf("resizing %s to %dpx\n", r.Path, r.Width)
		close(done)
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: brokertest.LocalURL()}, Queues: []string{queue}, Registry: reg, Topology: topo})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx) }()

	p, err := producer.New(producer.Config{
		Conn:     conn.Config{URL: brokertest.LocalURL()},
		Topology: topo,
		Routes:   routing.NewTable().Add(ResizeImage.Name(), routing.ToQueue(queue)),
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := producer.Enqueue(ectx, p, ResizeImage, Resize{Path: "cat.jpg", Width: 640}); err != nil {
		panic(err)
	}

	<-done
	stop() // graceful: waits for running handlers
	fmt.Println("worker stopped:", <-stopped)
	fmt.Printf("succeeded: %d\n", w.Stats().Succeeded)
	// Output:
	// resizing cat.jpg to 640px
	// worker stopped: <nil>
	// succeeded: 1
}

// Size is the result of the example's MeasureImage task.
type Size struct {
	Bytes int `json:"bytes"`
}

// MeasureImage declares a result type: its handler returns a Size, and the
// caller that enqueues it with EnqueueResult can await that Size.
var MeasureImage = task.DefineWithResult[Resize, Size]("measure_image")

// A task with a result: the worker confirms the result to the caller's
// reply queue before it acks the task, and Get returns it typed.
func Example_result() {
	queue := "example.measure." + uuid.NewString()[:8]
	defer brokertest.DeleteQueues(queue, routing.DeadQueue(queue))
	topo := routing.Topology{Queues: []routing.Queue{{Name: queue}}}

	reg := task.NewRegistry()
	reg.MustRegister(MeasureImage.Handler(func(ctx context.Context, r Resize) (Size, error) {
		return Size{Bytes: r.Width * 100}, nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: brokertest.LocalURL()}, Queues: []string{queue}, Registry: reg, Topology: topo})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = w.Run(ctx) }()

	p, err := producer.New(producer.Config{
		Conn:     conn.Config{URL: brokertest.LocalURL()},
		Topology: topo,
		Routes:   routing.NewTable().Add(MeasureImage.Name(), routing.ToQueue(queue)),
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	gctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := producer.EnqueueResult(gctx, p, MeasureImage, Resize{Path: "cat.jpg", Width: 640})
	if err != nil {
		panic(err)
	}
	size, err := h.Get(gctx)
	fmt.Println(size.Bytes, err, h.State())
	// Output:
	// 64000 <nil> SUCCESS
}
