// Package worker runs tasks: a Worker consumes one or more queues, each
// with its own prefetch window, and runs at most Concurrency handlers at
// once over all of them, taking a delivery only when a handler is free.
// Steps 4 to 7 of a task's trip in docs/architecture.md.
//
// Each delivery is decided, then settled once (handle.go, settle.go). The
// verdict ends in exactly one outcome (package outcome): success (acked);
// retry (the handler failed with attempts left: a copy with retries+1 goes
// through the delay levels for the policy's backoff, is confirmed, then the
// original is acked); dead (published to <queue>.dead with a reason,
// confirmed, then acked: attempts exhausted, a permanent error, an unknown
// task, an undecodable message or one over the body or header limits);
// expired (past its expiry, not run); requeued (given back unrun or
// unfinished: shutdown, an early ETA, a follow-up publish that failed, or a
// channel that died before the delivery was settled, in which case nothing
// is published for it).
package worker
