package retry_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren/retry"
)

// A policy turns each failure into a decision: retry after a delay, or
// give up with a reason.
func ExamplePolicy_Decide() {
	p := retry.Policy{MaxAttempts: 3, Backoff: retry.Backoff{Base: 5 * time.Second, Jitter: -1}}
	errDown := errors.New("payments API down")

	for attempt := 1; attempt <= 3; attempt++ {
		fmt.Printf("attempt %d: %+v\n", attempt, p.Decide(attempt, errDown, 0))
	}
	fmt.Printf("bad input: %+v\n", p.Decide(1, retry.Permanent(errors.New("no such user")), 0))
	fmt.Printf("rate limited: %+v\n", p.Decide(1, retry.After(time.Minute, errors.New("429")), 0))
	// Output:
	// attempt 1: {Retry:true Delay:5s Reason:}
	// attempt 2: {Retry:true Delay:10s Reason:}
	// attempt 3: {Retry:false Delay:0s Reason:exhausted}
	// bad input: {Retry:false Delay:0s Reason:permanent}
	// rate limited: {Retry:true Delay:1m0s Reason:}
}
