package ui_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/ui"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// EnvScreenshots names a directory for the browser tests' screenshots;
// unset, they go to the test's temporary directory.
const EnvScreenshots = "WARREN_UI_SCREENSHOTS"

// chromium returns the browser's path: Debian's chromium, which the test
// script installs. Without it the test skips, or fails when CI is set.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "no chromium to run the browser tests (apt-get install chromium, or scripts/ensure-rabbitmq.sh --with-chromium)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts a headless Chromium of the test's own, kept off the
// network but for the loopback pages it is sent to, and returns a tab's
// context, bounded by timeout.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	path := chromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// shot saves a full-page screenshot as name.png.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv(EnvScreenshots)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// text returns the text of the first element sel matches, waiting for it.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Order is the tasks' payload in the browser tests.
type Order struct {
	Note string `json:"note"`
}

var charge = task.Define[Order]("charge")

// live is a UI served over HTTP on a real worker and broker.
type live struct {
	b      *brokertest.Broker
	work   string // the queue the worker consumes
	idle   string // a queue no one consumes
	url    string // the UI's root
	prod   *producer.Producer
	broken atomic.Bool // while set, charge fails permanently
	ran    chan string // ids charge succeeded on
	w      *worker.Worker
}

func newLive(t *testing.T) *live {
	t.Helper()
	l := &live{b: brokertest.New(t), ran: make(chan string, 16)}
	l.work, l.idle = l.b.Queue("work"), l.b.Queue("idle")
	topo := routing.Topology{Queues: []routing.Queue{{Name: l.work}, {Name: l.idle}}}
	c := conn.Config{URL: l.b.URL}
	l.prod = warrentest.NewProducer(t, producer.Config{Conn: c, Topology: topo})
	l.w = warrentest.StartWorker(t, worker.Config{Conn: c, Queues: []string{l.work}, Topology: topo},
		charge.Handler(func(ctx context.Context, o Order) error {
			if l.broken.Load() {
				return retry.Permanent(errors.New("card declined"))
			}
			info, _ := task.FromContext(ctx)
			l.ran <- info.ID
			return nil
		}))
	l.b.DeclareQueue(l.idle + ".dead") // the worker declares only its own queues' .dead

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
	h, err := ui.New(ui.Config{Inspector: insp, DeadLetters: dl, Queues: []string{l.work, l.idle}, Broker: l.b.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

func (l *live) enqueue(t *testing.T, q string, o Order) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := producer.Enqueue(ctx, l.prod, charge, o, producer.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (l *live) page(path string, q ...string) string {
	if len(q) > 0 {
		return l.url + path + "?q=" + url.QueryEscape(q[0])
	}
	return l.url + path
}

// The overview lists the test's queues with their ready counts: 3 waiting
// in the queue no worker consumes, none in the one the worker drains.
func TestBrowserOverviewCounts(t *testing.T) {
	l := newLive(t)
	for range 3 {
		l.enqueue(t, l.idle, Order{Note: "waiting"})
	}
	ctx := browser(t, 60*time.Second)
	ready := func(q string) string { return `tr[data-queue="` + q + `"] td.ready` }
	// The management API, where it is on, counts a few seconds late:
	// reload until the page says what the broker holds.
	deadline := time.Now().Add(20 * time.Second)
	for {
		do(t, ctx, "open the overview", chromedp.Navigate(l.page("/")), chromedp.WaitVisible(chromedp.CSS(ready(l.idle))))
		idle, work := text(t, ctx, ready(l.idle)), text(t, ctx, ready(l.work))
		if idle == "3" && work == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("overview shows %s ready in %s and %s in %s; want 3 and 0", idle, l.idle, work, l.work)
		}
		time.Sleep(200 * time.Millisecond)
	}
	consumers := text(t, ctx, `tr[data-queue="`+l.work+`"] td:nth-child(4)`)
	if consumers == "0" {
		t.Errorf("overview shows no consumer on %s, which a worker consumes", l.work)
	}
	shot(t, ctx, "overview")
}

// A task whose handler fails permanently shows on the dead letters page,
// reached from the overview; replaying it there, after the confirmation,
// puts it back in its work queue, where the worker runs it again.
func TestBrowserReplayDeadLetter(t *testing.T) {
	l := newLive(t)
	l.broken.Store(true)
	id := l.enqueue(t, l.work, Order{Note: "poison"})
	brokertest.Eventually(t, 15*time.Second, func() bool { return l.b.Ready(l.work+".dead") == 1 }, "the poison task never reached %s.dead", l.work)

	ctx := browser(t, 60*time.Second)
	do(t, ctx, "follow the overview's dead-letter count",
		chromedp.Navigate(l.page("/")),
		chromedp.Click(chromedp.CSS(`tr[data-queue="`+l.work+`"] td.dead a`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+id+`"]`)))
	row := text(t, ctx, `tr[data-id="`+id+`"]`)
	for _, want := range []string{"charge", "permanent", "card declined", "poison"} {
		if !strings.Contains(row, want) {
			t.Errorf("the dead letter's row says %q; want %q in it", row, want)
		}
	}
	shot(t, ctx, "dead-letters")

	l.broken.Store(false)
	do(t, ctx, "replay all", chromedp.Click(chromedp.CSS(`#replay-all`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)))
	if q := text(t, ctx, "h1"); !strings.Contains(q, "Replay all 1 dead letters of "+l.work) {
		t.Errorf("confirmation asks %q", q)
	}
	if n := l.b.Ready(l.work + ".dead"); n != 1 {
		t.Fatalf("the confirmation page already moved the letter: %d left", n)
	}
	shot(t, ctx, "confirm")
	do(t, ctx, "confirm", chromedp.Click(chromedp.CSS(`#confirm`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if f := text(t, ctx, ".flash"); !strings.Contains(f, "Replayed 1 dead letter:") {
		t.Errorf("after the replay the page says %q", f)
	}
	select {
	case got := <-l.ran:
		if got != id {
			t.Errorf("the worker ran %s, want the replayed %s", got, id)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the replayed task never ran again")
	}
	if n := l.b.Ready(l.work + ".dead"); n != 0 {
		t.Errorf("%d dead letters left after the replay", n)
	}
}

// A payload carrying a script is shown as text, and the script does not
// run.
func TestBrowserScriptPayloadIsText(t *testing.T) {
	l := newLive(t)
	l.broken.Store(true)
	const evil = `<script>document.title='pwned';window.pwned=1</script><img src=x onerror=window.pwned=2>`
	id := l.enqueue(t, l.work, Order{Note: evil})
	brokertest.Eventually(t, 15*time.Second, func() bool { return l.b.Ready(l.work+".dead") == 1 }, "the task never reached %s.dead", l.work)

	ctx := browser(t, 60*time.Second)
	sel := `tr[data-id="` + id + `"] details.payload`
	do(t, ctx, "open the dead letters and the payload",
		chromedp.Navigate(l.page("/dead", l.work)),
		chromedp.Click(chromedp.CSS(sel+" summary")),
		chromedp.WaitVisible(chromedp.CSS(sel+" pre")))
	if got := text(t, ctx, sel+" pre"); !strings.Contains(got, evil) {
		t.Errorf("the payload shows as %q; want the script as text in it", got)
	}
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.pwned) + " " + document.title`))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^undefined Dead letters of `).MatchString(pwned) {
		t.Errorf("the payload's script ran: window.pwned and title are %q", pwned)
	}
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img").length`))
	if err != nil || n != 0 {
		t.Errorf("the page holds %d script or img elements in main (err %v); want none", n, err)
	}
	shot(t, ctx, "script-payload")
}

// The overview counts the dead letters of the last hour as failures and
// the live worker on its queue, and its screenshot is the README's
// (docs/ui.png, from WARREN_UI_SCREENSHOTS).
func TestBrowserFailuresLastHour(t *testing.T) {
	l := newLive(t)
	l.broken.Store(true)
	for _, note := range []string{`{"file":"/tmp/lolcat1.avi"}`, `{"file":"/tmp/lolcat2.avi"}`} {
		l.enqueue(t, l.work, Order{Note: note})
	}
	for range 4 {
		l.enqueue(t, l.idle, Order{Note: "waiting"})
	}
	brokertest.Eventually(t, 15*time.Second, func() bool { return l.b.Ready(l.work+".dead") == 2 }, "the poison tasks never reached %s.dead", l.work)
	ctx := browser(t, 60*time.Second)
	// Reloaded until right: the management API, where it is on, counts a
	// few seconds late.
	deadline := time.Now().Add(20 * time.Second)
	for {
		do(t, ctx, "open the overview", chromedp.Navigate(l.page("/")), chromedp.WaitVisible(chromedp.CSS("#failures")))
		failures, dead := text(t, ctx, "#failures"), text(t, ctx, `tr[data-queue="`+l.work+`"] td.dead`)
		workers := text(t, ctx, `tr[data-queue="`+l.work+`"] td.workers`)
		if failures == "2" && dead == "2" && workers == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview counts %q failures in the last hour, %q dead letters of %s and %q workers on it; want 2, 2 and 1", failures, dead, l.work, workers)
		}
		time.Sleep(200 * time.Millisecond)
	}
	shot(t, ctx, "ui")
}
