// Package inspect is the operators' door to warren's queues: what each
// work queue holds, who consumes it, and how many of its tasks died, read
// from RabbitMQ's management HTTP API where the broker has it and from AMQP
// passive declares otherwise; and a look at a queue's next tasks (Peek).
// It changes nothing but what Purge and Delete remove, and the marks a
// peek leaves on the tasks it saw (see Peek). The warren CLI is built on
// it; dead letters themselves are package deadletter's.
//
// An Inspector is made once with a Config and its methods take a context
// first; it connects over AMQP only when a call needs it.
package inspect
