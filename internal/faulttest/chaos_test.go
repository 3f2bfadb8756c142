//go:build fault

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

// chaosItem is testworker's Chaos payload (package main, so not
// importable): a plan with one step per attempt, the last repeated. O
// succeeds, T fails transiently, P fails with retry.Permanent, S sleeps
// SlowMS honouring its context and then fails transiently.
type chaosItem struct {
	N      int    `json:"n"`
	Plan   string `json:"plan"`
	MS     int    `json:"ms"`
	SlowMS int    `json:"slow_ms,omitempty"`
}

// chaosMaxAttempts is testworker's ChaosTask's MaxAttempts.
const chaosMaxAttempts = 3

var chaosTask = task.Define[chaosItem]("fault_chaos_item", task.WithMaxAttempts(chaosMaxAttempts), task.WithBackoff(time.Second, time.Second))

func (it chaosItem) step(attempt int) byte {
	if it.Plan == "" {
		return 'O'
	}
	return it.Plan[min(attempt, len(it.Plan)-1)]
}

// predict is the final outcome the plan leads to ("success", "permanent"
// or "exhausted") and the attempt (retries header) of the last run. Every
// run of an attempt follows the same step, so a rerun of a redelivered
// task, and both lineages of a task that forked, end the same way.
func (it chaosItem) predict() (kind string, attempt int) {
	for a := 0; ; a++ {
		switch it.step(a) {
		case 'O':
			return "success", a
		case 'P':
			return string(outcome.ReasonPermanent), a
		}
		if a+1 >= chaosMaxAttempts {
			return string(outcome.ReasonExhausted), a
		}
	}
}

// chaosConfig holds the knobs, read from the environment so that a run
// with faults or failures switched off, or with one queue, checks the
// harness itself.
type chaosConfig struct {
	seed        uint64 // WARREN_CHAOS_SEED; random unless set
	queues      int    // WARREN_CHAOS_QUEUES: queues every worker consumes; 3
	concurrency int    // WARREN_CHAOS_CONCURRENCY: -concurrency; 2, below the number of queues
	faults      bool   // WARREN_CHAOS_FAULTS=off: no connection kills, no broker restart
	failures    bool   // WARREN_CHAOS_FAILURES=off: every task succeeds at its first run, none is slow
	artifacts   string // WARREN_CHAOS_ARTIFACTS: a directory to copy the run record and the logs to
}

func chaosConfigFromEnv(t *testing.T) chaosConfig {
	t.Helper()
	c := chaosConfig{seed: rand.Uint64(), queues: 3, concurrency: 2, faults: true, failures: true}
	num := func(name string, dst *int) {
		if s := os.Getenv(name); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				t.Fatalf("%s=%q: want a positive integer", name, s)
			}
			*dst = v
		}
	}
	num("WARREN_CHAOS_QUEUES", &c.queues)
	num("WARREN_CHAOS_CONCURRENCY", &c.concurrency)
	if s := os.Getenv("WARREN_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WARREN_CHAOS_SEED=%q: %v", s, err)
		}
		c.seed = v
	}
	c.artifacts = os.Getenv("WARREN_CHAOS_ARTIFACTS")
	c.faults = os.Getenv("WARREN_CHAOS_FAULTS") != "off"
	c.failures = os.Getenv("WARREN_CHAOS_FAILURES") != "off"
	return c
}

const (
	chaosWorkers         = 3
	chaosConsumerTimeout = 4 * time.Second
	// chaosGuard is how long after a connection's death a run must still
	// be running to count as having outlived its channel: connections die
	// within milliseconds of each other, and a worker that checked its
	// channel just before it died may rightly publish a follow-up.
	chaosGuard = 250 * time.Millisecond
)

// A worker consuming several queues with fewer handler slots than queues,
// under connection kills, a broker restart and consumer_timeout closes,
// runs tasks that succeed, fail transiently, fail permanently, exhaust
// their attempts or outlive the consumer_timeout, on a private RabbitMQ
// node (consumer_timeout 4s, checked every second). Three testworker
// processes consume three queues with -concurrency 2 -prefetch 2; two know
// the consumer_timeout (-consumer-timeout 4s), the first learns it from
// the broker. Each task's plan fixes what each attempt does, so a rerun
// behaves as the first run did, and the test predicts every task's end.
//
// Phases: 1, tasks spread over the queues at 8/s, with connections killed
// (rabbitmqctl close_all_connections) three times and the broker app
// restarted once while tasks run, and once more after the feed; 2, a
// burst on the first queue only while the others are idle, which must
// finish within 20s (an idle queue must not starve a busy one); 3, a
// skewed spread with one more kill. Then the fleet stops (SIGTERM) and the
// test reads every dead-letter queue.
//
// It checks: every task ends, succeeded (its handler returned nil) or
// dead-lettered, never both, in the way its plan predicts (reason and
// attempts); no follow-up (retry copy or dead letter) was published for a
// run that outlived its channel, which forks a task into two lineages;
// every queue's tasks finished in each phase; nothing is left in the
// queues once the fleet stopped. At-least-once duplicates (a success run
// twice because its ack died with its connection) are counted, not
// failed.
//
// Knobs: WARREN_CHAOS_SEED, WARREN_CHAOS_QUEUES, WARREN_CHAOS_CONCURRENCY,
// WARREN_CHAOS_FAULTS=off, WARREN_CHAOS_FAILURES=off (see chaosConfig).
func TestFaultProcessChaos(t *testing.T) {
	cfg := chaosConfigFromEnv(t)
	t.Logf("chaos: seed %d (WARREN_CHAOS_SEED), %d queues, -concurrency %d, faults %v, failures %v",
		cfg.seed, cfg.queues, cfg.concurrency, cfg.faults, cfg.failures)
	start := time.Now()
	node := startNode(t, nodeConfig{prefix: "chaos", user: "warren", password: "pw-" + randHex(t, 8),
		rabbit: []string{
			fmt.Sprintf("{consumer_timeout, %d}", chaosConsumerTimeout.Milliseconds()),
			"{channel_tick_interval, 1000}", // enforce it within a second, not a minute
		}})
	c := newChaos(t, cfg, node)
	t.Logf("chaos: node %s up in %v", node.Name, time.Since(start).Round(100*time.Millisecond))
	c.start()
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))

	// Phase 1: spread, with faults while tasks run.
	var specs []chaosSpec
	for i := 0; i < 160; i++ {
		slow := ""
		switch {
		case i%30 == 5: // 6 tasks: slow, then succeed
			slow = "SO"
		case i%30 == 10 && i < 80: // 3 tasks, early: slow every time, exhausted
			slow = "S"
		}
		specs = append(specs, c.spec(rng, 1, c.queues[rng.IntN(len(c.queues))], slow))
	}
	c.phase(1, "spread over every queue", specs, 8, 30*time.Second,
		[]chaosFault{{0.2, faultKill}, {0.4, faultKill}, {0.6, faultRestart}, {0.8, faultKill}, {1, faultKill}})

	// Phase 2: one busy queue, the others idle.
	specs = specs[:0]
	for i := 0; i < 60; i++ {
		specs = append(specs, c.spec(rng, 2, c.queues[0], ""))
	}
	c.phase(2, "only "+c.queues[0]+" busy, the others idle", specs, 100, 20*time.Second, nil)

	// Phase 3: skewed, one more kill.
	specs = specs[:0]
	for i := 0; i < 60; i++ {
		q := c.queues[len(c.queues)-1]
		if r := rng.IntN(10); r < len(c.queues)-1 {
			q = c.queues[r]
		}
		specs = append(specs, c.spec(rng, 3, q, ""))
	}
	c.phase(3, "skewed to "+c.queues[len(c.queues)-1], specs, 10, 30*time.Second, []chaosFault{{0.5, faultKill}})

	c.finish(15 * time.Second)
	c.check(time.Since(start))
}

// chaosSpec is one task to enqueue.
type chaosSpec struct {
	item  chaosItem
	queue string
	phase int
}

func chaosID(n int) string { return fmt.Sprintf("chaos-%d", n) }

// spec draws the plan of the next task; slow, if set, is its plan.
func (c *chaos) spec(rng *rand.Rand, phase int, queue, slow string) chaosSpec {
	c.next++
	it := chaosItem{N: c.next, Plan: "O", MS: 50 + rng.IntN(300)}
	if !c.cfg.failures {
		return chaosSpec{it, queue, phase}
	}
	if slow != "" {
		it.Plan, it.SlowMS = slow, int(2*chaosConsumerTimeout/time.Millisecond)
		return chaosSpec{it, queue, phase}
	}
	plans := []struct {
		plan   string
		weight int
	}{
		{"O", 40}, {"TO", 14}, {"TTO", 8}, {"P", 8}, {"TP", 6}, {"T", 10},
	}
	r := rng.IntN(86)
	for _, p := range plans {
		if r < p.weight {
			it.Plan = p.plan
			break
		}
		r -= p.weight
	}
	return chaosSpec{it, queue, phase}
}

// chaos is the test's state: the node, the fleet, the producer, what was
// sent, and the faults done.
type chaos struct {
	t      *testing.T
	cfg    chaosConfig
	node   *privateNode
	queues []string
	fleet  *fleet
	procs  []*proc
	prod   *producer.Producer
	canary *canary

	next           int
	sent           map[int]chaosSpec
	enqueueRetries atomic.Int64
	kills          int // close_all_connections
	restarts       int // stop_app / start_app
	faults         []string
	phases         []string
	starved        map[int]bool // ids unfinished at their phase's deadline
}

func newChaos(t *testing.T, cfg chaosConfig, node *privateNode) *chaos {
	c := &chaos{t: t, cfg: cfg, node: node, sent: map[int]chaosSpec{}, starved: map[int]bool{}}
	for i := 0; i < cfg.queues; i++ {
		c.queues = append(c.queues, fmt.Sprintf("chaos.%c", 'a'+i))
	}
	c.canary = startCanary(t, node.URL())
	return c
}

// start starts the fleet, waits until every process consumes every queue,
// and connects the producer.
func (c *chaos) start() {
	t := c.t
	c.fleet = newFleetAt(t, c.node.URL(), strings.Join(c.queues, ","))
	c.fleet.args = []string{"-concurrency", strconv.Itoa(c.cfg.concurrency), "-prefetch", "2", "-shutdown-timeout", "10s"}
	for i := 0; i < chaosWorkers; i++ {
		var extra []string
		if i > 0 { // the first learns the consumer_timeout from the broker
			extra = []string{"-consumer-timeout", chaosConsumerTimeout.String()}
		}
		c.procs = append(c.procs, c.fleet.start(extra...))
	}
	for _, p := range c.procs {
		p := p
		waitFor(t, 30*time.Second, func() bool { return p.logCount(`"msg":"consuming"`) >= len(c.queues) },
			"worker process %d never consumed its %d queues", p.cmd.Process.Pid, len(c.queues))
	}
	var topo routing.Topology
	for _, q := range c.queues {
		topo.Queues = append(topo.Queues, routing.Queue{Name: q})
	}
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: c.node.URL(), Heartbeat: 2 * time.Second}, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c.prod = p
}

// waitFor polls cond every 50ms until it holds, or fails the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type faultKind int

const (
	faultKill    faultKind = iota // rabbitmqctl close_all_connections
	faultRestart                  // rabbitmqctl stop_app, start_app
)

// chaosFault is done once the share at of a phase's tasks is confirmed (1:
// after the last).
type chaosFault struct {
	at   float64
	kind faultKind
}

// phase enqueues specs at rate per second with the faults at their
// moments, then waits until every task of the phase has ended (its last
// run recorded) or deadline has passed since the feed ended.
func (c *chaos) phase(n int, name string, specs []chaosSpec, rate int, deadline time.Duration, faults []chaosFault) {
	t := c.t
	start := time.Now()
	ids := make([]int, len(specs))
	for i, s := range specs {
		c.sent[s.item.N] = s
		ids[i] = s.item.N
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var confirmed atomic.Int64
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		c.feed(ctx, specs, rate, &confirmed)
	}()
	if c.cfg.faults {
		for _, f := range faults {
			want := int64(f.at * float64(len(specs)))
			for confirmed.Load() < want && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			c.fault(f.kind)
		}
	}
	<-fed
	fedAt := time.Now()
	var left []int
	for {
		recs := readChaosRecord(t, c.fleet.record)
		left = c.unfinished(recs, ids)
		if len(left) == 0 || time.Since(fedAt) > deadline {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	line := fmt.Sprintf("phase %d (%s): %d tasks, fed in %v, ", n, name, len(specs), fedAt.Sub(start).Round(100*time.Millisecond))
	if len(left) == 0 {
		line += fmt.Sprintf("all ended %v after the feed", time.Since(fedAt).Round(100*time.Millisecond))
	} else {
		byQueue := map[string][]string{}
		for _, id := range left {
			c.starved[id] = true
			byQueue[c.sent[id].queue] = append(byQueue[c.sent[id].queue], chaosID(id))
		}
		line += fmt.Sprintf("%d unfinished %v after the feed:", len(left), deadline)
		for _, q := range c.queues {
			if ls := byQueue[q]; len(ls) > 0 {
				line += fmt.Sprintf(" %s %d of %d (%s)", q, len(ls), countQueue(specs, q), head(ls, 8))
			}
		}
	}
	c.phases = append(c.phases, line)
	t.Log("chaos: " + line)
}

func countQueue(specs []chaosSpec, q string) int {
	n := 0
	for _, s := range specs {
		if s.queue == q {
			n++
		}
	}
	return n
}

// head joins the first n of ss, saying how many more there are.
func head(ss []string, n int) string {
	if len(ss) <= n {
		return strings.Join(ss, " ")
	}
	return strings.Join(ss[:n], " ") + fmt.Sprintf(" and %d more", len(ss)-n)
}

// feed enqueues specs at rate per second with 8 publishers, each task
// WithID its own id, retrying a failed enqueue with the same id as a
// careful caller does.
func (c *chaos) feed(ctx context.Context, specs []chaosSpec, rate int, confirmed *atomic.Int64) {
	next := make(chan chaosSpec)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				for {
					_, err := producer.Enqueue(ctx, c.prod, chaosTask, s.item, producer.WithQueue(s.queue), producer.WithID(chaosID(s.item.N)))
					if err == nil {
						confirmed.Add(1)
						break
					}
					if ctx.Err() != nil {
						c.t.Errorf("%s never confirmed: %v", chaosID(s.item.N), err)
						break
					}
					c.enqueueRetries.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for _, s := range specs {
		<-tick.C
		next <- s
	}
	close(next)
	wg.Wait()
}

// fault kills every connection or restarts the broker app, once tasks are
// running (waiting up to 10s for two runs in flight).
func (c *chaos) fault(kind faultKind) {
	t := c.t
	var inFlight int
	deadline := time.Now().Add(10 * time.Second)
	for {
		inFlight = len(readChaosRecord(t, c.fleet.record).running())
		if inFlight >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	at := time.Now()
	deaths := c.canary.deaths()
	switch kind {
	case faultKill:
		c.node.mustCtl(t, 60*time.Second, "close_all_connections", "warren chaos test")
		c.kills++
	case faultRestart:
		c.node.mustCtl(t, 60*time.Second, "stop_app")
		c.node.mustCtl(t, 60*time.Second, "start_app")
		c.node.mustCtl(t, 60*time.Second, "await_startup")
		c.restarts++
	}
	// The canary's connection died too: that is the moment runs are
	// measured against.
	waitFor(t, 30*time.Second, func() bool { return c.canary.deaths() > deaths }, "the canary connection survived a fault")
	what := map[faultKind]string{faultKill: "close_all_connections", faultRestart: "stop_app/start_app"}[kind]
	c.faults = append(c.faults, fmt.Sprintf("%s at %v with %d runs in flight, done in %v",
		what, at.Sub(c.canary.started).Round(100*time.Millisecond), inFlight, time.Since(at).Round(100*time.Millisecond)))
}

// unfinished returns the ids whose plan's last run has not ended, or that
// have a run still going.
func (c *chaos) unfinished(recs chaosRecord, ids []int) []int {
	var left []int
	for _, id := range ids {
		if !recs.ended(id, c.sent[id].item) {
			left = append(left, id)
		}
	}
	return left
}

// finish waits until nothing is left in any queue but the dead letters,
// then stops the fleet with SIGTERM.
func (c *chaos) finish(timeout time.Duration) {
	t := c.t
	deadline := time.Now().Add(timeout)
	for {
		recs := readChaosRecord(t, c.fleet.record)
		if len(recs.running()) == 0 && len(c.unfinished(recs, c.allIDs())) == 0 {
			if c.pending() == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Logf("chaos: still not quiet %v after the last phase: %d messages outside the dead letters", timeout, c.pending())
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range c.procs {
		if d, ok := signalAndWait(t, p, syscall.SIGTERM, 20*time.Second); !ok {
			t.Errorf("worker process %d did not exit %v after SIGTERM", p.cmd.Process.Pid, d)
		} else if code := p.state.ExitCode(); code != 0 {
			t.Errorf("worker process %d exited %d after SIGTERM", p.cmd.Process.Pid, code)
		}
	}
}

func (c *chaos) allIDs() []int {
	ids := make([]int, 0, len(c.sent))
	for id := range c.sent {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// queueCounts lists the node's queues with their messages, ready and
// unacked.
func (c *chaos) queueCounts() map[string]int {
	out := c.node.mustCtl(c.t, 60*time.Second, "list_queues", "name", "messages", "--no-table-headers", "--silent")
	m := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) != 2 {
			continue
		}
		if n, err := strconv.Atoi(fs[1]); err == nil {
			m[fs[0]] = n
		}
	}
	return m
}

// pending counts the messages outside the dead-letter queues: tasks
// waiting, running or in the delay levels.
func (c *chaos) pending() int {
	n := 0
	for q, k := range c.queueCounts() {
		if !strings.HasSuffix(q, ".dead") {
			n += k
		}
	}
	return n
}

// deadLetter is one message read from a <queue>.dead.
type deadLetter struct {
	id       int
	queue    string
	reason   string
	attempts int
}

// drain takes every message from the queues for which keep says so
// (after the fleet stopped), returning the task id of each.
func (c *chaos) drain(keep func(string) bool) (dead []deadLetter, left map[string][]string) {
	t := c.t
	conn, err := amqp.Dial(c.node.URL())
	if err != nil {
		t.Fatalf("dial the node to read its queues: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	left = map[string][]string{}
	for q, n := range c.queueCounts() {
		if n == 0 || !keep(q) {
			continue
		}
		for {
			d, ok, err := ch.Get(q, true)
			if err != nil {
				t.Fatalf("get from %s: %v", q, err)
			}
			if !ok {
				break
			}
			id := d.MessageId
			if id == "" {
				id, _ = d.Headers[task.HeaderID].(string)
			}
			if !strings.HasSuffix(q, ".dead") {
				left[q] = append(left[q], id)
				continue
			}
			dl := deadLetter{queue: strings.TrimSuffix(q, ".dead"), attempts: -1}
			dl.id, _ = strconv.Atoi(strings.TrimPrefix(id, "chaos-"))
			dl.reason, _ = d.Headers[worker.HeaderReason].(string)
			switch v := d.Headers[worker.HeaderAttempts].(type) {
			case int64:
				dl.attempts = int(v)
			case int32:
				dl.attempts = int(v)
			}
			dead = append(dead, dl)
		}
	}
	return dead, left
}

// check reads the dead letters and what is left, compares every task's
// records with its plan, logs the report and fails on what went wrong.
func (c *chaos) check(elapsed time.Duration) {
	t := c.t
	_, left := c.drain(func(q string) bool { return !strings.HasSuffix(q, ".dead") })
	dead, _ := c.drain(func(q string) bool { return strings.HasSuffix(q, ".dead") })
	c.keepArtifacts()
	recs := readChaosRecord(t, c.fleet.record)
	closes := c.consumerTimeoutCloses()
	deaths := c.canary.times()

	deadBy := map[int][]deadLetter{}
	for _, d := range dead {
		deadBy[d.id] = append(deadBy[d.id], d)
	}
	var (
		succeeded, lost, both, wrong, forked, badForks, dups []string
		deadByReason                                         = map[string]int{}
		okRuns, runs, planned                                int
	)
	unfinished := map[string]bool{}
	for _, ids := range left {
		for _, id := range ids {
			unfinished[id] = true
		}
	}
	for _, id := range c.allIDs() {
		s := c.sent[id]
		name := chaosID(id)
		rs := recs.byID[id]
		runs += len(rs)
		_, last := s.item.predict()
		planned += last + 1
		ok := 0
		for _, r := range rs {
			if r.result == "ok" {
				ok++
			}
		}
		okRuns += ok
		ds := deadBy[id]
		reasons := map[string]bool{}
		for _, d := range ds {
			reasons[d.reason] = true
		}
		for r := range reasons {
			deadByReason[r]++
		}
		if ok > 0 {
			succeeded = append(succeeded, name)
		}
		switch {
		case ok == 0 && len(ds) == 0 && unfinished[name]:
			// reported with what is left in the queues
		case ok == 0 && len(ds) == 0:
			lost = append(lost, fmt.Sprintf("%s (%s on %s, %d runs)", name, s.item.Plan, s.queue, len(rs)))
		case ok > 0 && len(ds) > 0:
			both = append(both, fmt.Sprintf("%s (plan %s: %d successful runs, dead-lettered %s)", name, s.item.Plan, ok, deadSummary(ds)))
		}
		if ok+len(ds) > 1 {
			dups = append(dups, name)
		}
		kind, _ := s.item.predict()
		for _, d := range ds {
			if kind == "success" || d.reason != kind || d.attempts != last+1 {
				wrong = append(wrong, fmt.Sprintf("%s (plan %s predicts %s after %d runs; dead-lettered %s)", name, s.item.Plan, kind, last+1, deadSummary(ds)))
				break
			}
		}
		if kind != "success" && ok > 0 {
			wrong = append(wrong, fmt.Sprintf("%s (plan %s predicts %s; a run succeeded)", name, s.item.Plan, kind))
		}
		for _, r := range rs {
			if r.attempt >= chaosMaxAttempts {
				wrong = append(wrong, fmt.Sprintf("%s ran attempt %d, past MaxAttempts %d", name, r.attempt+1, chaosMaxAttempts))
				break
			}
		}
		// Follow-ups of attempt a: the retry copies (first delivered,
		// not redelivered, at attempt a+1) and the dead letters saying
		// a+1 attempts. Only a failed run of attempt a publishes one, and
		// only if its channel was alive when it ended.
		fork, bad := false, false
		var why []string
		for a := 0; a < chaosMaxAttempts; a++ {
			followUps := len(dlAttempts(ds, a+1))
			for _, r := range rs {
				if r.attempt == a+1 && !r.redelivered {
					followUps++
				}
			}
			if followUps < 2 {
				continue
			}
			fork = true
			alive, died := 0, []string{}
			for _, r := range rs {
				if r.attempt != a || r.end.IsZero() || r.result == "ok" {
					continue
				}
				if d, ok := r.outlived(deaths, closes); ok {
					died = append(died, fmt.Sprintf("pid %d on %s %s-%s, channel died at %s", r.pid, r.queue, clock(r.start), clock(r.end), clock(d)))
				} else {
					alive++
				}
			}
			if followUps > alive {
				bad = true
				why = append(why, fmt.Sprintf("attempt %d: %d follow-ups, %d failed runs ended on a live channel; outlived theirs: %s", a+1, followUps, alive, strings.Join(died, "; ")))
			}
		}
		if fork {
			forked = append(forked, name)
		}
		if bad {
			badForks = append(badForks, fmt.Sprintf("%s (plan %s on %s): %s", name, s.item.Plan, s.queue, strings.Join(why, " | ")))
		}
	}

	var leftover []string
	for q, ids := range left {
		leftover = append(leftover, fmt.Sprintf("%s: %s", q, head(ids, 10)))
	}
	sort.Strings(leftover)
	nCloses := 0
	for _, cs := range closes {
		nCloses += len(cs)
	}

	for _, l := range c.faults {
		t.Log("chaos: fault: " + l)
	}
	t.Logf("chaos: %d runs in all (the plans need %d), %d successful runs; %d dead letters; %d connection deaths seen by the canary; enqueue retries %d",
		runs, planned, okRuns, len(dead), len(deaths), c.enqueueRetries.Load())
	t.Log("chaos: | run | sent | succeeded | dead (permanent / exhausted) | lost | unfinished | succeeded and dead | forks (from dead channels) | duplicates | connection kills | broker restarts | consumer-timeout closes | time |")
	t.Log("chaos: | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	t.Logf("chaos: | %d queues, -concurrency %d, faults %v, failures %v | %d | %d | %d / %d | %d | %d | %d | %d (%d) | %d | %d | %d | %d | %v |",
		c.cfg.queues, c.cfg.concurrency, c.cfg.faults, c.cfg.failures,
		len(c.sent), len(succeeded), deadByReason[string(outcome.ReasonPermanent)], deadByReason[string(outcome.ReasonExhausted)],
		len(lost), len(unfinished), len(both), len(forked), len(badForks), len(dups),
		c.kills, c.restarts, nCloses, elapsed.Round(time.Second))

	for _, l := range c.phases {
		if strings.Contains(l, "unfinished") {
			t.Errorf("tasks unfinished at their phase's deadline (with queues idle, an idle queue starved a busy one): %s", l)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d tasks lost (no successful run, no dead letter, not in any queue): %s", len(lost), head(lost, 20))
	}
	if len(leftover) > 0 {
		t.Errorf("%d tasks left in the queues after the fleet stopped: %s", len(unfinished), strings.Join(leftover, "; "))
	}
	if len(both) > 0 {
		t.Errorf("%d tasks both succeeded and dead-lettered: %s", len(both), head(both, 20))
	}
	if len(wrong) > 0 {
		t.Errorf("%d tasks ended otherwise than their plan predicts: %s", len(wrong), head(wrong, 20))
	}
	if len(badForks) > 0 {
		t.Errorf("%d tasks forked by a follow-up published for a run whose channel had died: %s", len(badForks), head(badForks, 20))
	}
	if len(c.sent) > 0 && len(lost)+len(unfinished) == len(c.sent) {
		t.Errorf("no task ended at all")
	}
}

// keepArtifacts copies the run record, the worker logs and the node's
// console to WARREN_CHAOS_ARTIFACTS, if set, for a look after the test.
func (c *chaos) keepArtifacts() {
	dir := c.cfg.artifacts
	if dir == "" {
		return
	}
	files := map[string]string{"record": c.fleet.record, "node.out": c.node.log}
	for i, p := range c.procs {
		files[fmt.Sprintf("worker-%d-pid-%d.log", i, p.cmd.Process.Pid)] = p.log
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Errorf("WARREN_CHAOS_ARTIFACTS: %v", err)
		return
	}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		if err != nil {
			c.t.Errorf("WARREN_CHAOS_ARTIFACTS: %v", err)
		}
	}
	c.t.Logf("chaos: run record and worker logs copied to %s", dir)
}

func dlAttempts(ds []deadLetter, attempts int) []deadLetter {
	var out []deadLetter
	for _, d := range ds {
		if d.attempts == attempts {
			out = append(out, d)
		}
	}
	return out
}

func deadSummary(ds []deadLetter) string {
	var ss []string
	for _, d := range ds {
		ss = append(ss, fmt.Sprintf("%s after %d attempts", d.reason, d.attempts))
	}
	return strings.Join(ss, ", ")
}

func clock(t time.Time) string { return t.Format("15:04:05.000") }

// consumerTimeoutCloses reads, from each worker's log, when the broker
// closed one of its consumer channels for its consumer_timeout, by pid
// and queue.
func (c *chaos) consumerTimeoutCloses() map[chaosChannel][]time.Time {
	out := map[chaosChannel][]time.Time{}
	for _, p := range c.procs {
		f, err := os.Open(p.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), "outlived the broker's consumer_timeout") {
				continue
			}
			var l struct {
				TS    string `json:"ts"`
				Queue string `json:"queue"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", l.TS)
			if err != nil {
				continue
			}
			k := chaosChannel{p.cmd.Process.Pid, l.Queue}
			out[k] = append(out[k], ts)
		}
		_ = f.Close()
	}
	return out
}

// chaosChannel names a consumer channel: a process and a queue.
type chaosChannel struct {
	pid   int
	queue string
}

// chaosRun is one run of a chaos task, from testworker's B and E lines.
type chaosRun struct {
	n, attempt  int
	redelivered bool
	queue       string
	pid         int
	start, end  time.Time // end is zero while it runs
	result      string
}

// outlived reports whether the run was still going chaosGuard after its
// channel died (a connection death seen by the canary, or a
// consumer_timeout close of its process's consumer of its queue) having
// started before: its outcome cannot be settled on that channel, and a
// follow-up published for it forks the task.
func (r chaosRun) outlived(deaths []time.Time, closes map[chaosChannel][]time.Time) (time.Time, bool) {
	all := append(append([]time.Time(nil), deaths...), closes[chaosChannel{r.pid, r.queue}]...)
	for _, d := range all {
		if r.start.Before(d) && r.end.After(d.Add(chaosGuard)) {
			return d, true
		}
	}
	return time.Time{}, false
}

// chaosRecord is the run record read back.
type chaosRecord struct {
	byID map[int][]chaosRun
}

// running returns the runs that began and have not ended.
func (rec chaosRecord) running() []chaosRun {
	var out []chaosRun
	for _, rs := range rec.byID {
		for _, r := range rs {
			if r.end.IsZero() {
				out = append(out, r)
			}
		}
	}
	return out
}

// ended reports whether the task has a run that ended its plan (it
// succeeded, failed permanently, or failed its last attempt) and no run
// still going.
func (rec chaosRecord) ended(id int, it chaosItem) bool {
	_, last := it.predict()
	done := false
	for _, r := range rec.byID[id] {
		if r.end.IsZero() {
			return false
		}
		if r.attempt == last {
			done = true
		}
	}
	return done
}

// readChaosRecord parses the B and E lines of the fleet's run record.
func readChaosRecord(t *testing.T, path string) chaosRecord {
	t.Helper()
	rec := chaosRecord{byID: map[int][]chaosRun{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return rec
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type key struct {
		pid     int
		n       int
		attempt int
		start   int64
	}
	idx := map[key]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 7 || (fs[0] != "B" && fs[0] != "E") || (fs[0] == "E" && len(fs) != 9) {
			continue
		}
		n, _ := strconv.Atoi(fs[1])
		attempt, _ := strconv.Atoi(fs[2])
		pid, _ := strconv.Atoi(fs[5])
		startNS, _ := strconv.ParseInt(fs[6], 10, 64)
		k := key{pid, n, attempt, startNS}
		i, ok := idx[k]
		if !ok {
			rec.byID[n] = append(rec.byID[n], chaosRun{n: n, attempt: attempt, redelivered: fs[3] == "1", queue: fs[4], pid: pid, start: time.Unix(0, startNS)})
			i = len(rec.byID[n]) - 1
			idx[k] = i
		}
		if fs[0] == "E" {
			endNS, _ := strconv.ParseInt(fs[7], 10, 64)
			rec.byID[n][i].end = time.Unix(0, endNS)
			rec.byID[n][i].result = fs[8]
		}
	}
	return rec
}

// canary is a plain AMQP connection to the node that notes when it dies
// and dials again: the moment a fault closed every connection, measured
// from outside the workers. close_all_connections and stop_app close all
// connections within a few milliseconds (the workers' logs agree), while a
// worker needs tens of milliseconds to reconnect, subscribe and start a
// run, so a run that began before this moment was on a channel that died
// with it.
type canary struct {
	started time.Time
	mu      sync.Mutex
	at      []time.Time
}

func startCanary(t *testing.T, url string) *canary {
	c := &canary{started: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			conn, err := amqp.Dial(url)
			if err != nil {
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			closed := conn.NotifyClose(make(chan *amqp.Error, 1))
			select {
			case <-closed:
				c.mu.Lock()
				c.at = append(c.at, time.Now())
				c.mu.Unlock()
			case <-ctx.Done():
				_ = conn.Close()
			}
		}
	}()
	return c
}

func (c *canary) deaths() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

func (c *canary) times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at...)
}
