package ui

import (
	"context"
	"net/http"
	"slices"

	"github.com/warrenq/warren/inspect"
)

// liveWorkers returns the workers alive now. The inspector's first call
// waits for the answers to its ping (inspect.Config.PresenceWait); later
// ones return what its watcher knows at once.
func (s *server) liveWorkers(ctx context.Context) ([]inspect.Worker, error) {
	return s.cfg.Inspector.Workers(ctx)
}

// consuming counts the workers in ws that consume queue.
func consuming(ws []inspect.Worker, queue string) int {
	n := 0
	for _, w := range ws {
		if slices.Contains(w.Queues, queue) {
			n++
		}
	}
	return n
}

type workersData struct {
	Workers []inspect.Worker
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
