package dashboards_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// adapterFile holds the Kubernetes autoscaling adapter's PromQL.
const adapterFile = "../deploy/kubernetes/overlays/hpa/prometheus-adapter-values.yaml"

// timeScale compresses the rules' time for the end-to-end test: every
// minute in alerts.yaml becomes a second (an hour a minute), so that a
// "for: 15m" fires in 15 s. Thresholds stay as shipped.
const timeScale = 60

// tool returns the path of one of Prometheus's programs. Without it the
// test is skipped, or fails in CI, where scripts/test.sh installs Debian's
// prometheus package first: there a check that cannot run must not pass.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not on PATH (Debian: apt-get install --no-install-recommends prometheus; scripts/test.sh installs it)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var (
	ruleDuration = regexp.MustCompile(`(\[|for: )(\d+)([smh])\b`)
	// anyDuration matches every duration literal PromQL or a rules file
	// may hold, so that one compressRules does not handle (another unit,
	// a compound such as 1h30m, a subquery step, an offset) is noticed.
	anyDuration = regexp.MustCompile(`\d+(ms|[smhdwy])`)
)

// minRange is the shortest range compressRules may leave: rate and
// increase need a few samples at the test's 1 s scrapes.
const minRange = 3 * time.Second

// compressRules rewrites every duration of a rules file timeScale times
// shorter: range selectors and "for" clauses. It fails the test on a
// duration it does not handle and on a range it would shrink below
// minRange.
func compressRules(t *testing.T, rules string) string {
	t.Helper()
	n := 0
	out := ruleDuration.ReplaceAllStringFunc(rules, func(m string) string {
		s := ruleDuration.FindStringSubmatch(m)
		v, _ := strconv.Atoi(s[2])
		d := time.Duration(v) * map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[s[3]]
		c := d / timeScale
		if s[1] == "[" && c < minRange {
			t.Errorf("%s: range %s would be %v compressed, under %v: too few samples to fire", alertsFile, m, c, minRange)
		}
		n++
		return fmt.Sprintf("%s%ds", s[1], int(c.Seconds()))
	})
	if n == 0 {
		t.Fatalf("%s: no durations found to compress", alertsFile)
	}
	if all := len(anyDuration.FindAllString(rules, -1)); all != n {
		t.Fatalf("%s holds %d duration literals and compressRules handled %d: teach it the others (%q)", alertsFile, all, n, anyDuration.FindAllString(rules, -1))
	}
	return out
}

func TestCompressRules(t *testing.T) {
	got := compressRules(t, "expr: increase(x[10m]) > 5 and last_over_time(y[1h])\nfor: 15m\nfor: 0m\n")
	want := "expr: increase(x[10s]) > 5 and last_over_time(y[60s])\nfor: 15s\nfor: 0s\n"
	if got != want {
		t.Errorf("compressRules:\n got %q\nwant %q", got, want)
	}
}

// ---- a Prometheus server ----

type promServer struct {
	base string // http://127.0.0.1:port
}

// startPrometheus runs Debian's Prometheus on a loopback port until t ends,
// scraping each job's targets every second and evaluating rulesFile every
// second. Targets carry namespace="warren-test", as a Kubernetes
// Prometheus's relabelling would give them, for the adapter's queries.
func startPrometheus(t *testing.T, rulesFile string, jobs map[string][]string) *promServer {
	t.Helper()
	bin := tool(t, "prometheus")
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - %q\nscrape_configs:\n", rulesFile)
	for job, targets := range jobs {
		quoted := make([]string, len(targets))
		for i, a := range targets {
			quoted[i] = strconv.Quote(a)
		}
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n      - targets: [%s]\n        labels: {namespace: warren-test}\n", job, strings.Join(quoted, ", "))
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// The port is picked free and then handed over, so another process
	// may take it first: Prometheus then exits, and another port is tried.
	var p *promServer
	for attempt := 1; p == nil; attempt++ {
		var logs string
		p, logs = runPrometheus(t, bin, cfgFile, filepath.Join(dir, fmt.Sprintf("data%d", attempt)))
		if p == nil && attempt == 3 {
			t.Fatalf("prometheus did not start in three attempts; the last one's log:\n%s", logs)
		}
	}
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct{ Name string } `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/rules", nil, &rules)
	loaded := 0
	for _, g := range rules.Data.Groups {
		loaded += len(g.Rules)
	}
	if loaded < len(wantAlerts) {
		t.Fatalf("prometheus loaded %d rules from %s, want at least %d", loaded, rulesFile, len(wantAlerts))
	}
	return p
}

// runPrometheus starts Prometheus on a free loopback port and waits for it
// to be ready; it returns nil and the log if the process exits first. The
// process is killed when t ends (and with the test binary: see
// killWithParent).
func runPrometheus(t *testing.T, bin, cfgFile, data string) (*promServer, string) {
	t.Helper()
	addr := testenv.FreeAddr(t)
	logs := &testenv.Buffer{}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+data,
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	p := &promServer{base: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			return nil, fmt.Sprintf("exited: %v\n%s", waitErr, logs.String())
		default:
		}
		if resp, err := http.Get(p.base + "/-/ready"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, ""
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within a minute\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get calls Prometheus's HTTP API and decodes its answer into out.
func (p *promServer) get(t *testing.T, path string, q url.Values, out any) {
	t.Helper()
	if err := p.getErr(path, q, out); err != nil {
		t.Fatal(err)
	}
}

func (p *promServer) getErr(path string, q url.Values, out any) error {
	u := p.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// query runs an instant query and returns how many series it gave.
func (p *promServer) query(q string) (int, error) {
	var r struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.getErr("/api/v1/query", url.Values{"query": {q}}, &r); err != nil {
		return 0, err
	}
	return len(r.Data.Result), nil
}

// alertState returns the state ("pending", "firing", or "" when not
// active) of the alert named name whose label label is value.
func (p *promServer) alertState(name, label, value string) (string, error) {
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := p.getErr("/api/v1/alerts", nil, &r); err != nil {
		return "", err
	}
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == name && a.Labels[label] == value {
			return a.State, nil
		}
	}
	return "", nil
}

// awaitFiring follows one alert from its cause, which began at since: it
// returns once the alert went pending (unless its rule has no "for", when
// it fires at once) and then firing, with the time each took. It calls no
// t.Fatal, so that it may run on a goroutine of its own.
func (p *promServer) awaitFiring(since time.Time, name, label, value string, pending bool) (toPending, toFiring time.Duration, err error) {
	for {
		state, err := p.alertState(name, label, value)
		if err != nil {
			return toPending, 0, err
		}
		switch state {
		case "pending":
			if toPending == 0 {
				toPending = time.Since(since)
			}
		case "firing":
			toFiring = time.Since(since)
			if pending && toPending == 0 {
				return 0, toFiring, fmt.Errorf("%s{%s=%q} fired without being seen pending (its rule has a for clause)", name, label, value)
			}
			return toPending, toFiring, nil
		}
		if time.Since(since) > alertTimeout {
			return toPending, 0, fmt.Errorf("%s{%s=%q} did not fire within %v of its cause (pending after %v)", name, label, value, alertTimeout, toPending)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// awaitResolved waits for the alert to be no longer active, and returns
// how long that took from since, when its cause went.
func (p *promServer) awaitResolved(t *testing.T, since time.Time, name, label, value string) time.Duration {
	t.Helper()
	for {
		state, err := p.alertState(name, label, value)
		if err != nil {
			t.Fatal(err)
		}
		if state == "" {
			return time.Since(since)
		}
		if time.Since(since) > alertTimeout {
			t.Fatalf("%s{%s=%q} still active %v after its cause went", name, label, value, alertTimeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// alertTimeout bounds each step of an alert's life: the slowest rule
// (WarrenBacklogGrowing) needs some 35 s compressed.
const alertTimeout = 2 * time.Minute

// ---- processes under watch ----

// metricsServer serves a registry on a loopback port, as cmd/worker's
// -metrics-addr does. down makes its scrapes fail, as they would once the
// process is gone (Prometheus then marks its series stale); serve brings
// it back with another registry, as a restarted process on the same
// address. The listener stays open throughout, so that the port cannot be
// taken meanwhile.
type metricsServer struct {
	addr string
	mu   sync.Mutex
	reg  *prometheus.Registry // nil: down
}

func serveMetrics(t *testing.T, reg *prometheus.Registry) *metricsServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &metricsServer{addr: l.Addr().String(), reg: reg}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		reg := s.reg
		s.mu.Unlock()
		if reg == nil {
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *metricsServer) serve(reg *prometheus.Registry) {
	s.mu.Lock()
	s.reg = reg
	s.mu.Unlock()
}

func (s *metricsServer) down() { s.serve(nil) }

// watched is a worker with its own registry served on its own port.
type watched struct {
	w       *worker.Worker
	reg     *prometheus.Registry
	metrics *metricsServer
	stop    func()
}

// startWatched starts a worker of cfg serving handlers, its metrics on m
// (nil: on a new metricsServer).
func startWatched(t *testing.T, m *metricsServer, cfg worker.Config, handlers ...task.Handler) *watched {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Conn.Metrics = reg
	cfg.QueueDepthInterval = 500 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	r := task.NewRegistry()
	r.MustRegister(handlers...)
	cfg.Registry = r
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		m = serveMetrics(t, reg)
	} else {
		m.serve(reg)
	}
	return &watched{w: w, reg: reg, metrics: m, stop: warrentest.Run(t, w)}
}

// kill stops the worker and takes its metrics down with it.
func (w *watched) kill() {
	w.stop()
	w.metrics.down()
}

// every calls f every period until the returned stop is called.
func every(period time.Duration, f func(i int)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 0; ; i++ {
			f(i)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// TestAlertsFireInPrometheus runs a real Prometheus over live workers and
// a producer with the shipped rules (time compressed, see timeScale),
// causes what each alert is about, and follows each alert through
// Prometheus's API from pending to firing to resolved once the cause is
// gone. While the workers are busy it also runs every dashboard panel's
// query and the autoscaling adapter's, which must return data.
func TestAlertsFireInPrometheus(t *testing.T) {
	t.Parallel()
	tool(t, "prometheus")
	b := brokertest.New(t)
	amqpURL := b.URL

	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rulesFile, []byte(compressRules(t, string(raw))), 0o644); err != nil {
		t.Fatal(err)
	}

	// One queue per alert, so that the causes (subtests run two or more
	// at a time, -parallel) do not touch each other's series.
	qFail, qBacklog, qGone, qStorm := b.Queue("fail"), b.Queue("backlog"), b.Queue("gone"), b.Queue("storm")
	okTask := task.Define[pay]("prom_ok")
	flaky := task.Define[pay]("prom_flaky", task.WithBackoff(time.Second, time.Second))
	poison := task.Define[pay]("prom_poison")
	slowTask := task.Define[pay]("prom_slow")
	stuck := task.Define[pay]("prom_stuck")

	// The busy worker: successes, a retry, dead letters and expiries, and
	// a periodic task every second, which it fires as the only candidate.
	tick := scheduled(t, b, "prom-tick")
	tick.Queue = qFail
	busy := startWatched(t, nil, worker.Config{Conn: conn.Config{URL: amqpURL}, Queues: []string{qFail}, Concurrency: 4,
		Schedules: []*schedule.Schedule{tick}, SchedulerGroup: schedulerGroup(b, "group-busy")},
		task.Define[pay]("dash_tick").Handler(func(context.Context, pay) error { return nil }),
		okTask.Handler(func(context.Context, pay) error { return nil }),
		flaky.Handler(func(ctx context.Context, _ pay) error {
			if m, _ := task.FromContext(ctx); m.Retries == 0 {
				return errors.New("first run fails")
			}
			return nil
		}),
		poison.Handler(func(context.Context, pay) error { return retry.Permanent(errors.New("poison")) }),
	)
	// The slow worker: 10 tasks/s at most, one at a time, prefetch 1 so
	// that the backlog stays ready in the queue, where the depth shows it.
	var slow atomic.Bool
	slow.Store(true)
	backlog := startWatched(t, nil, worker.Config{Conn: conn.Config{URL: amqpURL}, Queues: []string{qBacklog}, Concurrency: 1, Prefetch: 1},
		slowTask.Handler(func(ctx context.Context, _ pay) error {
			if slow.Load() {
				time.Sleep(100 * time.Millisecond)
			}
			return nil
		}))
	// The worker that will stop: its one handler hangs, so that messages
	// wait ready behind it.
	stuckHandler := stuck.Handler(func(ctx context.Context, _ pay) error {
		<-ctx.Done()
		return ctx.Err()
	})
	gone := startWatched(t, nil, worker.Config{Conn: conn.Config{URL: amqpURL}, Queues: []string{qGone}, Concurrency: 1, Prefetch: 1}, stuckHandler)
	// The flapping worker: its connection goes through a proxy the test
	// cuts.
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	storm := startWatched(t, nil, worker.Config{Conn: conn.Config{URL: brokertest.WithHost(amqpURL, px.Addr())}, Queues: []string{qStorm}},
		okTask.Handler(func(context.Context, pay) error { return nil }))

	// The lonely worker: the only candidate of its scheduler group, through
	// a proxy the test shuts.
	pxLone, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pxLone.Close() })
	lonelyTick, lonelyGroup := scheduled(t, b, "prom-lone"), schedulerGroup(b, "group-lone")
	lonelyTick.Queue = b.Queue("lone")
	lonely := startWatched(t, nil, worker.Config{Conn: conn.Config{URL: brokertest.WithHost(amqpURL, pxLone.Addr())}, Queues: []string{lonelyTick.Queue},
		Schedules: []*schedule.Schedule{lonelyTick}, SchedulerGroup: lonelyGroup},
		task.Define[pay]("dash_tick").Handler(func(context.Context, pay) error { return nil }))

	preg := prometheus.NewRegistry()
	pm := serveMetrics(t, preg)
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: amqpURL, Metrics: preg}, Routes: routing.NewTable().SetDefault(routing.ToQueue(qFail))})
	ctx := warrentest.Context(t, 15*time.Minute)

	prom := startPrometheus(t, rulesFile, map[string][]string{
		"worker":   {busy.metrics.addr, backlog.metrics.addr, gone.metrics.addr, storm.metrics.addr, lonely.metrics.addr},
		"producer": {pm.addr},
	})
	t.Logf("rules as shipped, time compressed %dx: a minute of alerts.yaml is a second here", timeScale)

	// A publish error, once: a queue that does not exist.
	if _, err := p.Enqueue(ctx, okTask.New(pay{0}), producer.WithQueue(b.Queue("nowhere"))); !errors.Is(err, producer.ErrUnroutable) {
		t.Fatalf("enqueue to a missing queue: %v, want ErrUnroutable", err)
	}
	enqueue := func(tk task.Task, opts ...producer.Option) {
		if _, err := p.Enqueue(ctx, tk, opts...); err != nil && ctx.Err() == nil {
			t.Errorf("enqueue %s: %v", tk.Name, err)
		}
	}

	t.Run("dead letters: WarrenTaskFailureRatioHigh, WarrenDeadLettersGrowing; every panel has data", func(t *testing.T) {
		t.Parallel()
		// 10 tasks/s: successes, poison (5/s), a flaky one and an
		// expired one now and then.
		traffic := every(100*time.Millisecond, func(i int) {
			enqueue(okTask.New(pay{i}))
			if i%2 == 0 {
				enqueue(poison.New(pay{i}))
			}
			if i%10 == 0 {
				enqueue(flaky.New(pay{i}))
			}
			if i%10 == 5 {
				enqueue(okTask.New(pay{i}), producer.WithDeadline(time.Now().Add(-time.Minute)))
			}
		})
		defer traffic()
		dead := routing.DeadQueue(qFail)
		firing(t, prom, time.Now(), "WarrenTaskFailureRatioHigh", "task", poison.Name(), "WarrenDeadLettersGrowing", "queue", dead)

		// The workers are busy now: every panel and the adapter must
		// show something.
		checkQueries(t, prom, qFail)
		// And the producer's own series, with the dashboard's labels.
		for _, q := range []string{
			fmt.Sprintf(`warren_tasks_published_total{job="producer", queue=%q, task=%q}`, qFail, poison.Name()),
			`warren_publish_errors_total{job="producer", reason="unroutable"} > 0`,
		} {
			if n, err := prom.query(q); err != nil || n == 0 {
				t.Errorf("%s: %d series (%v), want the producer's", q, n, err)
			}
		}

		// The cause goes: no more poison, and the dead letters dealt with.
		traffic()
		if _, err := b.Channel().QueuePurge(dead, false); err != nil {
			t.Fatal(err)
		}
		cured := time.Now()
		r1 := prom.awaitResolved(t, cured, "WarrenTaskFailureRatioHigh", "task", poison.Name())
		t.Logf("WarrenTaskFailureRatioHigh: resolved %v after the poison stopped", r1.Round(time.Second))
		r2 := prom.awaitResolved(t, cured, "WarrenDeadLettersGrowing", "queue", dead)
		t.Logf("WarrenDeadLettersGrowing: resolved %v after the dead letters were purged", r2.Round(time.Second))
	})

	t.Run("producers outpace the worker: WarrenBacklogGrowing", func(t *testing.T) {
		t.Parallel()
		traffic := every(time.Second/30, func(i int) {
			enqueue(slowTask.New(pay{i}), producer.WithQueue(qBacklog))
		})
		defer traffic()
		firing(t, prom, time.Now(), "WarrenBacklogGrowing", "queue", qBacklog)
		traffic()
		slow.Store(false) // the worker catches up
		r := prom.awaitResolved(t, time.Now(), "WarrenBacklogGrowing", "queue", qBacklog)
		t.Logf("WarrenBacklogGrowing: resolved %v after the workers caught up", r.Round(time.Second))
	})

	t.Run("the only worker stops: WarrenQueueNoConsumer", func(t *testing.T) {
		t.Parallel()
		for i := range 5 {
			enqueue(stuck.New(pay{i}), producer.WithQueue(qGone))
		}
		depth := fmt.Sprintf(`warren_queue_messages{queue=%q} > 0`, qGone)
		brokertest.Eventually(t, time.Minute, func() bool {
			n, err := prom.query(depth)
			return err == nil && n > 0
		}, "prometheus never saw %s", depth)
		gone.kill()
		firing(t, prom, time.Now(), "WarrenQueueNoConsumer", "queue", qGone)
		// A worker comes back on the same target and drains the queue.
		back := time.Now()
		startWatched(t, gone.metrics, worker.Config{Conn: conn.Config{URL: amqpURL}, Queues: []string{qGone}},
			stuck.Handler(func(context.Context, pay) error { return nil }))
		r := prom.awaitResolved(t, back, "WarrenQueueNoConsumer", "queue", qGone)
		t.Logf("WarrenQueueNoConsumer: resolved %v after a worker came back", r.Round(time.Second))
	})

	t.Run("no worker leads a scheduler group: WarrenSchedulerNoLeader", func(t *testing.T) {
		t.Parallel()
		leads := fmt.Sprintf(`warren_scheduler_leader{group=%q} == 1`, lonelyGroup)
		brokertest.Eventually(t, time.Minute, func() bool {
			n, err := prom.query(leads)
			return err == nil && n > 0
		}, "prometheus never saw the lonely worker lead its group")
		// Its connection goes, and stays gone: it keeps running and
		// reporting, but cannot hold the lead.
		cut := time.Now()
		pxLone.SetRefuse(true)
		pxLone.Cut()
		firing(t, prom, cut, "WarrenSchedulerNoLeader", "group", lonelyGroup)
		back := time.Now()
		pxLone.SetRefuse(false)
		r := prom.awaitResolved(t, back, "WarrenSchedulerNoLeader", "group", lonelyGroup)
		t.Logf("WarrenSchedulerNoLeader: resolved %v after the broker could be reached again", r.Round(time.Second))
	})

	t.Run("the connection keeps dropping: WarrenReconnectStorm", func(t *testing.T) {
		t.Parallel()
		reconnects := func() float64 {
			return value(gather(t, storm.reg), "warren_broker_reconnects_total", map[string]string{"role": "worker"})
		}
		// Prometheus must have the counter before it moves: a counter first
		// scraped at 7 has not increased.
		series := fmt.Sprintf(`warren_broker_reconnects_total{instance=%q, role="worker"}`, storm.metrics.addr)
		brokertest.Eventually(t, time.Minute, func() bool {
			n, err := prom.query(series)
			return err == nil && n > 0
		}, "prometheus never scraped %s", series)
		// Seven cuts, each once the worker consumes again: more than the
		// five reconnects in ten (compressed) minutes the rule allows. The
		// alert is watched from the first cut: on a slow machine it may
		// fire before the last.
		start := time.Now()
		type fired struct {
			after time.Duration
			err   error
		}
		watch := make(chan fired, 1)
		go func() {
			_, fi, err := prom.awaitFiring(start, "WarrenReconnectStorm", "instance", storm.metrics.addr, false)
			watch <- fired{fi, err}
		}()
		for i := range 7 {
			before := reconnects()
			px.Cut()
			brokertest.Eventually(t, 20*time.Second, func() bool { return reconnects() > before && storm.w.Ready() },
				"worker did not reconnect after cut %d", i+1)
		}
		cuts := time.Since(start)
		f := <-watch
		if f.err != nil {
			t.Fatal(f.err)
		}
		t.Logf("WarrenReconnectStorm: 7 cuts and reconnects took %v; firing %v after the first cut", cuts.Round(100*time.Millisecond), f.after.Round(time.Second))
		last := start.Add(cuts)
		r := prom.awaitResolved(t, last, "WarrenReconnectStorm", "instance", storm.metrics.addr)
		t.Logf("WarrenReconnectStorm: resolved %v after the last reconnect, the connection left alone since", r.Round(time.Second))
	})
}

// firing awaits, at once, each alert given as a name, label, value triple,
// all caused at since, and logs how long each took to go pending and
// firing. All have a "for" clause.
func firing(t *testing.T, prom *promServer, since time.Time, alerts ...string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(alerts)/3)
	for i := 0; i+2 < len(alerts); i += 3 {
		name, label, value := alerts[i], alerts[i+1], alerts[i+2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			pe, fi, err := prom.awaitFiring(since, name, label, value, true)
			if err != nil {
				errs <- err
				return
			}
			t.Logf("%s: pending after %v, firing after %v", name, pe.Round(time.Second), fi.Round(time.Second))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkQueries runs every dashboard query, with queue selected and
// Grafana's intervals at a few scrapes, and every query of the autoscaling
// adapter, for queue in the test's namespace: each must return data.
func checkQueries(t *testing.T, prom *promServer, queue string) {
	t.Helper()
	var qs []expr
	for _, e := range dashboardExprs(loadDashboard(t)) {
		if strings.HasPrefix(e.text, "label_values(") {
			continue // a Grafana function, not PromQL
		}
		qs = append(qs, expr{e.where, substituteWith(t, e, queue, "10s", "1m")})
	}
	matchers := fmt.Sprintf(`namespace="warren-test",queue=%q`, queue)
	for _, e := range adapterQueries(t) {
		qs = append(qs, expr{e.where, strings.ReplaceAll(e.text, "<<.LabelMatchers>>", matchers)})
	}
	for _, e := range qs {
		n, err := prom.query(e.text)
		switch {
		case err != nil:
			t.Errorf("%s: %v", e.where, err)
		case n == 0:
			t.Errorf("%s: no data for a busy worker: %s", e.where, e.text)
		}
	}
}

// adapterQueries returns the PromQL of the autoscaling adapter's rules:
// each seriesQuery (single-quoted) and metricsQuery (a folded block).
func adapterQueries(t *testing.T) []expr {
	t.Helper()
	data, err := os.ReadFile(adapterFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []expr
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		trimmed := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- "))
		if v, ok := strings.CutPrefix(trimmed, "seriesQuery:"); ok {
			out = append(out, expr{fmt.Sprintf("%s:%d seriesQuery", adapterFile, i+1), strings.Trim(strings.TrimSpace(v), "'")})
		}
		if v, ok := strings.CutPrefix(trimmed, "metricsQuery:"); ok && strings.TrimSpace(v) == ">-" {
			indent := len(l) - len(strings.TrimLeft(l, " "))
			var parts []string
			for _, next := range lines[i+1:] {
				if strings.TrimSpace(next) == "" || len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				parts = append(parts, strings.TrimSpace(next))
			}
			out = append(out, expr{fmt.Sprintf("%s:%d metricsQuery", adapterFile, i+1), strings.Join(parts, " ")})
		}
	}
	if len(out) < 2 {
		t.Fatalf("%s: found %d queries, want a seriesQuery and a metricsQuery at least", adapterFile, len(out))
	}
	return out
}
