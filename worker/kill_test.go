package worker_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// The test binary doubles as a worker process that tests can kill: with
// childEnv set, TestMain runs childWorker instead of the tests.
const childEnv = "WARREN_TEST_CHILD_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		childWorker()
		return
	}
	os.Exit(m.Run())
}

var slowTask = task.Define[Job]("slow")

// childWorker consumes WARREN_TEST_QUEUE at WARREN_TEST_URL; its handler
// says STARTED <id> on stdout and then blocks, until the test kills it.
func childWorker() {
	reg := task.NewRegistry()
	reg.MustRegister(slowTask.Handler(func(ctx context.Context, j Job) error {
		m, _ := task.FromContext(ctx)
		os.Stdout.WriteString("STARTED " + m.ID + "\n")
		<-ctx.Done()
		return ctx.Err()
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: os.Getenv("WARREN_TEST_URL")}, Queues: []string{os.Getenv("WARREN_TEST_QUEUE")}, Registry: reg, Concurrency: 1, Prefetch: 1})
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	_ = w.Run(context.Background())
}

// A worker killed mid-task never acked it: the broker redelivers the task
// to another worker, which runs it to success.
func TestKilledWorkerLeavesTaskForAnother(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("killed")
	b.DeclareQueue(q)
	b.DeclareQueue(routing.DeadQueue(q))

	ctx := warrentest.Context(t, 60*time.Second)
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"=1", "WARREN_TEST_URL="+b.URL, "WARREN_TEST_QUEUE="+q)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}})
	id, err := producer.Enqueue(ctx, p, slowTask, Job{N: 1}, producer.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "STARTED "); ok {
				started <- s
				return
			}
		}
	}()
	select {
	case got := <-started:
		if got != id {
			t.Fatalf("child started %q, want %q", got, id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child worker never started the task")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	redelivered := make(chan *task.Message, 1)
	reg := task.NewRegistry()
	reg.MustRegister(slowTask.Handler(func(ctx context.Context, j Job) error {
		m, _ := task.FromContext(ctx)
		redelivered <- m
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)
	select {
	case m := <-redelivered:
		if m.ID != id || !m.Redelivered {
			t.Errorf("second worker got id %q redelivered=%v, want %q redelivered", m.ID, m.Redelivered, id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("task of the killed worker was not redelivered")
	}
	warrentest.Eventually(t, 5*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "stats %+v", w.Stats())
}
