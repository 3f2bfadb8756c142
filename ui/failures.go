package ui

import (
	"context"
	"sync"
	"time"
)

// failureWindow is the span of "failures in the last hour".
const failureWindow = time.Hour

// FailuresMaxAge is how long the overview keeps a queue's count of the
// failures of the last hour before it reads the queue's dead letters
// again. Reading them delivers them: each comes back marked redelivered,
// and on RabbitMQ 4 a quorum .dead queue counts each return toward its
// delivery limit (20 by default), past which the oldest letters would be
// dropped. So an overview left open, refreshing every few seconds, reads
// each .dead queue at most once per FailuresMaxAge; in between, letters
// that died since the read count as failures without a read.
const FailuresMaxAge = time.Minute

// failureCache holds each queue's last count of recent failures.
type failureCache struct {
	mu      sync.Mutex
	byQueue map[string]*failureCount
}

// failureCount is one queue's count, as read from its dead letters.
type failureCount struct {
	mu       sync.Mutex // held while the queue's dead letters are read
	at       time.Time  // when they were read; zero: never
	dead     int        // how many dead letters the queue held then
	failures int
	atLeast  bool
	errText  string
}

func (c *failureCache) of(queue string) *failureCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byQueue == nil {
		c.byQueue = map[string]*failureCount{}
	}
	fc := c.byQueue[queue]
	if fc == nil {
		fc = &failureCount{}
		c.byQueue[queue] = fc
	}
	return fc
}

// current returns the count for a queue that holds dead letters now,
// from a read less than FailuresMaxAge before now; ok is false when there
// is none. Letters added since the read died after it, so within the
// window; when letters went (replayed, deleted), the count is at most what
// is left. Letters that left the window since the read still count: the
// figure is as of the read.
func (fc *failureCount) current(dead int, now time.Time) (n int, atLeast bool, errText string, ok bool) {
	if fc.at.IsZero() || now.Sub(fc.at) >= FailuresMaxAge {
		return 0, false, "", false
	}
	n = fc.failures
	if dead > fc.dead {
		n += dead - fc.dead
	}
	return min(n, dead), fc.atLeast, fc.errText, true
}

// countFailures fills in how many dead letters of each queue died within
// failureWindow, reading a queue's letters only when its count is older
// than FailuresMaxAge. Queues are read in parallel, a few at a time; a
// read goes on, for Config.Timeout, when the page's request goes away, so
// that its result is kept.
func (s *server) countFailures(ctx context.Context, rows []queueRow) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for k := range rows {
		row := &rows[k]
		if row.Dead == nil || *row.Dead == 0 || row.Missing {
			continue
		}
		wg.Go(func() {
			fc := s.failures.of(row.Name)
			fc.mu.Lock()
			defer fc.mu.Unlock()
			var ok bool
			if row.Failures, row.AtLeast, row.FailuresErr, ok = fc.current(*row.Dead, time.Now()); !ok {
				sem <- struct{}{}
				at := time.Now()
				fc.failures, fc.atLeast, fc.errText = s.readFailures(ctx, row.Name, *row.Dead, at.Add(-failureWindow))
				<-sem
				fc.at, fc.dead = at, *row.Dead
				row.Failures, row.AtLeast, row.FailuresErr = fc.failures, fc.atLeast, fc.errText
			}
			row.FailuresAge = time.Since(fc.at)
		})
	}
	wg.Wait()
}

// readFailures counts the dead letters of queue that died after since. A
// dead-letter queue holds its letters in the order they died, so once a
// letter within the window is read, every later one is within it too: a
// queue whose oldest letter is recent costs one read, and no queue more
// than ScanLimit.
func (s *server) readFailures(ctx context.Context, queue string, dead int, since time.Time) (n int, atLeast bool, errText string) {
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
