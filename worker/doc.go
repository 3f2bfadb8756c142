// Package worker runs tasks: a Worker consumes one or more queues with a
// per-consumer prefetch window, runs at most Concurrency handlers at once,
// and acks each message only after its handler returned and any follow-up
// (a dead letter) was confirmed by the broker. Steps 5 to 7 of a task's trip
// in DESIGN.md.
//
// Outcomes of one delivery: success (acked); retry (the handler failed with
// attempts left: a copy with retries+1 goes through the delay levels for
// the policy's backoff, is confirmed, then the original is acked); dead
// (published to <queue>.dead with a reason, confirmed, then acked: attempts
// exhausted, a permanent error, an unknown task, an undecodable message or
// one over the body or header limits);
// expired (past its expiry, not run); requeued (given back unrun or
// unfinished: shutdown, an early ETA, or a follow-up publish that failed).
package worker
