// Package warren runs background tasks for Go programs on RabbitMQ: define a
// task once with a typed payload, enqueue it with publisher confirms, run it
// in workers that ack, retry through delay queues, or dead-letter it with a
// reason. This package holds no code; it says where to start.
//
// Read the packages in this order:
//
//   - task: define a task (task.Define, a stable name and the payload's Go
//     type) and register its handler in a task.Registry.
//   - producer: enqueue it (producer.Enqueue); it returns the task id once
//     the broker has confirmed the message. producer.Config.Topology
//     declares the queues it sends to.
//   - conn: how every component reaches the broker, one conn.Config (the
//     URL or a cluster's nodes, TLS, heartbeat, logger, metrics) that the
//     producer, the worker, deadletter, inspect and result.NewAMQP each
//     take; and the errors a broker's answers become (conn.ErrUnroutable,
//     conn.ErrRefused, ...), tested with errors.Is.
//   - worker: consume queues and run the handlers (worker.New, Run).
//     runner wraps a worker as a binary with flags, logging, /metrics,
//     health probes and graceful shutdown: runner.Main.
//   - retry: the retry policy, and retry.Permanent and retry.After, which
//     a handler returns to skip or time its retries.
//   - routing: exchanges, queues, bindings and shard queues as data; the
//     route table from task name to exchange and key.
//   - result: await what a task returns (task.DefineWithResult,
//     producer.EnqueueResult, Handle.Get).
//   - deadletter: list, replay and purge dead letters, as cmd/warren does.
//   - inspect: what each work queue holds, who consumes it and how many of
//     its tasks died, and purge; cmd/warren's queues and purge read through
//     it.
//   - metrics and outcome: the Prometheus collectors, and the names of
//     how a delivery ended and why a task will not run again.
//
// The README's first program is examples/quickstart. The packages, one
// task's trip through them and the contracts other programs rely on are
// described in docs/architecture.md.
package warren
