package ui

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/warrenq/warren/inspect"
)

// hit is one place a task was found.
type hit struct {
	Where   string // running, ready, dead
	Queue   string
	Worker  *inspect.Worker
	Running *inspect.RunningTask
	Message *message
	Letter  *letter
	Pos     int // 1-based position among the ready messages read
}

type taskData struct {
	ID       string
	Hits     []hit
	Searched string   // what was searched, for "not found"
	Errs     []string // parts that could not be searched
}

// task looks a task up by id where warren can see it: the tasks live
// workers run, the next inspect.MaxPeek ready messages and the oldest ScanLimit
// dead letters of each queue the overview shows. A task that succeeded,
// or waits in the delay levels, is in none of them.
func (s *server) task(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	d := &taskData{ID: id}
	v := &view{Title: "Find a task", Nav: "task", Data: d}
	if id == "" {
		s.render(w, r, http.StatusOK, "task", v)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	workers, err := s.liveWorkers(ctx)
	if err != nil {
		d.Errs = append(d.Errs, "workers: "+s.scrub(err))
	}
	for k := range workers {
		wk := &workers[k]
		if wk.RunningCount > len(wk.Running) {
			d.Errs = append(d.Errs, fmt.Sprintf("worker %s runs %d tasks and reports the oldest %d: the others were not searched", wk.ID, wk.RunningCount, len(wk.Running)))
		}
		for j := range wk.Running {
			if rt := &wk.Running[j]; rt.ID == id {
				d.Hits = append(d.Hits, hit{Where: "running", Queue: rt.Queue, Worker: wk, Running: rt})
			}
		}
	}
	rep, err := s.queues(ctx, workers)
	var names []string
	if err != nil {
		d.Errs = append(d.Errs, "queues: "+s.scrub(err))
	} else {
		for _, q := range rep.Queues {
			if q.Missing {
				continue
			}
			names = append(names, q.Name)
			if q.Ready > 0 {
				msgs, err := s.peek(ctx, q.Name, inspect.MaxPeek)
				if err != nil {
					d.Errs = append(d.Errs, q.Name+": "+s.scrub(err))
				}
				for k := range msgs {
					if msgs[k].ID == id {
						d.Hits = append(d.Hits, hit{Where: "ready", Queue: q.Name, Message: &msgs[k], Pos: k + 1})
					}
				}
			}
			if q.Dead != nil && *q.Dead > 0 {
				ls, err := s.cfg.DeadLetters.List(ctx, q.Name, ScanLimit)
				if err != nil {
					d.Errs = append(d.Errs, q.Name+" dead letters: "+s.scrub(err))
				}
				for _, l := range ls {
					if l.ID == id {
						lv := letterView(l)
						d.Hits = append(d.Hits, hit{Where: "dead", Queue: q.Name, Letter: &lv})
					}
				}
			}
		}
	}
	d.Searched = searched(len(workers), names)
	s.render(w, r, http.StatusOK, "task", v)
}

func searched(workers int, queues []string) string {
	var b strings.Builder
	b.WriteString("the tasks running on ")
	b.WriteString(plural(workers, "live worker"))
	if len(queues) > 0 {
		fmt.Fprintf(&b, ", and the next %d ready messages and the oldest %d dead letters of each of %s", inspect.MaxPeek, ScanLimit, strings.Join(queues, ", "))
	}
	return b.String()
}
