package celery_test

// Interoperability with Celery itself (Debian's python3-celery, 5.2),
// against the real broker: a Celery app (testdata/pyapp.py) sends tasks
// that a warren worker runs and awaits their results, and a stock Celery
// worker runs tasks that warren enqueues, warren awaiting its results.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/celery"
	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// The tasks both sides share: go.* run in Go, py.* in Python.
type (
	addArgs struct {
		X     int    `json:"x"`
		Y     int    `json:"y"`
		Label string `json:"label"`
	}
	sum struct {
		Sum   int    `json:"sum"`
		Label string `json:"label"`
	}
	mulArgs struct {
		X  int `json:"x"`
		By int `json:"by"`
	}
	subArgs struct {
		X     int `json:"x"`
		Minus int `json:"minus"`
	}
	errbackArgs struct {
		TaskID string `json:"task_id"`
		Note   string `json:"note"`
	}
)

var (
	goAdd     = celery.DefineWithResult[addArgs, sum]("go.add")
	goMul     = celery.DefineWithResult[mulArgs, int]("go.mul")
	goSub     = celery.DefineWithResult[subArgs, int]("go.sub")
	goNow     = celery.DefineWithResult[string, float64]("go.now")
	goSlow    = celery.DefineWithResult[float64, string]("go.slow", task.WithMaxAttempts(1))
	goFail    = celery.DefineWithResult[string, int]("go.fail")
	goFlaky   = celery.DefineWithResult[string, string]("go.flaky", task.WithBackoff(10*time.Millisecond, 10*time.Millisecond))
	goErrback = celery.Define[errbackArgs]("go.errback")

	pyAdd  = celery.DefineWithResult[addArgs, sum]("py.add")
	pyWhen = celery.DefineWithResult[string, float64]("py.when")
	pyFail = celery.DefineWithResult[string, any]("py.fail")
)

// bed is one test's pair of queues and the environment of its Python.
type bed struct {
	b       *brokertest.Broker
	goQueue string // consumed by warren
	pyQueue string // consumed by Celery
	record  string // the file py.* tasks append to
	env     []string
}

func newBed(t *testing.T) *bed {
	t.Helper()
	testenv.RequirePython(t, "celery", "--with-celery")
	b := brokertest.New(t)
	tb := &bed{b: b, goQueue: b.Queue("go"), pyQueue: b.Queue("py"), record: filepath.Join(t.TempDir(), "record.jsonl")}
	ku, err := testenv.KombuURL(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	tb.env = []string{"WARREN_BROKER=" + ku, "WARREN_GO_QUEUE=" + tb.goQueue, "WARREN_PY_QUEUE=" + tb.pyQueue, "WARREN_RECORD=" + tb.record}
	t.Cleanup(func() {
		// Celery names each queue's exchange after it.
		ch := b.Channel()
		for _, x := range []string{tb.goQueue, tb.pyQueue} {
			_ = ch.ExchangeDelete(x, false, false)
		}
	})
	return tb
}

// call is one run of a Go handler, as the handler saw it.
type call struct {
	Task, ID, ParentID, RootID string
	Payload                    any
}

// goSide is a warren worker running the go.* tasks, recording each run.
type goSide struct {
	w     *worker.Worker
	mu    sync.Mutex
	calls []call
}

func (g *goSide) saw(ctx context.Context, payload any) {
	m, _ := task.FromContext(ctx)
	parent, _ := m.Headers[celery.HeaderParentID].(string)
	root, _ := m.Headers[celery.HeaderRootID].(string)
	g.mu.Lock()
	g.calls = append(g.calls, call{Task: m.Task, ID: m.ID, ParentID: parent, RootID: root, Payload: payload})
	g.mu.Unlock()
}

func (g *goSide) runs(name string) []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []call
	for _, c := range g.calls {
		if c.Task == name {
			out = append(out, c)
		}
	}
	return out
}

// startGo runs a warren worker on the test's Go queue until the test ends.
func startGo(t *testing.T, tb *bed) *goSide {
	t.Helper()
	g := &goSide{}
	reg := task.NewRegistry()
	reg.MustRegister(
		goAdd.Handler(func(ctx context.Context, a addArgs) (sum, error) {
			g.saw(ctx, a)
			return sum{Sum: a.X + a.Y, Label: a.Label}, nil
		}),
		goMul.Handler(func(ctx context.Context, a mulArgs) (int, error) { g.saw(ctx, a); return a.X * a.By, nil }),
		goSub.Handler(func(ctx context.Context, a subArgs) (int, error) { g.saw(ctx, a); return a.X - a.Minus, nil }),
		goNow.Handler(func(ctx context.Context, label string) (float64, error) {
			g.saw(ctx, label)
			return float64(time.Now().UnixMicro()) / 1e6, nil
		}),
		goSlow.Handler(func(ctx context.Context, secs float64) (string, error) {
			g.saw(ctx, secs)
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Duration(secs * float64(time.Second))):
				return "slept", nil
			}
		}),
		goFail.Handler(func(ctx context.Context, why string) (int, error) {
			g.saw(ctx, why)
			return 0, retry.Permanent(errors.New(why))
		}),
		goErrback.Handler(func(ctx context.Context, a errbackArgs) error { g.saw(ctx, a); return nil }),
		goFlaky.Handler(func(ctx context.Context, label string) (string, error) {
			g.saw(ctx, label)
			if m, _ := task.FromContext(ctx); m.Retries == 0 {
				return "", errors.New("first attempt fails")
			}
			return label + " on the second attempt", nil
		}),
	)
	w, err := worker.New(worker.Config{
		Conn:            conn.Config{URL: tb.b.URL},
		Queues:          []string{tb.goQueue},
		Registry:        reg,
		Topology:        celery.Topology(tb.goQueue),
		Concurrency:     8,
		ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.w = w
	warrentest.Run(t, w)
	return g
}

// startCelery runs a stock Celery worker (solo pool) on the test's Python
// queue until the test ends, and waits until it says it is ready.
func startCelery(t *testing.T, tb *bed) {
	t.Helper()
	cmd := exec.Command(testenv.Python, "-m", "celery", "-A", "pyapp", "worker", "-Q", tb.pyQueue,
		"--pool", "solo", "--loglevel", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
		"-n", fmt.Sprintf("py%d@%%h", time.Now().UnixNano()))
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), tb.env...)
	var log testenv.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			fmt.Fprintln(&log, sc.Text())
			if strings.Contains(sc.Text(), " ready.") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // warm shutdown
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("celery worker log:\n%s", log.String())
		}
	})
	select {
	case <-ready:
	case <-time.After(testenv.ScriptTimeout):
		t.Fatalf("the Celery worker did not become ready in %v:\n%s", testenv.ScriptTimeout, log.String())
	}
}

// pysend runs testdata/pysend.py and decodes what it prints into out.
func (tb *bed) pysend(t *testing.T, out any, args ...string) {
	t.Helper()
	raw := testenv.RunPython(t, tb.env, "pysend.py", args...)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("pysend.py %v printed %q: %v", args, raw, err)
	}
	if len(raw) < 2000 {
		t.Logf("pysend.py %v: %s", args, raw)
	}
}

// producer enqueues py.* tasks to the test's Python queue, routed as
// Celery routes them (the exchange named after the queue).
func (tb *bed) producer(t *testing.T) *producer.Producer {
	t.Helper()
	routes := routing.NewTable()
	for _, name := range []string{pyAdd.Name(), pyWhen.Name(), pyFail.Name()} {
		routes.Add(name, celery.Route(tb.pyQueue))
	}
	p, err := producer.New(producer.Config{Conn: conn.Config{URL: tb.b.URL}, Routes: routes, Topology: celery.Topology(tb.pyQueue)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// noDeadLetters fails the test if the Go queue's dead letters hold anything.
func (tb *bed) noDeadLetters(t *testing.T) {
	t.Helper()
	if d, ok := tb.b.Get(routing.DeadQueue(tb.goQueue)); ok {
		t.Errorf("a dead letter in %s: headers %v body %s", routing.DeadQueue(tb.goQueue), d.Headers, d.Body)
	}
}

// A Celery app sends 1,000 go.add calls, half with send_task and half with
// a task stub's .delay(), positional args and kwargs mixed; warren runs
// each once, with the arguments mapped onto the Go struct, and Python's
// AsyncResult.get() receives every Go result.
func TestCelerySendsThousandTasksToGo(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	g := startGo(t, tb)

	const n = 1000
	var out struct {
		Sent int
		Bad  []any
		IDs  []string
	}
	tb.pysend(t, &out, "bulk", fmt.Sprint(n))
	if out.Sent != n || len(out.Bad) > 0 {
		t.Fatalf("Python sent %d and saw wrong results %v", out.Sent, out.Bad)
	}
	runs := g.runs(goAdd.Name())
	if len(runs) != n {
		t.Fatalf("go.add ran %d times, want %d", len(runs), n)
	}
	want := map[string]bool{}
	for _, id := range out.IDs {
		want[id] = true
	}
	byLabel := map[string]addArgs{}
	for _, r := range runs {
		if !want[r.ID] {
			t.Errorf("run of id %q, which Python did not send", r.ID)
		}
		delete(want, r.ID)
		a := r.Payload.(addArgs)
		byLabel[a.Label] = a
	}
	for i := range n {
		if a := byLabel[fmt.Sprintf("n%d", i)]; a.X != i || a.Y != 2*i {
			t.Errorf("call n%d reached Go as %+v, want x=%d y=%d", i, a, i, 2*i)
		}
	}
	if s := g.w.Stats(); s.Succeeded != n || s.Dead != 0 || s.Retried != 0 {
		t.Errorf("worker stats %+v, want %d succeeded and nothing else", s, n)
	}
	tb.noDeadLetters(t)
}

// recorded reads the py.* runs the Celery worker recorded.
func (tb *bed) recorded(t *testing.T) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(tb.record)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("record line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// warren enqueues 1,000 py.add tasks to a stock Celery worker: half
// awaiting their results with a typed Handle, half fire and forget. Celery
// runs each once with the Go struct's fields as kwargs, and every awaited
// result arrives; a Python exception reaches Go as a TaskError.
func TestGoSendsThousandTasksToCelery(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	startCelery(t, tb)
	p := tb.producer(t)
	ctx := ctxFor(t, 2*time.Minute)

	const n = 1000
	handles := make([]*result.Handle[sum], n)
	ids := make([]string, n)
	for i := range n {
		a := addArgs{X: i, Y: 2 * i, Label: fmt.Sprintf("n%d", i)}
		var err error
		if i%2 == 0 {
			handles[i], err = producer.EnqueueResult(ctx, p, pyAdd, a)
			if err == nil {
				ids[i] = handles[i].ID()
			}
		} else {
			ids[i], err = producer.Enqueue(ctx, p, pyAdd.Def, a)
		}
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	for i, h := range handles {
		if h == nil {
			continue
		}
		got, err := h.Get(ctx)
		if want := (sum{Sum: 3 * i, Label: fmt.Sprintf("n%d", i)}); err != nil || got != want {
			t.Fatalf("result of task %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	var recs []map[string]any
	brokertest.Eventually(t, time.Minute, func() bool { recs = tb.recorded(t); return len(recs) >= n }, "Celery ran fewer than %d tasks", n)
	seen := map[string]bool{}
	for _, r := range recs {
		id := r["id"].(string)
		if seen[id] {
			t.Errorf("Celery ran task %s twice", id)
		}
		seen[id] = true
		if r["root_id"] != id {
			t.Errorf("task %s has root_id %v, want itself", id, r["root_id"])
		}
	}
	for i, id := range ids {
		if !seen[id] {
			t.Errorf("task %d (%s) never ran in Celery", i, id)
		}
	}
	if len(recs) != n {
		t.Errorf("Celery ran %d tasks, want %d", len(recs), n)
	}

	h, err := producer.EnqueueResult(ctx, p, pyFail, "from go")
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Get(ctx)
	var te *result.TaskError
	if !errors.As(err, &te) || te.Kind != outcome.ReasonPermanent || te.Message != "ValueError: from go" {
		t.Errorf("py.fail's result: %v (%#v), want a permanent TaskError %q", err, te, "ValueError: from go")
	}
}

// Python sends go.now with a countdown, with a naive datetime as eta, and
// with an expiry that passes before its eta: warren runs the first two no
// earlier than their ETAs and dead-letters the third as expired, and
// Python's AsyncResult.get() raises TaskRevokedError for it, as for a task
// a Celery worker took after its expiry.
func TestCeleryETAAndExpiryReachGo(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	g := startGo(t, tb)

	var out struct {
		SentAt     float64 `json:"sent_at"`
		RanAt      float64 `json:"ran_at"`
		NaiveETA   float64 `json:"naive_eta"`
		NaiveRanAt float64 `json:"naive_ran_at"`
		Expired    struct{ Type, Message, State string }
		ExpiredID  string `json:"expired_id"`
	}
	tb.pysend(t, &out, "eta")
	const slack = 0.05 // the clocks are this machine's; Celery's eta has microseconds
	if out.RanAt < out.SentAt+2-slack {
		t.Errorf("the countdown=2 task ran %.3fs after it was sent", out.RanAt-out.SentAt)
	}
	if out.NaiveRanAt < out.NaiveETA-slack {
		t.Errorf("the task with a naive eta ran %.3fs before it", out.NaiveETA-out.NaiveRanAt)
	}
	if out.Expired.Type != "TaskRevokedError" || out.Expired.Message != "expired" || out.Expired.State != "REVOKED" {
		t.Errorf("the expired task's result in Python: %+v, want TaskRevokedError('expired') in state REVOKED, as Celery reports it", out.Expired)
	}
	for _, r := range g.runs(goNow.Name()) {
		if r.ID == out.ExpiredID {
			t.Errorf("the expired task ran")
		}
	}
	d, ok := tb.b.Get(routing.DeadQueue(tb.goQueue))
	if !ok || d.Headers[task.HeaderReason] != string(outcome.ReasonExpired) || d.Headers[task.HeaderID] != out.ExpiredID {
		t.Errorf("dead letter %v (found %v), want the expired task %s with reason expired", d.Headers, ok, out.ExpiredID)
	}
}

// warren enqueues py.when to a Celery worker due in 2 s, and another due
// in 3 s that expires in 1 s: Celery runs the first at its ETA and revokes
// the second, which Go's Handle reports as an expired TaskError.
func TestGoETAAndExpiryReachCelery(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	startCelery(t, tb)
	p := tb.producer(t)
	ctx := ctxFor(t, time.Minute)

	sent := time.Now()
	onTime, err := producer.EnqueueResult(ctx, p, pyWhen, "eta", producer.WithDelay(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	late, err := producer.EnqueueResult(ctx, p, pyWhen, "late", producer.WithDelay(3*time.Second), producer.WithExpiry(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ran, err := onTime.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at := time.UnixMicro(int64(ran * 1e6)); at.Before(sent.Add(2*time.Second - 50*time.Millisecond)) {
		t.Errorf("Celery ran the task %v after it was sent, before its ETA (2s)", at.Sub(sent))
	}
	_, err = late.Get(ctx)
	var te *result.TaskError
	if !errors.As(err, &te) || te.Kind != outcome.ReasonExpired {
		t.Errorf("the late task's result: %v, want an expired TaskError", err)
	}
	for _, r := range tb.recorded(t) {
		if r["label"] == "late" {
			t.Errorf("Celery ran the expired task: %v", r)
		}
	}
}

// Python sends a chain of three Go steps, a task with a callback and one
// with an errback: warren runs each step with the previous result
// prepended to its args, Python's get() on the chain receives the last
// step's result, the callback gets the result, the errback the failed
// task's id.
func TestCeleryWorkflowsRunInGo(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	g := startGo(t, tb)

	var out struct {
		Chain    int
		ChainIDs []string `json:"chain_ids"`
		Linked   int
		LinkedID string `json:"linked_id"`
		Failed   struct{ Type, Message, State string }
		FailedID string `json:"failed_id"`
	}
	tb.pysend(t, &out, "chain")
	if out.Chain != (2*3)*4-1 {
		t.Errorf("the chain's result in Python: %d, want 23", out.Chain)
	}
	muls, subs := g.runs(goMul.Name()), g.runs(goSub.Name())
	var chainSub call
	for _, s := range subs {
		if s.ID == out.ChainIDs[2] {
			chainSub = s
		}
	}
	if chainSub.ParentID != out.ChainIDs[1] || chainSub.RootID != out.ChainIDs[0] || chainSub.Payload != (subArgs{X: 24, Minus: 1}) {
		t.Errorf("the chain's last step ran as %+v, want parent %s, root %s, x=24 minus=1", chainSub, out.ChainIDs[1], out.ChainIDs[0])
	}
	if len(muls) != 3 {
		t.Errorf("go.mul ran %d times, want 3 (two chain steps, one linked)", len(muls))
	}
	if out.Linked != 25 {
		t.Errorf("the linked task's result: %d, want 25", out.Linked)
	}
	brokertest.Eventually(t, 20*time.Second, func() bool { return len(g.runs(goSub.Name())) == 2 && len(g.runs(goErrback.Name())) == 1 },
		"the callback or the errback did not run")
	for _, s := range g.runs(goSub.Name()) {
		if s.ParentID == out.LinkedID && s.Payload != (subArgs{X: 25, Minus: 5}) {
			t.Errorf("the callback ran with %+v, want x=25 (the result) minus=5", s.Payload)
		}
	}
	if eb := g.runs(goErrback.Name())[0]; eb.Payload != (errbackArgs{TaskID: out.FailedID, Note: "note"}) {
		t.Errorf("the errback ran with %+v, want the failed task's id %s and note", eb.Payload, out.FailedID)
	}
	if out.Failed.Type != result.CeleryTaskError || out.Failed.Message != "permanent: boom" {
		t.Errorf("the failed task's result in Python: %+v, want %s('permanent: boom')", out.Failed, result.CeleryTaskError)
	}
}

// A Go task that fails once is retried by warren, and Python's get()
// receives the second attempt's result; a task no Go handler serves is
// dead-lettered and Python's get() raises for it, though warren has no
// definition saying the caller is Celery's.
func TestCeleryCallerSeesGoRetryAndUnknownTask(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	g := startGo(t, tb)
	var out struct {
		Flaky   string
		FlakyID string `json:"flaky_id"`
		Unknown struct{ Type, Message string }
	}
	tb.pysend(t, &out, "retry")
	if out.Flaky != "again on the second attempt" {
		t.Errorf("go.flaky's result in Python: %q", out.Flaky)
	}
	if runs := g.runs(goFlaky.Name()); len(runs) != 2 || runs[0].ID != out.FlakyID || runs[1].ID != out.FlakyID {
		t.Errorf("go.flaky ran %+v, want twice as %s", runs, out.FlakyID)
	}
	if out.Unknown.Type != result.CeleryTaskError || !strings.HasPrefix(out.Unknown.Message, "unknown_task: ") {
		t.Errorf("go.nope's result in Python: %+v, want TaskError('unknown_task: ...')", out.Unknown)
	}
	d, ok := tb.b.Get(routing.DeadQueue(tb.goQueue))
	if !ok || d.Headers[task.HeaderReason] != string(outcome.ReasonUnknownTask) || d.Headers[task.HeaderTask] != "go.nope" {
		t.Errorf("dead letter %v (found %v), want go.nope as unknown_task", d.Headers, ok)
	}
}

// Celery's soft_time_limit ends the Go handler's context.
func TestCeleryTimeLimitEndsGoHandler(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	startGo(t, tb)
	var out struct{ Type, Message string }
	start := time.Now()
	tb.pysend(t, &out, "limit")
	if out.Type != result.CeleryTaskError || !strings.Contains(out.Message, "timed out after 500ms") {
		t.Errorf("go.slow's result in Python: %+v, want a TaskError saying it timed out after 500ms", out)
	}
	if took := time.Since(start); took > 9*time.Second {
		t.Errorf("the 10 s task ended after %v: its time limit did not cut it", took)
	}
}

// Celery messages warren cannot run are dead-lettered unrun, each with a
// reason and an error that says what to change: a body that is not
// [args, kwargs, embed], protocol 1, pickle, a chord, a group as a chain
// step.
func TestMalformedCeleryMessagesAreDeadLettered(t *testing.T) {
	t.Parallel()
	tb := newBed(t)
	g := startGo(t, tb)
	var ids map[string]string
	tb.pysend(t, &ids, "malformed")

	want := map[string]string{
		"not_a_list": "not a protocol 2 list",
		"v1":         "not supported: message protocol v1; set task_protocol = 2",
		"pickle":     "not supported: the pickle serializer, only JSON; set task_serializer = 'json'",
		"gzip":       "not supported: a body compressed with application/x-gzip; leave task_compression unset",
		"chord":      "a chord is not supported",
		"chord_step": "that is part of a chord is not supported",
		"group_step": "is a group",
	}
	dead := map[string]string{}
	brokertest.Eventually(t, 30*time.Second, func() bool {
		for {
			d, ok := tb.b.Get(routing.DeadQueue(tb.goQueue))
			if !ok {
				break
			}
			id, _ := d.Headers[task.HeaderID].(string)
			if id == "" { // protocol 1 keeps it in the body
				var v1 struct{ ID string }
				_ = json.Unmarshal(d.Body, &v1)
				id = v1.ID
			}
			if d.Headers[task.HeaderReason] != string(outcome.ReasonUndecodable) {
				t.Errorf("dead letter %s has reason %v, want undecodable", id, d.Headers[task.HeaderReason])
			}
			dead[id], _ = d.Headers[task.HeaderError].(string)
		}
		return len(dead) >= len(want)
	}, "dead letters: %v", dead)
	for name, text := range want {
		got, ok := dead[ids[name]]
		if !ok {
			t.Errorf("%s (%s) was not dead-lettered", name, ids[name])
		} else if !strings.Contains(got, text) {
			t.Errorf("%s's dead letter says %q, want it to say %q", name, got, text)
		}
	}
	if runs := g.runs(goAdd.Name()); len(runs) > 0 {
		t.Errorf("go.add ran %d times on malformed messages: %+v", len(runs), runs)
	}
}
