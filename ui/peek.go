package ui

import (
	"context"
	"time"

	"github.com/warrenq/warren/inspect"
)

// message is a ready message as the pages show it.
type message struct {
	ID, Task    string
	Retries     int
	ETA         time.Time
	Enqueued    time.Time
	Redelivered bool
	Undecodable string // why a worker would dead-letter it unrun
	Body        shownBody
}

// peek returns the next n ready messages of queue, given back.
func (s *server) peek(ctx context.Context, queue string, n int) ([]message, error) {
	ms, err := s.cfg.Inspector.Peek(ctx, queue, min(n, inspect.MaxPeek))
	out := make([]message, 0, len(ms))
	for _, m := range ms {
		out = append(out, message{ID: m.ID, Task: m.Task, Retries: m.Retries, ETA: m.ETA, Enqueued: m.Timestamp,
			Redelivered: m.Redelivered, Undecodable: m.Undecodable, Body: showBody(m.Body)})
	}
	return out, err
}
