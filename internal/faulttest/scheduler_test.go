//go:build fault

package faulttest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/scheduler"
)

// Three worker processes share a schedule file firing a task every
// second. Over about 20 s the leader is killed with SIGKILL twice; each
// time another takes the lead. Every fire time from the first to the last
// must have been published once (run exactly once without the redelivered
// flag) with its fire id, and each takeover must take under 5 s.
func TestFaultProcessSchedulerFailover(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("sched")
	name := strings.TrimSuffix(b.Queue("every-second"), ".")
	group := strings.TrimSuffix(b.Queue("group"), ".")
	b.Track(scheduler.Name(name))
	b.Track(scheduler.ElectionQueue + "." + group)
	t.Cleanup(func() { _ = b.Channel().ExchangeDelete(scheduler.Name(name), false, false) })
	file := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(file, []byte("schedules:\n  - name: "+name+"\n    task: fault_tick\n    every: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, b, q)
	f.args = []string{"-schedules", file, "-scheduler-group", group}
	procs := []*proc{f.start(), f.start(), f.start()}
	for _, p := range procs {
		p.waitReady(t, 20*time.Second)
	}

	const leading = `"msg":"scheduler: leading"`
	leader := func() *proc {
		for _, p := range procs {
			if !exited(p) && p.logCount(leading) > 0 && !p.lostLead() {
				return p
			}
		}
		return nil
	}
	var cur *proc
	brokertest.Eventually(t, 30*time.Second, func() bool { cur = leader(); return cur != nil }, "no worker took the lead")
	start := time.Now()
	var takeovers []time.Duration
	for kill := 0; kill < 2; kill++ {
		time.Sleep(6 * time.Second)
		victim := cur
		killedAt := time.Now()
		if _, ok := signalAndWait(t, victim, syscall.SIGKILL, 10*time.Second); !ok {
			t.Fatal("SIGKILLed worker did not die")
		}
		brokertest.Eventually(t, 30*time.Second, func() bool { cur = leader(); return cur != nil && cur != victim },
			"no worker took the lead after the leader was killed")
		takeovers = append(takeovers, time.Since(killedAt))
	}
	time.Sleep(6 * time.Second)
	f.stop()

	// Fires by time: runs, fresh (not redelivered) runs, ids.
	type fire struct {
		runs, fresh int
		ids         map[string]bool
	}
	fires := map[int64]*fire{}
	fh, err := os.Open(f.record)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 6 || fs[0] != "T" {
			continue
		}
		us, _ := strconv.ParseInt(fs[1], 10, 64)
		fr := fires[us]
		if fr == nil {
			fr = &fire{ids: map[string]bool{}}
			fires[us] = fr
		}
		fr.runs++
		if fs[3] == "0" {
			fr.fresh++
		}
		fr.ids[fs[2]] = true
	}
	var times []int64
	for us := range fires {
		times = append(times, us)
	}
	slices.Sort(times)
	if len(times) < 15 {
		t.Fatalf("only %d fire times over %v", len(times), time.Since(start))
	}
	var gaps, dupPublished, redelivered []string
	for i, us := range times {
		at := time.UnixMicro(us).Format("15:04:05")
		fr := fires[us]
		if i > 0 && us-times[i-1] != int64(time.Second/time.Microsecond) {
			gaps = append(gaps, time.UnixMicro(times[i-1]).Format("15:04:05")+".."+at)
		}
		// One publish: at most one fresh run (a fire delivered to the
		// worker killed before it recorded the run comes back
		// redelivered only), and one id.
		if fr.fresh > 1 || len(fr.ids) != 1 {
			dupPublished = append(dupPublished, fmt.Sprintf("%s: %d fresh runs, %d ids", at, fr.fresh, len(fr.ids)))
		}
		if fr.runs > fr.fresh {
			redelivered = append(redelivered, at)
		}
	}
	if len(gaps) > 0 {
		t.Errorf("fire times missing: %v", gaps)
	}
	if len(dupPublished) > 0 {
		t.Errorf("fires published other than once: %v", dupPublished)
	}
	for _, d := range takeovers {
		if d > 5*time.Second {
			t.Errorf("a takeover took %v, want under 5 s", d)
		}
	}
	t.Logf("faulttest: scheduler failover: 3 workers, leader SIGKILLed twice: %d fire times from %s to %s, each published once, "+
		"%d run again after a redelivery (%v); takeovers %v",
		len(times), time.UnixMicro(times[0]).Format("15:04:05"), time.UnixMicro(times[len(times)-1]).Format("15:04:05"),
		len(redelivered), redelivered, takeovers)
}

// lostLead reports whether the process's log says it lost the lead after
// it last took it.
func (p *proc) lostLead() bool {
	b, _ := os.ReadFile(p.log)
	s := string(b)
	took := strings.LastIndex(s, `"msg":"scheduler: leading"`)
	lost := max(strings.LastIndex(s, `"msg":"scheduler: lost the lead`), strings.LastIndex(s, `"msg":"scheduler: no token came back`))
	return lost > took
}
