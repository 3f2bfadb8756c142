// Package inspect is the operators' door to warren's queues: what each
// work queue holds, who consumes it, and how many of its tasks died, read
// from RabbitMQ's management HTTP API where the broker has it and from AMQP
// passive declares otherwise. It changes nothing but what Purge deletes.
// The warren CLI is built on it; dead letters themselves are package
// deadletter's.
//
// An Inspector is made once with a Config and its methods take a context
// first; it connects over AMQP only when a call needs it.
package inspect
