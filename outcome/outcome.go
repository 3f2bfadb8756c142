// Package outcome is warren's vocabulary for how a delivery ends and why a
// task will not run again. The worker settles every delivery to exactly one
// Outcome; a task that ends without success carries a Reason in its dead
// letter (x-warren-reason), in its caller's result (result.TaskError.Kind)
// and in the retry policy's decision. One set of names, so that the worker,
// retry, result, metrics and dashboards never spell them apart.
//
// It imports nothing, so that every package may use it, task, routing and
// retry included.
package outcome

// Outcome is how one delivery that a worker took ended: the outcome label
// of warren_tasks_processed_total and a field of worker.Stats.
type Outcome string

// The outcomes of a delivery. Each delivery ends in exactly one.
const (
	// Success: the handler returned nil, its result (if awaited) was sent,
	// and the delivery was acked.
	Success Outcome = "success"
	// Retry: the handler failed with attempts left; a copy for the next
	// attempt was confirmed in the delay levels, then the delivery acked.
	Retry Outcome = "retry"
	// Dead: dead-lettered with a Reason other than ReasonExpired; the dead
	// letter was confirmed in <queue>.dead, then the delivery acked.
	Dead Outcome = "dead"
	// Expired: past its expiry, not run: dead-lettered with ReasonExpired,
	// or dropped when its definition says so.
	Expired Outcome = "expired"
	// Requeued: given back to the broker unrun or unfinished: shutdown, a
	// follow-up publish that failed, a delivery whose channel died before
	// it was settled (the broker redelivers it), or an early arrival sent
	// back to wait for its eta.
	Requeued Outcome = "requeued"
)

// Outcomes lists every Outcome, for checks and tools that enumerate them
// (a dashboard's queries, say).
func Outcomes() []Outcome { return []Outcome{Success, Retry, Dead, Expired, Requeued} }

// Reason says why a task will not run again: the x-warren-reason header of
// its dead letter and the Kind of its caller's result.TaskError. Values
// are bounded, so that they can label metrics.
type Reason string

// The reasons a task ends without success.
const (
	// ReasonUnknownTask: no handler is registered for the task's name, or
	// the message names no task.
	ReasonUnknownTask Reason = "unknown_task"
	// ReasonUndecodable: its payload, headers, content type or encoding
	// could not be read.
	ReasonUndecodable Reason = "undecodable"
	// ReasonTooLarge: its body or header table was over the worker's
	// limits, or its result over the limit for results (the caller's
	// result only: the task itself succeeded).
	ReasonTooLarge Reason = "too_large"
	// ReasonExhausted: every attempt its retry policy allows failed.
	ReasonExhausted Reason = "exhausted"
	// ReasonPermanent: the handler returned retry.Permanent, or its result
	// could not be encoded, which no rerun would change.
	ReasonPermanent Reason = "permanent"
	// ReasonExpired: it was past its expiry when a worker took it.
	ReasonExpired Reason = "expired"
	// ReasonDeliveryLimit: the broker dead-lettered it from a quorum queue
	// after it was delivered more times than the queue's delivery limit
	// without being settled: its runs ended with the worker process or its
	// connection, as a task that crashes the process does every time. No
	// worker saw it die, so no x-warren-reason header says so; the dead
	// letter's x-first-death-reason does.
	ReasonDeliveryLimit Reason = "delivery_limit"
)

// Reasons lists every Reason, for checks and tools that enumerate them.
func Reasons() []Reason {
	return []Reason{ReasonUnknownTask, ReasonUndecodable, ReasonTooLarge, ReasonExhausted, ReasonPermanent, ReasonExpired, ReasonDeliveryLimit}
}

// Outcome is the delivery outcome of a task dead-lettered for r: Expired
// for ReasonExpired, Dead for every other reason.
func (r Reason) Outcome() Outcome {
	if r == ReasonExpired {
		return Expired
	}
	return Dead
}
