package routing

import (
	"errors"
	"fmt"
)

// ErrNoRoute is returned by Table.Lookup for a task with no route when the
// table has no default route.
var ErrNoRoute = errors.New("routing: no route for task")

// Route is where a task is published: an exchange and a routing key. The
// empty exchange is RabbitMQ's default exchange, where the key is a queue
// name.
type Route struct {
	Exchange string
	Key      string
}

// ToQueue returns the route that publishes straight to queue through the
// default exchange.
func ToQueue(queue string) Route { return Route{Key: queue} }

// Table maps task names to routes. The zero value routes nothing.
type Table struct {
	routes map[string]Route
	def    *Route
}

// NewTable returns an empty route table.
func NewTable() *Table { return &Table{routes: make(map[string]Route)} }

// Add routes task to r, replacing any earlier route for it, and returns the
// table for chaining.
func (t *Table) Add(task string, r Route) *Table {
	if t.routes == nil {
		t.routes = make(map[string]Route)
	}
	t.routes[task] = r
	return t
}

// SetDefault routes every task without its own route to r.
func (t *Table) SetDefault(r Route) *Table {
	t.def = &r
	return t
}

// Lookup returns the route for task: its own, else the default, else
// ErrNoRoute.
func (t *Table) Lookup(task string) (Route, error) {
	if t != nil {
		if r, ok := t.routes[task]; ok {
			return r, nil
		}
		if t.def != nil {
			return *t.def, nil
		}
	}
	return Route{}, fmt.Errorf("%w %q", ErrNoRoute, task)
}
