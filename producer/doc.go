// Package producer enqueues tasks: it encodes the payload, resolves the
// route, publishes the message persistent and mandatory on a supervised
// connection, and returns the task id only once the broker has confirmed
// it. Steps 1 and 2 of a task's trip in
// docs/architecture.md.
//
// Many goroutines may enqueue at once through one Producer; their publishes
// are pipelined on a few shared confirm channels, so throughput does not
// pay one confirm round trip per task.
package producer
