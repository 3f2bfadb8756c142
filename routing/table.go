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

// ErrSharded is returned by Table.Lookup for a task routed to shards: its
// route depends on the task id, so use Table.RouteFor.
var ErrSharded = errors.New("routing: task is routed to shards; its route depends on its id")

// Table maps task names to routes. The zero value routes nothing.
type Table struct {
	routes map[string]Route
	shards map[string]Shards
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
	delete(t.shards, task)
	return t
}

// AddShards routes task to the shards s, each task to the shard its id
// hashes to (Shards.Shard), replacing any earlier route for it, and
// returns the table for chaining.
func (t *Table) AddShards(task string, s Shards) *Table {
	if t.shards == nil {
		t.shards = make(map[string]Shards)
	}
	t.shards[task] = s
	delete(t.routes, task)
	return t
}

// ShardsFor returns the shards task is routed to, if it is.
func (t *Table) ShardsFor(task string) (Shards, bool) {
	if t == nil {
		return Shards{}, false
	}
	s, ok := t.shards[task]
	return s, ok
}

// RouteFor returns the route for the task with id: its shard's when it is
// routed to shards, else as Lookup.
func (t *Table) RouteFor(task, id string) (Route, error) {
	if t != nil {
		if s, ok := t.shards[task]; ok {
			return s.Route(id), nil
		}
	}
	return t.Lookup(task)
}

// SetDefault routes every task without its own route to r.
func (t *Table) SetDefault(r Route) *Table {
	t.def = &r
	return t
}

// Lookup returns the route for task: its own, else the default, else
// ErrNoRoute; ErrSharded for a task routed to shards.
func (t *Table) Lookup(task string) (Route, error) {
	if t != nil {
		if _, ok := t.shards[task]; ok {
			return Route{}, fmt.Errorf("%w: %q (use RouteFor)", ErrSharded, task)
		}
		if r, ok := t.routes[task]; ok {
			return r, nil
		}
		if t.def != nil {
			return *t.def, nil
		}
	}
	return Route{}, fmt.Errorf("%w %q", ErrNoRoute, task)
}
