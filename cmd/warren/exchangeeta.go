package main

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/task"
)

// enqueuer is what "warren enqueue" publishes with: a *producer.Producer,
// or an exchangeETA for a task due later that goes to an exchange.
type enqueuer interface {
	Enqueue(ctx context.Context, t task.Task, opts ...producer.Option) (string, error)
	EnqueueBatch(ctx context.Context, ts []task.Task, opts ...producer.Option) ([]string, error)
	Close() error
}

// exchangeETA publishes tasks due later straight to an exchange, with their
// eta header. The producer puts such tasks into the delay levels, which
// deliver to a queue; which queues an exchange reaches only the broker
// knows (bindings, topic patterns, fanout). A worker that takes a task
// before its ETA holds it in the delay levels until then (docs/protocol.md,
// "ETA and expiry"), as it does for any client's. Publishes are mandatory,
// confirmed and pipelined like the producer's; its options are ignored:
// the target, ETA and id are fixed when it is made.
type exchangeETA struct {
	sup           *broker.Supervisor
	pub           *broker.Publisher
	exchange, key string
	eta           func() time.Time // the ETA of a task published now
	id            string           // -id: the id of the one task; "" makes new ones
}

func newExchangeETA(o *opts, t *enqueueTarget) (*exchangeETA, error) {
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: o.broker, DialTimeout: o.timeout, TLS: o.tls}, Role: "cli"})
	if err != nil {
		return nil, err
	}
	return &exchangeETA{sup: sup, pub: broker.NewPublisher(sup, 1, broker.WithMaxBody(producer.DefaultMaxBodyBytes)), exchange: t.exchange, key: t.key, eta: t.eta, id: t.id}, nil
}

// publish sends one task without waiting for its confirm.
func (x *exchangeETA) publish(ctx context.Context, t task.Task) (string, *broker.Confirm, error) {
	body, contentType, err := t.Encode()
	if err != nil {
		return "", nil, err
	}
	now := time.Now()
	id := x.id
	if id == "" {
		id = task.NewID(now)
	}
	m := task.Message{ID: id, Task: t.Name, ETA: x.eta(), EnqueuedAt: now}
	c, err := x.pub.Publish(ctx, &broker.Publishing{
		Exchange: x.exchange, Key: x.key, MessageID: id, ContentType: contentType,
		Headers: m.BuildHeaders(nil), Body: body, Timestamp: now,
	})
	return id, c, err
}

// Enqueue publishes t and returns its id once the broker has confirmed it.
func (x *exchangeETA) Enqueue(ctx context.Context, t task.Task, _ ...producer.Option) (string, error) {
	id, c, err := x.publish(ctx, t)
	if err == nil {
		err = c.Wait(ctx)
	}
	if err != nil {
		return "", fmt.Errorf("enqueue %s: %w", t.Name, err)
	}
	return id, nil
}

// EnqueueBatch publishes every task, then waits for their confirms; like
// the producer's, a partial failure is a *producer.BatchError.
func (x *exchangeETA) EnqueueBatch(ctx context.Context, ts []task.Task, _ ...producer.Option) ([]string, error) {
	ids := make([]string, len(ts))
	errs := make([]error, len(ts))
	pending := make([]*broker.Confirm, len(ts))
	failed := 0
	for i, t := range ts {
		id, c, err := x.publish(ctx, t)
		if err != nil {
			errs[i] = fmt.Errorf("enqueue %s: %w", t.Name, err)
			failed++
			continue
		}
		ids[i], pending[i] = id, c
	}
	for i, c := range pending {
		if c == nil {
			continue
		}
		if err := c.Wait(ctx); err != nil {
			errs[i] = fmt.Errorf("enqueue %s (id %s): %w", ts[i].Name, ids[i], err)
			ids[i] = ""
			failed++
		}
	}
	if failed > 0 {
		return ids, &producer.BatchError{Errs: errs, Failed: failed}
	}
	return ids, nil
}

// Close disconnects; confirms still awaited fail.
func (x *exchangeETA) Close() error {
	err := x.sup.Close() // first: it wakes publishes waiting for a connection
	x.pub.Close()
	return err
}
