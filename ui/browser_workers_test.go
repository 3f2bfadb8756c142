package ui_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/ui"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// The test binary doubles as a worker process that a test can kill: with
// childEnv set, TestMain runs childWorker instead of the tests.
const childEnv = "WARREN_UI_TEST_CHILD_WORKER"

// childPresence is the child worker's heartbeat interval: short, so that
// a killed child leaves the workers page within about two seconds
// (three missed heartbeats and one).
const childPresence = 300 * time.Millisecond

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childWorker())
	}
	os.Exit(m.Run())
}

// childWorker consumes WARREN_TEST_QUEUE at WARREN_TEST_URL. It says
// "WORKER <id>" on stdout once it is built, and "STARTED <task id>" as
// each slow_charge starts, which then runs until the worker stops or is
// killed.
func childWorker() int {
	reg := task.NewRegistry()
	reg.MustRegister(slowCharge.Handler(func(ctx context.Context, _ Order) error {
		info, _ := task.FromContext(ctx)
		fmt.Println("STARTED " + info.ID)
		<-ctx.Done()
		return ctx.Err()
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: os.Getenv("WARREN_TEST_URL")},
		Queues: []string{os.Getenv("WARREN_TEST_QUEUE")}, Registry: reg, Concurrency: 2, PresenceInterval: childPresence})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Println("WORKER " + w.ID())
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a worker process of the test's own.
type child struct {
	cmd   *exec.Cmd
	id    chan string // its worker id
	tasks chan string // ids of the tasks it started
}

func startChild(t *testing.T, url, queue string) *child {
	t.Helper()
	c := &child{id: make(chan string, 1), tasks: make(chan string, 4)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), childEnv+"=1", "WARREN_TEST_URL="+url, "WARREN_TEST_QUEUE="+queue)
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "WORKER "); ok {
				c.id <- id
			} else if id, ok := strings.CutPrefix(sc.Text(), "STARTED "); ok {
				c.tasks <- id
			}
		}
	}()
	return c
}

// receive returns the next value from ch, failing the test after timeout.
func receive(t *testing.T, ch <-chan string, timeout time.Duration, what string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(timeout):
		t.Fatalf("no %s within %v", what, timeout)
		return ""
	}
}

// present says whether the page in the browser holds an element sel
// matches, now.
func present(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", sel)))
	if err != nil {
		t.Fatalf("query %s: %v", sel, err)
	}
	return ok
}

// waitPage polls the page in the browser, as its own refresh changes it,
// until present(sel) is want, for at most timeout.
func waitPage(t *testing.T, ctx context.Context, sel string, want bool, timeout time.Duration, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for present(t, ctx, sel) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s (after %v)", msg, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A worker process shows on the workers page with the task it runs;
// killed with SIGKILL, so that it says no goodbye, it disappears from the
// page, refreshing itself, within a few of its heartbeat intervals.
func TestBrowserKilledWorkerDisappears(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("killed")
	c := conn.Config{URL: b.URL}
	p := warrentest.NewProducer(t, producer.Config{Conn: c, Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}})
	insp, err := inspect.New(inspect.Config{Conn: c, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = insp.Close() })
	dl, err := deadletter.New(deadletter.Config{Conn: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	h, err := ui.New(ui.Config{Inspector: insp, DeadLetters: dl, Queues: []string{q}, Refresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	ch := startChild(t, b.URL, q)
	wid := receive(t, ch.id, 30*time.Second, "worker id from the child")
	if !strings.Contains(wid, fmt.Sprintf("/%d/", ch.cmd.Process.Pid)) {
		t.Errorf("the child's worker id %q does not hold its pid %d", wid, ch.cmd.Process.Pid)
	}
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, slowCharge, Order{Note: "slow"}, producer.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, ch.tasks, 30*time.Second, "task started by the child"); got != id {
		t.Fatalf("the child started %s, want %s", got, id)
	}

	ctx := browser(t, 90*time.Second)
	wsel := fmt.Sprintf(`tr[data-worker=%q]`, wid)
	do(t, ctx, "open the workers page", chromedp.Navigate(srv.URL+"/workers"), chromedp.WaitVisible(chromedp.CSS("h1")))
	waitPage(t, ctx, wsel+` [data-task="`+id+`"]`, true, 10*time.Second, "the workers page never showed the child running its task")
	if row := text(t, ctx, wsel); !strings.Contains(row, slowCharge.Name()) || !strings.Contains(row, "attempt 1") ||
		!strings.Contains(row, fmt.Sprintf("pid %d", ch.cmd.Process.Pid)) {
		t.Errorf("the child's row says %q", row)
	}
	shot(t, ctx, "workers")

	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = ch.cmd.Wait()
	killed := time.Now()
	waitPage(t, ctx, wsel, false, 10*time.Second, "the killed worker is still on the workers page")
	t.Logf("the killed worker left the page %v after SIGKILL", time.Since(killed).Round(100*time.Millisecond))
}
