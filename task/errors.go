package task

import "errors"

// ErrUnknownTask is returned by Registry.Dispatch when no handler is
// registered under a message's task name. The worker dead-letters such
// messages with reason "unknown_task" rather than requeueing them forever.
var ErrUnknownTask = errors.New("task: unknown task")

// ErrUnknownContentType is returned when no codec serves a message's
// content_type.
var ErrUnknownContentType = errors.New("task: unknown content type")

// ErrInvalidUTF8 is wrapped by the JSON codec's error for a body that is not
// valid UTF-8, which JSON must be (RFC 8259).
var ErrInvalidUTF8 = errors.New("task: body is not valid UTF-8")

// ErrNestingTooDeep is wrapped by the JSON codec's error for a body whose
// arrays or objects nest deeper than MaxJSONDepth.
var ErrNestingTooDeep = errors.New("task: JSON nests too deeply")

// ErrNoTaskName is returned when a message carries no task name and its
// queue names no default task.
var ErrNoTaskName = errors.New("task: message has no task name")

// DecodeError reports a message whose body or headers cannot be decoded.
// Such a message can never succeed, so the worker dead-letters it with
// reason "undecodable" instead of retrying it.
type DecodeError struct {
	Task string // task name, if known
	Err  error
}

// Error describes the failure with the task name.
func (e *DecodeError) Error() string {
	if e.Task == "" {
		return "task: undecodable message: " + e.Err.Error()
	}
	return "task: undecodable message for " + clip(e.Task) + ": " + e.Err.Error()
}

// Unwrap returns the underlying decode error.
func (e *DecodeError) Unwrap() error { return e.Err }

// PanicError is what a handler's panic becomes: an ordinary failure, so a
// panicking handler never takes the worker down.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine
}

// Error describes the panic value.
func (e *PanicError) Error() string { return "task: handler panicked: " + fmtAny(e.Value) }

// ResultError reports a handler that succeeded but whose result could not
// be encoded (a NaN in JSON, a channel in a struct). Running the task again
// would redo its side effects and fail the same way, so the worker
// dead-letters it with reason "permanent" and tells the caller, instead of
// retrying it.
type ResultError struct {
	Task string
	Err  error
}

// Error names the task and the encoding failure.
func (e *ResultError) Error() string {
	return "task: encode result of " + clip(e.Task) + ": " + e.Err.Error()
}

// Unwrap returns the codec's error.
func (e *ResultError) Unwrap() error { return e.Err }
