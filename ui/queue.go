package ui

import (
	"context"
	"errors"
	"net/http"

	"github.com/warrenq/warren/inspect"
)

type queueData struct {
	Queue inspect.Queue
	// Next are the next messages a worker would get.
	Next    []message
	NextErr string
	Limit   int
	// Peeked is true when the page was asked to peek: a peek is a
	// delivery (it marks messages redelivered and, on a quorum queue,
	// counts towards its delivery limit), so it is not done on every view.
	Peeked bool
}

func (s *server) queue(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("q")
	if name == "" {
		s.fail(w, r, http.StatusBadRequest, "No queue", errors.New("name a queue: queue?q=NAME"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	rep, err := s.cfg.Inspector.Queues(ctx, inspect.Filter{Names: []string{name}})
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "Queue "+name, err)
		return
	}
	d := &queueData{Queue: rep.Queues[0], Limit: PeekLimit}
	if d.Queue.Missing {
		s.fail(w, r, http.StatusNotFound, "Queue "+name, errors.New("no such queue: a worker declares its queues when it starts"))
		return
	}
	d.Peeked = r.URL.Query().Get("peek") == "1"
	if d.Peeked && d.Queue.Ready > 0 {
		d.Next, err = s.peek(ctx, name, PeekLimit)
		if err != nil {
			d.NextErr = s.scrub(err)
		}
	}
	s.render(w, r, http.StatusOK, "queue", &view{Title: "Queue " + name, Flash: flash(r), Data: d})
}
