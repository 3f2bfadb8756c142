// Command quickstart is the README's first program: it declares a queue,
// enqueues one task to it, and runs a worker on it until Ctrl-C.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

type email struct{ To, Subject string }

var sendEmail = task.Define[email]("send_email")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	url := os.Getenv("WARREN_BROKER_URL") // empty: amqp://guest:guest@127.0.0.1:5672/
	topo := routing.Topology{Queues: []routing.Queue{{Name: "emails"}}}

	p, err := producer.New(producer.Config{Conn: conn.Config{URL: url}, Topology: topo}) // declares "emails"
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	id, err := producer.Enqueue(ctx, p, sendEmail, email{To: "ada@example.com", Subject: "hi"}, producer.WithQueue("emails"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("enqueued", id)

	reg := task.NewRegistry()
	reg.MustRegister(sendEmail.Handler(func(ctx context.Context, e email) error {
		fmt.Println("sending", e.Subject, "to", e.To) // an error here is retried
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: url}, Queues: []string{"emails"}, Registry: reg, Topology: topo})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Run(ctx); err != nil { // until Ctrl-C, then a graceful stop
		log.Fatal(err)
	}
}
