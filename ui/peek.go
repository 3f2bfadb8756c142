package ui

import (
	"context"
	"errors"
	"time"
)

// message is a ready message as the queue page shows it.
type message struct {
	ID, Task string
	Attempt  int
	Enqueued time.Time
	Body     shownBody
}

func (s *server) peek(ctx context.Context, queue string, n int) ([]message, error) {
	return nil, errors.New("this version of warren cannot peek at messages yet")
}
