package runner_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

func TestParseFlags(t *testing.T) {
	t.Setenv(runner.EnvBrokerURL, "amqp://u:p@broker:5672/")
	o, err := runner.ParseFlags([]string{"-queues", "video, audio", "-concurrency", "4", "-prefetch", "100", "-shutdown-timeout", "5s", "-log-format", "console", "-presence-interval", "500ms",
		"-limit", "video:per-worker=2", "-limit", "audio: per-worker=1,concurrency=3,rate=20/s,burst=4", "-limit", "mail:rate=3/1500ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Queues, "|") != "video|audio" || o.Concurrency != 4 || o.Prefetch != 100 ||
		o.ShutdownTimeout != 5*time.Second || o.LogFormat != "console" || o.Broker != "amqp://u:p@broker:5672/" || o.MetricsAddr != ":9090" ||
		o.PresenceInterval != 500*time.Millisecond ||
		len(o.Limits) != 3 || o.Limits[2] != (worker.Limit{Queue: "mail", Rate: 3, Per: 1500 * time.Millisecond}) || o.Limits[0] != (worker.Limit{Queue: "video", PerWorker: 2}) || o.Limits[1] != (worker.Limit{Queue: "audio", PerWorker: 1, Concurrency: 3, Rate: 20, Per: time.Second, Burst: 4}) {
		t.Errorf("parsed %+v", o)
	}
	bad := [][]string{
		{},                 // no queues
		{"-queues", " , "}, // only blanks
		{"-queues", "q", "-concurrency", "0"},
		{"-queues", "q", "-log-format", "xml"},
		{"-queues", "q", "-log-level", "loud"},
		{"-queues", "q", "extra"},
		{"-nope"},
		{"-queues", "q", "-limit", "q"},
		{"-queues", "q", "-limit", "q:per-worker=0"},
		{"-queues", "q", "-limit", "q:rate=5"},
		{"-queues", "q", "-limit", "q:rate=5/fortnight"},
		{"-queues", "q", "-limit", "q:speed=5"},
		{"-queues", "q", "-limit", ":per-worker=1"},
	}
	for _, args := range bad {
		if _, err := runner.ParseFlags(args, io.Discard); err == nil {
			t.Errorf("ParseFlags(%q) accepted bad flags", args)
		}
	}
}

func TestRunUsageErrorExits2(t *testing.T) {
	var stderr bytes.Buffer
	if code := runner.Run(context.Background(), []string{"-concurrency", "2"}, &stderr, task.NewRegistry(), routing.Topology{}); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "-queues is required") {
		t.Errorf("stderr %q should say what is missing", stderr.String())
	}
}

// Durations carry their unit in both formats: an operator reading
// "delay":10 cannot tell seconds from milliseconds.
func TestLoggerDurationsHaveUnits(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := runner.NewLogger("info", format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("task failed; retry scheduled", zap.Duration("delay", 1500*time.Millisecond))
		want := `"delay":"1.5s"`
		if format == "console" {
			want = `"delay": "1.5s"`
		}
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%s line %q lacks %s", format, buf.String(), want)
		}
	}
}

// -h is a request, not a mistake: exit 0 with a usage line, the flags,
// and the tasks this binary runs (anything else is dead-lettered).
func TestRunHelpExits0WithUsage(t *testing.T) {
	reg := task.NewRegistry()
	reg.MustRegister(task.Define[struct{}]("resize_image").Handler(func(context.Context, struct{}) error { return nil }))
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stderr bytes.Buffer
		if code := runner.Run(context.Background(), []string{arg}, &stderr, reg, routing.Topology{}); code != 0 {
			t.Errorf("%s: exit code %d, want 0", arg, code)
		}
		out := stderr.String()
		for _, want := range []string{"usage: worker -queues", "-concurrency", "resize_image", "unknown_task"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", arg, want, out)
			}
		}
	}
}

func TestRunServesProbesAndStopsCleanly(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("runner")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	reg := noopRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.Buffer
	code := make(chan int, 1)
	go func() {
		code <- runner.Run(ctx, []string{"-queues", q, "-metrics-addr", addr, "-broker", b.URL, "-shutdown-timeout", "2s"}, &logs, reg, routing.Topology{})
	}()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	brokertest.Eventually(t, 15*time.Second, func() bool { c, _ := get("/readyz"); return c == 200 }, "/readyz never ready")
	if c, _ := get("/healthz"); c != 200 {
		t.Errorf("/healthz = %d", c)
	}
	if c, body := get("/metrics"); c != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, missing Go collector", c)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d after a graceful stop, want 0; logs:\n%s", c, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("runner did not stop")
	}
	out := logs.String()
	if !strings.Contains(out, "worker stopped") {
		t.Errorf("logs lack the shutdown summary:\n%s", out)
	}
	if strings.Contains(out, "guest:guest@") {
		t.Errorf("logs leak the broker password:\n%s", out)
	}
}

// TestRunFiresSchedulesFromAFile starts the worker binary's Run with
// -schedules: the file's task is fired into the worker's queue and run,
// and a file with a mistake stops the worker at start with its line.
func TestRunFiresSchedulesFromAFile(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("ticks")
	name := strings.TrimSuffix(b.Queue("tick"), ".")
	group := strings.TrimSuffix(b.Queue("group"), ".")
	b.Track(scheduler.ElectionQueue + "." + group)
	b.Track(scheduler.Name(name))
	t.Cleanup(func() { _ = b.Channel().ExchangeDelete(scheduler.Name(name), false, false) })
	dir := t.TempDir()
	file := filepath.Join(dir, "schedules.yaml")
	if err := os.WriteFile(file, []byte("schedules:\n  - name: "+name+"\n    task: tick\n    every: 1s\n    payload: {n: 7}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ran := make(chan int, 100)
	reg := task.NewRegistry()
	reg.MustRegister(task.Define[struct{ N int }]("tick").Handler(func(_ context.Context, p struct{ N int }) error {
		ran <- p.N
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.Buffer
	code := make(chan int, 1)
	go func() {
		code <- runner.Run(ctx, []string{"-queues", q, "-metrics-addr", "", "-broker", b.URL, "-shutdown-timeout", "2s",
			"-schedules", file, "-scheduler-group", group}, &logs, reg, routing.Topology{})
	}()
	for range 2 {
		select {
		case n := <-ran:
			if n != 7 {
				t.Errorf("a fire ran with payload n=%d, want 7", n)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no fire ran within 30 s; log:\n%s", logs.String())
		}
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("exit code %d, want 0; log:\n%s", c, logs.String())
	}
	if !strings.Contains(logs.String(), "scheduler: fired") {
		t.Errorf("the log does not show the fires:\n%s", logs.String())
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("schedules:\n  - name: x\n    task: tick\n    cron: '0 25 * * *'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var badLogs testenv.Buffer
	if c := runner.Run(context.Background(), []string{"-queues", q, "-metrics-addr", "", "-broker", b.URL, "-schedules", bad}, &badLogs, reg, routing.Topology{}); c != 2 {
		t.Errorf("a bad schedule file: exit code %d, want 2", c)
	}
	if !strings.Contains(badLogs.String(), "bad.yaml:2") || !strings.Contains(badLogs.String(), "above maximum") {
		t.Errorf("the error does not give the line and the reason:\n%s", badLogs.String())
	}
}
