// Package routing describes warren's topology as data: the exchanges,
// queues and bindings a program needs (Topology) and where each task is
// published (Table). It declares nothing itself; the broker layer applies a
// Topology on every (re)connect, and the producer resolves a task name to an
// exchange and routing key through a Table.
package routing
