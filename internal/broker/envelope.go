package broker

import "github.com/warrenq/warren/task"

// Message sets *m to d's task envelope from its properties; the caller
// reads the headers into it with ParseHeaders, after any checks of its
// own. The worker and warrentest build envelopes this one way. It fills
// the caller's message rather than returning a new one so that the worker
// can keep it inside its per-delivery state: one allocation per delivery.
func (d *Delivery) Message(m *task.Message) {
	*m = task.Message{
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
