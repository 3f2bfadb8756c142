package producer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// Email is the payload of the example's task.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// SendEmail is the task definition the producer and the worker share.
var SendEmail = task.Define[Email]("send_email")

// Enqueue returns the task id once the broker has confirmed the message.
// A message no queue is bound for comes back as ErrUnroutable.
func ExampleEnqueue() {
	queue := "example.email." + uuid.NewString()[:8]
	defer brokertest.DeleteQueues(queue, routing.DeadQueue(queue))

	p, err := producer.New(producer.Config{
		Conn:     conn.Config{URL: brokertest.LocalURL()},
		Topology: routing.Topology{Queues: []routing.Queue{{Name: queue}}},
		Routes:   routing.NewTable().Add(SendEmail.Name(), routing.ToQueue(queue)),
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	id, err := producer.Enqueue(ctx, p, SendEmail, Email{To: "ada@example.com", Subject: "hello"})
	fmt.Println("confirmed:", err == nil, "id is a UUID:", uuid.Validate(id) == nil)

	_, err = producer.Enqueue(ctx, p, SendEmail, Email{}, producer.WithQueue("example.no-such-queue"))
	fmt.Println("unroutable:", errors.Is(err, producer.ErrUnroutable))
	// Output:
	// confirmed: true id is a UUID: true
	// unroutable: true
}
