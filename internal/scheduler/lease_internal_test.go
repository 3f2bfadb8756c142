package scheduler

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/schedule"
)

// TestLeaderStepsDownWithoutItsLease loses the leader's renewals, as when
// a quorum queue hands the lead to another consumer without closing the
// leader's channel: no token comes back, and within its lease the leader
// gives the token back and stops firing, so the other candidate leads.
func TestLeaderStepsDownWithoutItsLease(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	sched, election := NewTestSchedule(t, b, "leased", schedule.Entry{})
	const renew = 300 * time.Millisecond
	var mu sync.Mutex
	var changes []string
	cands := make([]*Scheduler, 2)
	for n := range cands {
		cands[n], _ = Start(t, Config{Conn: conn.Config{URL: b.URL}, Schedules: []*schedule.Schedule{sched}, Election: election, Renew: renew,
			OnLeader: func(on bool) {
				mu.Lock()
				defer mu.Unlock()
				changes = append(changes, map[bool]string{true: "+", false: "-"}[on]+string(rune('0'+n)))
			}})
	}
	leader := -1
	brokertest.Eventually(t, 30*time.Second, func() bool {
		for n, s := range cands {
			if s.Leader() {
				leader = n
				return true
			}
		}
		return false
	}, "no candidate became leader")

	cands[leader].loseRenewals.Store(true)
	lost := time.Now()
	other := cands[1-leader]
	brokertest.Eventually(t, 10*time.Second, func() bool { return !cands[leader].Leader() && other.Leader() },
		"candidate %d kept the lead with its renewals lost", leader)
	mu.Lock()
	seen := strings.Join(changes, " ")
	mu.Unlock()
	t.Logf("candidate %d stepped down and %d leads, %v after the renewals were lost (lease %v); leadership changes: %s",
		leader, 1-leader, time.Since(lost).Round(100*time.Millisecond), 3*renew, seen)
	if el := time.Since(lost); el > 3*renew+3*time.Second {
		t.Errorf("the lead moved %v after the renewals were lost, past the lease of %v", el, 3*renew)
	}
}
