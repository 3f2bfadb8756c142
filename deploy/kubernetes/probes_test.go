package kubernetes_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/examples/media"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
)

// TestWorkerAnswersProbes runs the worker with the base Deployment's args
// (on a free local port, against a broker that is not there) and asks it
// what the probes and Prometheus ask: alive, not ready, metrics served.
func TestWorkerAnswersProbes(t *testing.T) {
	t.Parallel()
	w := findWorker(t, render(t, "base"))
	var args []string
	for _, a := range w.container.Args {
		switch name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); name {
		case "metrics-addr", "log-level", "log-format":
		default:
			args = append(args, a)
		}
	}
	// Port 1 refuses connections: the worker runs but never connects.
	args = append(args, "-metrics-addr=127.0.0.1:0", "-log-level=info", "-log-format=json", "-broker=amqp://guest:guest@127.0.0.1:1/")

	reg := task.NewRegistry()
	reg.MustRegister(media.ProcessMedia.Handler(media.Process))
	logs := &testenv.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() { exited <- runner.Run(ctx, args, logs, reg, media.Topology) }()
	stopped := false
	defer func() {
		if stopped {
			return
		}
		cancel()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	}()

	// The runner logs the address it listens on.
	var addr string
	deadline := time.After(10 * time.Second)
	for addr == "" {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct {
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Addr != "" && !strings.HasSuffix(rec.Addr, ":0") {
				addr = rec.Addr
			}
		}
		select {
		case code := <-exited:
			stopped = true
			t.Fatalf("worker exited with %d before serving HTTP:\n%s", code, logs.String())
		case <-deadline:
			t.Fatalf("worker logged no listening address:\n%s", logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}

	client := &http.Client{Timeout: 5 * time.Second}
	probe := func(p string) (int, string) {
		resp, err := client.Get("http://" + addr + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// Paths as the manifest gives them; checkProbes fails a build whose
	// probes have no httpGet, so a nil here is a failure reported there.
	var live, ready string
	if p := w.container.LivenessProbe; p != nil && p.HTTPGet != nil {
		live = p.HTTPGet.Path
	}
	if p := w.container.ReadinessProbe; p != nil && p.HTTPGet != nil {
		ready = p.HTTPGet.Path
	}
	scrape := w.deploy.Spec.Template.Annotations["prometheus.io/path"]
	if live == "" || ready == "" || scrape == "" {
		t.Fatalf("base Deployment: liveness %q, readiness %q, scrape path %q: want all three", live, ready, scrape)
	}
	if code, _ := probe(live); code != http.StatusOK {
		t.Errorf("liveness %s: %d while the broker is away, want 200: a broker outage must not restart workers", live, code)
	}
	if code, _ := probe(ready); code != http.StatusServiceUnavailable {
		t.Errorf("readiness %s: %d while not connected, want 503", ready, code)
	}
	if code, body := probe(scrape); code != http.StatusOK || !strings.Contains(body, "warren_") {
		t.Errorf("scrape path %s: %d, want 200 with warren's metrics", scrape, code)
	}
	if code, _ := probe("/no-such-path"); code != http.StatusNotFound {
		t.Errorf("GET /no-such-path: %d, want 404 (the checks above would prove nothing)", code)
	}

	cancel()
	select {
	case code := <-exited:
		stopped = true
		if code != 0 {
			t.Errorf("worker exited with %d after SIGTERM's equivalent, want 0:\n%s", code, logs.String())
		}
	case <-time.After(w.opts.ShutdownTimeout + stopMargin):
		t.Errorf("worker still running %s after cancel", w.opts.ShutdownTimeout+stopMargin)
	}
}
