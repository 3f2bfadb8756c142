package warrentest

import (
	"context"
	"fmt"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// conn is the kit's one door to internal/broker: a supervised connection
// for declaring, reading and deleting a test's names. Nothing of it shows
// in the package's API.
type conn struct{ sup *broker.Supervisor }

func dial(url string) (*conn, error) {
	sup, err := broker.New(broker.Config{URL: url, Role: "warrentest"})
	if err != nil {
		return nil, err
	}
	return &conn{sup: sup}, nil
}

func (c *conn) declare(ctx context.Context, t routing.Topology) error {
	return c.sup.DeclareNow(ctx, t)
}

func (c *conn) deleteQueue(ctx context.Context, q string) error { return c.sup.DeleteQueue(ctx, q) }

func (c *conn) deleteExchange(ctx context.Context, x string) error {
	return c.sup.DeleteExchange(ctx, x)
}

// arrival is one message taken from a queue: its envelope with the
// headers read, and the exchange and routing key it came through.
type arrival struct {
	m             *task.Message
	exchange, key string
}

// take takes every ready message of queue and acks it. A queue that does
// not exist (yet) holds nothing.
func (c *conn) take(ctx context.Context, queue string) ([]arrival, error) {
	r, err := c.sup.OpenReader(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []arrival
	for {
		d, ok, err := r.Get(queue)
		if broker.IsNotFound(err) {
			return out, nil
		}
		if err != nil || !ok {
			return out, err
		}
		m := d.Message()
		if err := m.ParseHeaders(d.Headers); err != nil {
			return out, err
		}
		if err := d.Ack(); err != nil {
			return out, fmt.Errorf("ack: %w", err)
		}
		out = append(out, arrival{m: m, exchange: d.Exchange, key: d.RoutingKey})
	}
}

func (c *conn) close() { _ = c.sup.Close() }
