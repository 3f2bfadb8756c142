package broker

import "github.com/warrenq/warren/task"

// Message returns d's task envelope from its properties; the caller reads
// the headers into it with ParseHeaders, after any checks of its own. The
// worker and warrentest build envelopes this one way.
func (d *Delivery) Message() *task.Message {
	return &task.Message{
		ID:          d.MessageID,
		ContentType: d.ContentType,
		Body:        d.Body,
		Timestamp:   d.Timestamp,
		Priority:    d.Priority,
		Queue:       d.Queue,
		ReplyTo:     d.ReplyTo,
		Redelivered: d.Redelivered,
	}
}
