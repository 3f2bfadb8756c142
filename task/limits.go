package task

import "fmt"

// MaxMessageBytes is 16 MiB, RabbitMQ 4's default max_message_size: the
// largest message a current broker takes by default. The producer's and
// the worker's default size limits (bodies, results) are this one figure.
const MaxMessageBytes = 16 << 20

// Parts of a message that a TooLargeError names.
const (
	PartBody    = "body"
	PartHeaders = "headers"
)

// TooLargeError reports a message whose body or header table is over a
// worker's limits (worker.Config.MaxBodyBytes, MaxHeaderBytes). The worker dead-letters it unrun with reason "too_large":
// the same message would be over the limit on every delivery.
type TooLargeError struct {
	Task    string // task name, if known
	Part    string // PartBody or PartHeaders
	Size    int    // bytes; for headers, as encoded on the wire
	Limit   int    // the limit it is over, bytes
	Entries int    // header entries counted, for PartHeaders
}

// Error says which part is over which limit, with both sizes.
func (e *TooLargeError) Error() string {
	what := "task: message too large"
	if e.Task != "" {
		what = "task: message for " + clip(e.Task) + " too large"
	}
	if e.Part == PartHeaders {
		return fmt.Sprintf("%s: headers are %d bytes in %d entries, over the limit of %d bytes", what, e.Size, e.Entries, e.Limit)
	}
	return fmt.Sprintf("%s: %s is %d bytes, over the limit of %d bytes", what, e.Part, e.Size, e.Limit)
}
