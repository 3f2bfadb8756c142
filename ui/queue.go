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
	// Peeked is true when the page was asked to peek, by a POST: a peek
	// is a delivery (it marks messages redelivered and, on a quorum queue,
	// counts towards its delivery limit), so it is not done on every view.
	Peeked bool
}

// queue shows a queue's counts. A GET never peeks: a peek is a
// delivery, and a GET can come from a reload or another site's <img>.
func (s *server) queue(w http.ResponseWriter, r *http.Request) {
	s.queuePage(w, r, r.URL.Query().Get("q"), false)
}

// peekQueue shows a queue with its next PeekLimit messages: an action,
// refused in read-only mode.
func (s *server) peekQueue(w http.ResponseWriter, r *http.Request) {
	if s.refuseReadOnly(w, r) {
		return
	}
	s.queuePage(w, r, r.PostFormValue("q"), true)
}

func (s *server) queuePage(w http.ResponseWriter, r *http.Request, name string, peek bool) {
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
	d := &queueData{Queue: rep.Queues[0], Limit: PeekLimit, Peeked: peek}
	if d.Queue.Missing {
		s.fail(w, r, http.StatusNotFound, "Queue "+name, errors.New("no such queue: a worker declares its queues when it starts"))
		return
	}
	if peek && d.Queue.Ready > 0 {
		d.Next, err = s.peek(ctx, name, PeekLimit)
		if err != nil {
			d.NextErr = s.scrub(err)
		}
	}
	s.render(w, r, http.StatusOK, "queue", &view{Title: "Queue " + name, Flash: flash(r), Data: d})
}
