package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/warrenq/warren/inspect"
)

// queueRow is a queue as the overview shows it.
type queueRow struct {
	inspect.Queue
	// Failures counts its dead letters that died within failureWindow;
	// AtLeast when the scan stopped at its bound before it could tell.
	Failures int
	AtLeast  bool
	// FailuresErr says why Failures is not known.
	FailuresErr string
	// FailuresAge is how long ago its dead letters were read.
	FailuresAge time.Duration
	// Workers counts the live workers that consume it: unlike Consumers,
	// it leaves out other AMQP clients and counts a worker once.
	Workers int
}

type overviewData struct {
	Source        string // inspect.SourceManagement or SourceAMQP
	Management    string // the management API's address, "" when off
	ManagementErr string
	Queues        []queueRow
	Workers       []inspect.Worker
	WorkersErr    string
	Failures      int
	AtLeast       bool
	// FailuresAsOf says how old the oldest failure figure is ("as of 12s
	// ago"), "" when no queue has dead letters.
	FailuresAsOf string
	// NoQueues: there is no queue to show, because the management API is
	// off or did not answer, no queue was named to the UI and no live
	// worker consumes one. The page then says how to get some.
	NoQueues bool
}

func (s *server) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	d := overviewData{}
	workers, werr := s.liveWorkers(ctx)
	if werr != nil {
		d.WorkersErr = s.scrub(werr)
	}
	d.Workers = workers
	rep, err := s.queues(ctx, workers)
	v := &view{Title: "Overview", Nav: "overview", Refresh: s.refresh(), Flash: flash(r), Data: &d}
	if rep != nil {
		d.Source, d.Management = rep.Source, rep.Management
		if rep.ManagementErr != nil {
			d.ManagementErr = s.scrub(rep.ManagementErr)
		}
	}
	if errors.Is(err, inspect.ErrNeedsManagement) {
		// Not a failure of the page: a state to explain.
		d.NoQueues = true
		s.render(w, r, http.StatusOK, "overview", v)
		return
	}
	if err != nil {
		v.Err = s.scrub(err)
		s.render(w, r, http.StatusOK, "overview", v)
		return
	}
	for _, q := range rep.Queues {
		d.Queues = append(d.Queues, queueRow{Queue: q, Workers: consuming(workers, q.Name)})
	}
	s.countFailures(ctx, d.Queues)
	oldest := time.Duration(-1)
	for _, q := range d.Queues {
		d.Failures += q.Failures
		d.AtLeast = d.AtLeast || q.AtLeast || q.FailuresErr != ""
		if q.Dead != nil && *q.Dead > 0 && !q.Missing {
			oldest = max(oldest, q.FailuresAge)
		}
	}
	if oldest >= 0 {
		d.FailuresAsOf = fmt.Sprintf("as of %ds ago", int(oldest/time.Second))
	}
	s.render(w, r, http.StatusOK, "overview", v)
}

// refresh returns the reload interval in whole seconds, 0 for none.
func (s *server) refresh() int {
	if s.cfg.Refresh < 0 {
		return 0
	}
	return max(1, int(s.cfg.Refresh/time.Second))
}

// names returns the queues to show by name: the configured ones, then
// those the live workers consume, each once.
func (s *server) names(workers []inspect.Worker) []string {
	names := slices.Clone(s.cfg.Queues)
	var fromWorkers []string
	for _, w := range workers {
		fromWorkers = append(fromWorkers, w.Queues...)
	}
	slices.Sort(fromWorkers)
	for _, q := range fromWorkers {
		if !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	return names
}

// queues reads the queues to show in one call where it can: every work
// queue from the management API (plus named queues it did not list as
// work queues), else the named ones by passive declares.
func (s *server) queues(ctx context.Context, workers []inspect.Worker) (*inspect.Report, error) {
	names := s.names(workers)
	if url, _ := s.cfg.Inspector.Management(); url != "" {
		rep, err := s.cfg.Inspector.Queues(ctx, inspect.Filter{})
		if err == nil {
			var more []string
			for _, n := range names {
				if !slices.ContainsFunc(rep.Queues, func(q inspect.Queue) bool { return q.Name == n }) {
					more = append(more, n)
				}
			}
			if len(more) > 0 {
				extra, err := s.cfg.Inspector.Queues(ctx, inspect.Filter{Names: more})
				if err != nil {
					return rep, err
				}
				rep.Queues = append(rep.Queues, extra.Queues...)
			}
			return rep, nil
		}
		if !errors.Is(err, inspect.ErrNeedsManagement) || len(names) == 0 {
			return rep, err
		}
	}
	if len(names) == 0 {
		return &inspect.Report{Source: inspect.SourceAMQP}, inspect.ErrNeedsManagement
	}
	return s.cfg.Inspector.Queues(ctx, inspect.Filter{Names: names})
}
