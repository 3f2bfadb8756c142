package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/ui"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// slowCharge runs until the test lets it finish.
var slowCharge = task.Define[Order]("slow_charge")

// held is a real worker on the fixture's queue whose slow_charge tasks
// run until release is called.
type held struct {
	w       *worker.Worker
	stop    func()
	started chan string // ids of the tasks that started
	release func()
}

func startHeld(t *testing.T, f *fixture) *held {
	t.Helper()
	h := &held{started: make(chan string, 4)}
	gate := make(chan struct{})
	var once sync.Once
	h.release = func() { once.Do(func() { close(gate) }) }
	reg := task.NewRegistry()
	reg.MustRegister(slowCharge.Handler(func(ctx context.Context, _ Order) error {
		info, _ := task.FromContext(ctx)
		h.started <- info.ID
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: f.b.URL}, Queues: []string{f.queue}, Registry: reg,
		Concurrency: 2, Prefetch: 5, PresenceInterval: 200 * time.Millisecond,
		Limits: []worker.Limit{{Queue: f.queue, PerWorker: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	h.stop = warrentest.Run(t, w)
	// Cleanups run last first: the handler is released before the
	// worker is stopped, which waits for it.
	t.Cleanup(h.release)
	return h
}

// row returns the table row of the page whose attribute attr is val, ""
// if there is none.
func row(page, attr, val string) string {
	open := fmt.Sprintf(`<tr %s="%s">`, attr, val)
	i := strings.Index(page, open)
	if i < 0 {
		return ""
	}
	rest := page[i:]
	if j := strings.Index(rest, "</tr>"); j >= 0 {
		return rest[:j]
	}
	return rest
}

// The workers page lists a live worker with what it is and the task it
// runs, linked to the task lookup; the overview counts it, in all and on
// its queue; the task lookup finds the task running on it; once the
// worker stops, the page no longer lists it.
func TestWorkersPage(t *testing.T) {
	f := newFixture(t, ui.Config{})
	h := startHeld(t, f)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: f.b.URL},
		Routes: routing.NewTable().Add(slowCharge.Name(), routing.ToQueue(f.queue))})
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, slowCharge, Order{Note: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-h.started:
		if got != id {
			t.Fatalf("the worker started %s, want %s", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task never started")
	}

	var tr string
	warrentest.Eventually(t, 5*time.Second, func() bool {
		code, body := f.get(t, "/workers")
		if code != http.StatusOK {
			t.Fatalf("/workers: status %d: %s", code, body)
		}
		tr = row(body, "data-worker", h.w.ID())
		return strings.Contains(tr, `data-task="`+id+`"`)
	}, "the workers page never showed worker %s running %s; its row: %s", h.w.ID(), id, tr)
	host, _ := os.Hostname()
	for _, want := range []string{
		host + ", pid " + strconv.Itoa(os.Getpid()),
		`href="/queue?q=` + url.QueryEscape(f.queue) + `"`,
		`href="/task?id=` + id + `"`,
		slowCharge.Name() + " on ",
		"attempt 1, for ",
		`<td class="state">running</td>`,
		`<td class="n slots" title="prefetch 5">1/2</td>`,
		"1 received, 0 succeeded",
		f.queue + ": at most 2 at once here",
	} {
		if !strings.Contains(tr, want) {
			t.Errorf("the worker's row has no %q:\n%s", want, tr)
		}
	}

	_, body := f.get(t, "/")
	if q := row(body, "data-queue", f.queue); !strings.Contains(q, `<td class="n workers">1</td>`) {
		t.Errorf("the overview does not count 1 worker on %s:\n%s", f.queue, q)
	}
	m := regexp.MustCompile(`id="worker-count">(\d+)<`).FindStringSubmatch(body)
	if m == nil || m[1] == "0" {
		t.Errorf("the overview counts no worker alive: %v", m)
	}

	_, body = f.get(t, "/task?id="+id)
	if !strings.Contains(body, `data-where="running"`) || !strings.Contains(body, "Running on "+h.w.ID()) {
		t.Errorf("the task lookup does not find %s running on %s:\n%s", id, h.w.ID(), body)
	}

	h.release()
	h.stop()
	warrentest.Eventually(t, 5*time.Second, func() bool {
		_, body := f.get(t, "/workers")
		return !strings.Contains(body, h.w.ID())
	}, "worker %s still listed after it stopped", h.w.ID())
}

// Without the management API and without queues named to it, the
// overview shows the queues live workers consume.
func TestOverviewShowsQueuesOfLiveWorkers(t *testing.T) {
	f := newFixture(t, ui.Config{})
	h := startHeld(t, f)
	bare, err := ui.New(ui.Config{Inspector: f.insp, DeadLetters: f.dl})
	if err != nil {
		t.Fatal(err)
	}
	f.h = bare
	var body string
	warrentest.Eventually(t, 5*time.Second, func() bool {
		_, body = f.get(t, "/")
		return strings.Contains(row(body, "data-queue", f.queue), `<td class="n workers">1</td>`)
	}, "the overview does not show %s, which worker %s consumes:\n%s", f.queue, h.w.ID(), body)
}
