package ui

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// worker is a live worker as the pages show it.
// (Until inspect reports workers, the UI knows none.)
type worker struct {
	ID, Host      string
	PID           int
	Version, Node string
	Queues        []string
	Concurrency   int
	Prefetch      int
	Started, Seen time.Time
	State         string
	Leading       bool
	Running       []running
	Counts        struct{ Succeeded, Retried, Dead uint64 }
}

type running struct {
	ID, Task, Queue string
	Attempt         int
	Started         time.Time
}

var errNoPresence = errors.New("this version of warren does not report workers yet")

func (s *server) liveWorkers(ctx context.Context) ([]worker, error) {
	return nil, errNoPresence
}

type workersData struct {
	Workers []worker
	Err     string
}

func (s *server) workers(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	d := &workersData{}
	ws, err := s.liveWorkers(ctx)
	if err != nil {
		d.Err = s.scrub(err)
	}
	d.Workers = ws
	s.render(w, r, http.StatusOK, "workers", &view{Title: "Workers", Nav: "workers", Refresh: s.refresh(), Data: d})
}
