//go:build fault

package worker_test

import (
	"testing"

	"github.com/warrenq/warren/internal/broker/brokertest"
)

// The figure, run alone (the test command's fault step, -p 1):
// three workers, a fleet-wide limit of 20 per second, 2,000 tasks: every
// one-second window starts 20 within 10%, and the batch takes 100 s
// within 10%.
func TestFaultRateLimitWindows(t *testing.T) {
	b := brokertest.New(t)
	starts := runRateLimited(t, b, 2000, 20)
	checkRate(t, starts, 20, true)
}
