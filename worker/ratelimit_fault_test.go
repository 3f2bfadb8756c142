//go:build fault

package worker_test

import (
	"testing"

	"github.com/warrenq/warren/internal/broker/brokertest"
)

// The size, run alone (the test command's fault step, -p 1):
// three workers, a fleet-wide limit of 20 per second, 2,000 tasks: no
// one-second window starts more than 22, and the batch takes 100 s within
// 10%. The log counts the windows under 18: none on a quiet machine, some
// when it is held up (checkRate).
func TestFaultRateLimitWindows(t *testing.T) {
	b := brokertest.New(t)
	starts := runRateLimited(t, b, 2000, 20)
	checkRate(t, starts, 20)
}
