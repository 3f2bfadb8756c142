package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

var slowTask = task.Define[struct{}]("cli_slow")

// warren workers lists a live worker with the task it runs, as a table
// and as JSON; filtered by a queue nobody consumes, it says no worker
// answered.
func TestWorkers(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("video")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	w := warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Topology: topo, Concurrency: 2},
		slowTask.Handler(func(ctx context.Context, _ struct{}) error {
			close(started)
			<-release
			return nil
		}))
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Routes: routing.NewTable().Add(slowTask.Name(), routing.ToQueue(q))})
	id, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, slowTask, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	<-started

	r := cli(t, nil, "workers", "-queue", q, "-broker", b.URL).want(t, exitOK)
	t.Logf("warren workers:\n%s", r.stdout)
	lines := strings.Split(r.stdout, "\n")
	if len(lines) < 5 || !strings.HasPrefix(lines[0], "WORKER") || !strings.HasPrefix(lines[1], w.ID()+" ") ||
		!strings.Contains(lines[1], " running ") || !strings.Contains(lines[1], " 1/2 ") {
		t.Errorf("table:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "\nTASK") || !strings.Contains(r.stdout, slowTask.Name()+" ") || !strings.Contains(r.stdout, " "+id+" ") {
		t.Errorf("running task %s not listed:\n%s", id, r.stdout)
	}

	r = cli(t, nil, "workers", "-json", "-queue", q, "-broker", b.URL).want(t, exitOK)
	var got struct{ Workers []inspect.Worker }
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if len(got.Workers) != 1 || got.Workers[0].ID != w.ID() || got.Workers[0].RunningCount != 1 || got.Workers[0].Running[0].ID != id {
		t.Errorf("JSON %+v", got)
	}

	nobody := b.Queue("nobody")
	r = cli(t, nil, "workers", "-queue", nobody, "-wait", "300ms", "-broker", b.URL).want(t, exitOK)
	if !strings.HasPrefix(r.stdout, "no worker answered within 300ms that consumes "+nobody) {
		t.Errorf("output %q", r.stdout)
	}
	cli(t, nil, "workers", "extra", "-broker", b.URL).want(t, exitUsage)
}
