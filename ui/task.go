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
	Ready    bool     // the ready messages were searched too
	Peek     int      // how many ready messages of each queue that search reads
	Searched string   // what was searched, for "not found"
	Errs     []string // parts that could not be searched
}

// task looks a task up by id among the tasks live workers run and the
// oldest ScanLimit dead letters of each queue the overview shows. A GET
// never peeks at ready messages: a peek is a delivery (the message comes
// back marked redelivered, and on a quorum queue one nearer its delivery
// limit), and a GET can be sent by a reload or by another site's <img>.
// The page offers that search as a POST (searchReady).
func (s *server) task(w http.ResponseWriter, r *http.Request) {
	s.findTask(w, r, strings.TrimSpace(r.URL.Query().Get("id")), false)
}

// searchReady is the lookup that also peeks at the next inspect.MaxPeek
// ready messages of each queue: an action, refused in read-only mode.
func (s *server) searchReady(w http.ResponseWriter, r *http.Request) {
	if s.refuseReadOnly(w, r) {
		return
	}
	s.findTask(w, r, strings.TrimSpace(r.PostFormValue("id")), r.PostFormValue("ready") == "1")
}

// findTask renders the lookup of id; ready says whether to peek at the
// ready messages too. A task that succeeded, or waits in the delay levels,
// is in none of the places searched.
func (s *server) findTask(w http.ResponseWriter, r *http.Request, id string, ready bool) {
	d := &taskData{ID: id, Ready: ready, Peek: inspect.MaxPeek}
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
			if ready && q.Ready > 0 {
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
	d.Searched = searched(len(workers), names, ready)
	s.render(w, r, http.StatusOK, "task", v)
}

func searched(workers int, queues []string, ready bool) string {
	var b strings.Builder
	b.WriteString("the tasks running on ")
	b.WriteString(plural(workers, "live worker"))
	if len(queues) > 0 {
		if ready {
			fmt.Fprintf(&b, ", the next %d ready messages", inspect.MaxPeek)
		}
		fmt.Fprintf(&b, " and the oldest %d dead letters of each of %s", ScanLimit, strings.Join(queues, ", "))
	}
	return b.String()
}
