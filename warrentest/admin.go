package warrentest

import (
	"context"
	"fmt"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// admin is the kit's one door to internal/broker: a supervised connection
// for declaring, reading and deleting a test's names. Nothing of it shows
// in the package's API.
type admin struct{ sup *broker.Supervisor }

func dial(url string) (*admin, error) {
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: url}, Role: "warrentest"})
	if err != nil {
		return nil, err
	}
	return &admin{sup: sup}, nil
}

func (c *admin) declare(ctx context.Context, t routing.Topology) error {
	return c.sup.DeclareNow(ctx, t)
}

func (c *admin) deleteQueue(ctx context.Context, q string) error { return c.sup.DeleteQueue(ctx, q) }

func (c *admin) deleteExchange(ctx context.Context, x string) error {
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
func (c *admin) take(ctx context.Context, queue string) ([]arrival, error) {
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
		m := new(task.Message)
		d.Message(m)
		if err := m.ParseHeaders(d.Headers); err != nil {
			return out, err
		}
		if err := d.Ack(); err != nil {
			return out, fmt.Errorf("ack: %w", err)
		}
		out = append(out, arrival{m: m, exchange: d.Exchange, key: d.RoutingKey})
	}
}

func (c *admin) close() { _ = c.sup.Close() }
