package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/task"
)

// Chaos is the chaos test's payload: a plan of what each attempt does.
type Chaos struct {
	N int `json:"n"`
	// Plan has one step per attempt (the retries header), its last step
	// repeated for later attempts:
	//
	//	O  succeed
	//	T  fail, transiently (retried until MaxAttempts)
	//	P  fail with retry.Permanent (dead-lettered at once)
	//	S  sleep SlowMS, honouring the context (the worker cuts the run
	//	   before a consumer_timeout it knows), then fail transiently
	Plan string `json:"plan"`
	// MS is how long an O, T or P step takes. Those steps ignore the
	// context: a run that waited in the prefetch window may start with its
	// consumer_timeout deadline already past, and its outcome must still be
	// the plan's, or a rerun could end differently from the first run.
	MS     int `json:"ms"`
	SlowMS int `json:"slow_ms,omitempty"`
}

// ChaosTask runs at most three times, retried after a second (one-second
// jitter may make it two: delays have one-second resolution).
var ChaosTask = task.Define[Chaos]("fault_chaos_item", task.WithMaxAttempts(3), task.WithBackoff(time.Second, time.Second))

// step is the plan's step for attempt.
func (c Chaos) step(attempt int) byte {
	if c.Plan == "" {
		return 'O'
	}
	return c.Plan[min(attempt, len(c.Plan)-1)]
}

// errChaos is the planned failure.
var errChaos = errors.New("planned failure")

// chaos runs one step of c's plan and records the run: at its beginning
//
//	B <n> <attempt> <redelivered 0|1> <queue> <pid> <start unix ns>
//
// and at its end
//
//	E <n> <attempt> <redelivered> <queue> <pid> <start ns> <end ns> <result>
//
// with result ok, transient, permanent, slow-cut (the context ended the
// sleep) or slow-slept. The E line is written before the handler returns,
// so before the worker publishes a follow-up or acks.
func (r *recorder) chaos(ctx context.Context, c Chaos) error {
	m, ok := task.FromContext(ctx)
	if !ok {
		return retry.Permanent(errors.New("no task message in the context"))
	}
	redelivered := 0
	if m.Redelivered {
		redelivered = 1
	}
	start := time.Now()
	head := fmt.Sprintf("%d %d %d %s %d %d", c.N, m.Retries, redelivered, m.Queue, r.pid, start.UnixNano())
	r.write("B " + head + "\n")
	var result string
	var err error
	switch c.step(m.Retries) {
	case 'S':
		t := time.NewTimer(time.Duration(c.SlowMS) * time.Millisecond)
		select {
		case <-t.C:
			result, err = "slow-slept", fmt.Errorf("slow step: %w", errChaos)
		case <-ctx.Done():
			t.Stop()
			result, err = "slow-cut", fmt.Errorf("slow step: %w", ctx.Err())
		}
	case 'T':
		time.Sleep(time.Duration(c.MS) * time.Millisecond)
		result, err = "transient", errChaos
	case 'P':
		time.Sleep(time.Duration(c.MS) * time.Millisecond)
		result, err = "permanent", retry.Permanent(errChaos)
	default:
		time.Sleep(time.Duration(c.MS) * time.Millisecond)
		result = "ok"
	}
	r.write(fmt.Sprintf("E %s %d %s\n", head, time.Now().UnixNano(), result))
	return err
}
