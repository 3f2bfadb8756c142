// Package broker is warren's only contact with AMQP: it supervises one
// connection per process role, re-dials it with capped exponential backoff
// and jitter, declares the topology on every connect, publishes with
// pipelined publisher confirms and consumes with per-consumer QoS.
//
// warren supervises connections itself instead of using amqp091-go's
// Config.Recovery: a recovered channel keeps its *amqp.Channel but numbers
// deliveries from 1 again, so an ack from before the cut could ack a
// different message; with our own supervision every channel is a new object
// and every delivery carries its channel's generation, so a stale ack is
// dropped twice over. It also lets in-flight publishes fail with a clear
// error when their channel dies, instead of waiting on a recovery.
package broker
