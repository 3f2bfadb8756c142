package celery_test

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/warrenq/warren/celery"
	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

// AddArgs are the parameters of the Python signature add(x, y): a
// positional call add(2, 3) and a keyword call add(x=2, y=3) both fill
// them.
type AddArgs struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// Add is the Celery task "tasks.add" with its handler in Go. A Celery app
// calls it as app.send_task("tasks.add", args=[2, 3]) and gets the sum
// from AsyncResult.get(); Go code enqueues it as any warren task.
var Add = celery.DefineWithResult[AddArgs, int]("tasks.add")

// A warren worker runs a task in Celery's protocol and answers in the
// shape of Celery's RPC result backend. Here a Go producer sends it, as a
// Celery app would, and awaits the result. The example runs against the
// local test broker.
func Example() {
	queue := "example.celery." + uuid.NewString()[:8]
	defer brokertest.DeleteQueues(queue, routing.DeadQueue(queue))
	topo := routing.Topology{Queues: []routing.Queue{{Name: queue}}}

	reg := task.NewRegistry()
	reg.MustRegister(Add.Handler(func(ctx context.Context, a AddArgs) (int, error) {
		return a.X + a.Y, nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: brokertest.LocalURL()}, Queues: []string{queue}, Registry: reg, Topology: topo})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx) }()
	defer func() { stop(); <-stopped }()

	p, err := producer.New(producer.Config{Conn: conn.Config{URL: brokertest.LocalURL()}, Topology: topo})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := producer.EnqueueResult(ectx, p, Add, AddArgs{X: 2, Y: 3}, producer.WithQueue(queue))
	if err != nil {
		panic(err)
	}
	sum, err := h.Get(ectx)
	if err != nil {
		panic(err)
	}
	fmt.Println(sum)
	// Output: 5
}
