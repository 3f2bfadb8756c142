package runner_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
)

func freeAddr(t *testing.T) string { return testenv.FreeAddr(t) }

func httpGet(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// launch runs the worker binary's runner with args, -metrics-addr on a
// free port of loopback, reg and topo until the test ends, when it must
// stop with exit code 0. It returns the metrics address and the logs; it
// does not wait for anything.
func launch(t *testing.T, reg *task.Registry, topo routing.Topology, args ...string) (string, *testenv.Buffer) {
	t.Helper()
	addr := freeAddr(t)
	logs := &testenv.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- runner.Run(ctx, append(slices.Clip(args), "-metrics-addr", addr), logs, reg, topo) }()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("runner exit code %d; logs:\n%s", c, logs.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("runner did not stop")
		}
	})
	return addr, logs
}

// noopRegistry registers one task that does nothing, for tests where no
// task runs.
func noopRegistry() *task.Registry {
	reg := task.NewRegistry()
	reg.MustRegister(task.Define[struct{}]("noop").Handler(func(context.Context, struct{}) error { return nil }))
	return reg
}

// startRunner runs the worker binary's runner on queue q with reg until the
// test ends, and returns the metrics address once /readyz answers 200.
func startRunner(t *testing.T, brokerURL, q string, reg *task.Registry) string {
	t.Helper()
	addr, _ := launch(t, reg, routing.Topology{}, "-queues", q, "-broker", brokerURL, "-shutdown-timeout", "2s")
	brokertest.Eventually(t, 15*time.Second, func() bool { c, _ := httpGet(addr, "/readyz"); return c == 200 }, "/readyz never ready")
	return addr
}

func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	c, body := httpGet(addr, "/metrics")
	if c != 200 {
		t.Fatalf("/metrics = %d", c)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value sums the counter, gauge or histogram count of family name over the
// series whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

type Pay struct {
	N int `json:"n"`
}

func TestMetricsCountAKnownMix(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("metrics")
	ok := task.Define[Pay]("ok_task")
	flaky := task.Define[Pay]("flaky_task", task.WithBackoff(time.Second, time.Second))
	bad := task.Define[Pay]("bad_task")
	var flakyRuns atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(
		ok.Handler(func(context.Context, Pay) error { return nil }),
		flaky.Handler(func(ctx context.Context, p Pay) error {
			if m, _ := task.FromContext(ctx); m.Retries == 0 {
				flakyRuns.Add(1)
				return errors.New("first run fails")
			}
			return nil
		}),
		bad.Handler(func(context.Context, Pay) error { return retry.Permanent(errors.New("never")) }),
	)
	addr := startRunner(t, b.URL, q, reg)

	preg := prometheus.NewRegistry()
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL, Metrics: preg}, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var tasks []task.Task
	for i := 0; i < 5; i++ {
		tasks = append(tasks, ok.New(Pay{i}))
	}
	tasks = append(tasks, flaky.New(Pay{1}), flaky.New(Pay{2}), bad.New(Pay{1}))
	if _, err := p.EnqueueBatch(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	// Unknown task names share one label value, whatever producers send.
	if _, err := p.Enqueue(ctx, task.Define[Pay](fmt.Sprintf("nobody_%d", time.Now().UnixNano())).New(Pay{})); err != nil {
		t.Fatal(err)
	}

	processed := func(taskName, outcome string) float64 {
		return value(scrape(t, addr), "warren_tasks_processed_total", map[string]string{"task": taskName, "queue": q, "outcome": outcome})
	}
	brokertest.Eventually(t, 20*time.Second, func() bool { return processed("flaky_task", "success") == 2 }, "flaky tasks never succeeded")
	fams := scrape(t, addr)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warren_tasks_processed_total", map[string]string{"task": "ok_task", "outcome": "success"}, 5},
		{"warren_tasks_processed_total", map[string]string{"task": "flaky_task", "outcome": "retry"}, 2},
		{"warren_tasks_processed_total", map[string]string{"task": "flaky_task", "outcome": "success"}, 2},
		{"warren_tasks_processed_total", map[string]string{"task": "bad_task", "outcome": "dead"}, 1},
		{"warren_tasks_processed_total", map[string]string{"task": "(unknown)", "outcome": "dead"}, 1},
		{"warren_tasks_processed_total", map[string]string{"outcome": "expired"}, 0},
		{"warren_tasks_received_total", map[string]string{"queue": q}, 11},
		{"warren_task_duration_seconds", map[string]string{"queue": q}, 10}, // runs: 5 + 2x2 + 1
		{"warren_task_wait_seconds", map[string]string{"queue": q}, 10},
		{"warren_tasks_in_flight", map[string]string{"queue": q}, 0},
	}
	for _, c := range checks {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, qn := range []string{q, routing.DeadQueue(q)} {
		if value(fams, "warren_queue_messages", map[string]string{"queue": qn}) < 0 {
			t.Errorf("warren_queue_messages has no series for %s", qn)
		}
	}
	pf, err := preg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	pfams := map[string]*dto.MetricFamily{}
	for _, f := range pf {
		pfams[f.GetName()] = f
	}
	if got := value(pfams, "warren_tasks_published_total", map[string]string{"queue": q}); got != 9 {
		t.Errorf("warren_tasks_published_total = %v, want 9", got)
	}
	if flakyRuns.Load() != 2 {
		t.Errorf("flaky first runs %d", flakyRuns.Load())
	}
	if _, body := httpGet(addr, "/metrics"); strings.Contains(body, "guest:guest") {
		t.Error("/metrics shows the broker password")
	}
}

func TestReadyzFollowsTheBroker(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("ready")
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	reg := task.NewRegistry()
	reg.MustRegister(task.Define[Pay]("noop").Handler(func(context.Context, Pay) error { return nil }))
	addr := startRunner(t, brokertest.WithHost(b.URL, px.Addr()), q, reg)

	px.SetRefuse(true)
	px.Cut()
	brokertest.Eventually(t, 10*time.Second, func() bool { c, _ := httpGet(addr, "/readyz"); return c == 503 }, "/readyz still ready with the broker unreachable")
	if c, _ := httpGet(addr, "/healthz"); c != 200 {
		t.Errorf("/healthz = %d while the broker is down; the process is alive", c)
	}
	px.SetRefuse(false)
	brokertest.Eventually(t, 20*time.Second, func() bool { c, _ := httpGet(addr, "/readyz"); return c == 200 }, "/readyz not ready again after the broker came back")
	fams := scrape(t, addr)
	if n := value(fams, "warren_broker_reconnects_total", map[string]string{"role": "worker"}); n < 1 {
		t.Errorf("warren_broker_reconnects_total{role=worker} = %v, want >= 1", n)
	}
}
