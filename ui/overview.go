package ui

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/warrenq/warren/inspect"
)

// failureWindow is the span of "failures in the last hour".
const failureWindow = time.Hour

// queueRow is a queue as the overview shows it.
type queueRow struct {
	inspect.Queue
	// Failures counts its dead letters that died within failureWindow;
	// AtLeast when the scan stopped at its bound before it could tell.
	Failures int
	AtLeast  bool
	// FailuresErr says why Failures is not known.
	FailuresErr string
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
	for _, q := range d.Queues {
		d.Failures += q.Failures
		d.AtLeast = d.AtLeast || q.AtLeast || q.FailuresErr != ""
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

// countFailures fills in how many dead letters of each queue died within
// failureWindow. A dead-letter queue holds its letters in the order they
// died, so once a letter within the window is read, every later one is
// within it too: a queue whose oldest letter is recent costs one read, and
// no queue more than ScanLimit. Queues are read in parallel, a few at a
// time.
func (s *server) countFailures(ctx context.Context, rows []queueRow) {
	since := time.Now().Add(-failureWindow)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for k := range rows {
		row := &rows[k]
		if row.Dead == nil || *row.Dead == 0 || row.Missing {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			row.Failures, row.AtLeast, row.FailuresErr = s.failures(ctx, row.Name, *row.Dead, since)
		})
	}
	wg.Wait()
}

func (s *server) failures(ctx context.Context, queue string, dead int, since time.Time) (n int, atLeast bool, errText string) {
	oldest, err := s.cfg.DeadLetters.List(ctx, queue, 1)
	if err != nil {
		return 0, true, s.scrub(err)
	}
	if len(oldest) == 0 {
		return 0, false, ""
	}
	if oldest[0].DiedAt.After(since) {
		return dead, false, "" // the oldest is recent: all are
	}
	letters, err := s.cfg.DeadLetters.List(ctx, queue, min(dead, ScanLimit))
	if err != nil {
		return 0, true, s.scrub(err)
	}
	for i, l := range letters {
		if l.DiedAt.After(since) {
			// This one and every later one died within the window.
			return dead - i, false, ""
		}
	}
	// All read were older; the rest, if any, were not read.
	return 0, len(letters) < dead, ""
}
