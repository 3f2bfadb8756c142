package ui

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/outcome"
)

// letter is a dead letter as the page shows it.
type letter struct {
	ID, Task   string
	Queue      string // the work queue it died in
	Reason     outcome.Reason
	Error      string // the last error
	FirstError string // the first, when it differs from the last
	Attempts   int
	DiedAt     time.Time
	Body       shownBody
}

func letterView(l deadletter.Letter) letter {
	first := l.FirstError
	if first == l.Error {
		first = ""
	}
	return letter{ID: l.ID, Task: l.Task, Queue: l.Queue, Reason: l.Reason, Error: l.Error, FirstError: first,
		Attempts: l.Attempts, DiedAt: l.DiedAt, Body: showBody(l.Body)}
}

type deadData struct {
	Queue   string
	Total   int // dead letters in the queue
	Letters []letter
	Limit   int
}

func (s *server) dead(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("q")
	if name == "" {
		s.fail(w, r, http.StatusBadRequest, "No queue", errors.New("name a queue: dead?q=NAME"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	total, err := s.cfg.DeadLetters.Count(ctx, name)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "Dead letters of "+name, err)
		return
	}
	d := &deadData{Queue: name, Total: total, Limit: DeadLimit}
	if total > 0 {
		ls, err := s.cfg.DeadLetters.List(ctx, name, DeadLimit)
		if err != nil {
			s.fail(w, r, http.StatusBadGateway, "Dead letters of "+name, err)
			return
		}
		for _, l := range ls {
			d.Letters = append(d.Letters, letterView(l))
		}
	}
	s.render(w, r, http.StatusOK, "dead", &view{Title: "Dead letters of " + name, Flash: flash(r), Data: d})
}
