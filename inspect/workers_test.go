package inspect_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

var hold = task.Define[struct{}]("presence_hold")

// find returns the worker id among ws.
func find(ws []inspect.Worker, id string) (inspect.Worker, bool) {
	for _, w := range ws {
		if w.ID == id {
			return w, true
		}
	}
	return inspect.Worker{}, false
}

// waitAnnouncing waits until worker id has declared its command queue
// (another connection finds it locked), so that a ping reaches it: the
// worker's readiness does not wait for presence, which is best effort.
func waitAnnouncing(t *testing.T, id string) {
	t.Helper()
	b := brokertest.New(t)
	q := routing.WorkerQueuePrefix + id
	brokertest.Eventually(t, 10*time.Second, func() bool {
		_, err := b.Channel().QueueDeclarePassive(q, false, false, false, false, nil)
		var ae *amqp.Error
		return errors.As(err, &ae) && ae.Code == amqp.ResourceLocked
	}, "worker %s did not declare its command queue", id)
}

// waitGone waits until id is not listed any more.
func waitGone(ctx context.Context, t *testing.T, insp *inspect.Inspector, id string) {
	t.Helper()
	warrentest.Eventually(t, 5*time.Second, func() bool {
		ws, err := insp.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := find(ws, id)
		return !ok
	}, "worker %s still listed after it stopped", id)
}

// A worker is listed with what it is; a task it runs shows up with its id
// while it runs, also while the worker stops; once the worker has
// stopped, the list does not show it.
func TestWorkersShowsWhatRuns(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	q := b.Queue("presence")
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	started, release := make(chan struct{}), make(chan struct{})
	reg := task.NewRegistry()
	reg.MustRegister(hold.Handler(func(ctx context.Context, _ struct{}) error {
		close(started)
		<-release
		return nil
	}))
	w, err := worker.New(worker.Config{Conn: b.Conn(), Queues: []string{q}, Registry: reg, Topology: topo,
		Concurrency: 3, Prefetch: 5, PresenceInterval: 200 * time.Millisecond,
		Limits: []worker.Limit{{Queue: q, PerWorker: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := warrentest.Run(t, w)
	insp := newInspector(t, inspect.Config{Conn: b.Conn(), NoManagement: true})
	ctx := warrentest.Context(t, 30*time.Second)

	ws, err := insp.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	me, ok := find(ws, w.ID())
	if !ok {
		t.Fatalf("worker %s not listed among %d", w.ID(), len(ws))
	}
	host, _ := os.Hostname()
	if me.Host != host || me.PID != os.Getpid() || me.Version == "" || me.State != inspect.WorkerRunning ||
		len(me.Queues) != 1 || me.Queues[0] != q || me.Concurrency != 3 || me.Prefetch != 5 ||
		me.Interval != 200*time.Millisecond || me.Started.IsZero() || me.RunningCount != 0 || me.Node == "" ||
		len(me.Limits) != 1 || me.Limits[0] != (inspect.QueueLimit{Queue: q, PerWorker: 2}) {
		t.Errorf("listed as %+v", me)
	}

	p := warrentest.NewProducer(t, producer.Config{Conn: b.Conn(), Routes: routing.NewTable().Add(hold.Name(), routing.ToQueue(q))})
	id, err := producer.Enqueue(ctx, p, hold, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	running := func(state string) func() bool {
		return func() bool {
			ws, err := insp.Workers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			me, _ = find(ws, w.ID())
			return me.State == state && me.RunningCount == 1 && len(me.Running) == 1 && me.Running[0].ID == id
		}
	}
	warrentest.Eventually(t, 5*time.Second, running(inspect.WorkerRunning), "task %s never listed as running: %+v", id, me)
	if r := me.Running[0]; r.Task != hold.Name() || r.Queue != q || r.Attempt != 1 || time.Since(r.Started) > 10*time.Second {
		t.Errorf("running task %+v", r)
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); stop() }()
	warrentest.Eventually(t, 5*time.Second, running(inspect.WorkerStopping), "stopping worker not listed with its task: %+v", me)
	close(release)
	<-stopped
	waitGone(ctx, t, insp, w.ID())
}

// A watcher that starts after the worker learns of it from its answer to
// the ping, not from a heartbeat; and a worker that stops leaves the list
// at once on its goodbye, not three heartbeats later.
func TestWorkersPingAndGoodbye(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	q := b.Queue("presence")
	reg := task.NewRegistry()
	reg.MustRegister(hold.Handler(func(context.Context, struct{}) error { return nil }))
	w, err := worker.New(worker.Config{Conn: b.Conn(), Queues: []string{q}, Registry: reg,
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}, PresenceInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stop := warrentest.Run(t, w)
	waitAnnouncing(t, w.ID())
	quiet := warrentest.StartWorker(t, worker.Config{Conn: b.Conn(), Queues: []string{q},
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}, PresenceInterval: -1},
		hold.Handler(func(context.Context, struct{}) error { return nil }))
	insp := newInspector(t, inspect.Config{Conn: b.Conn(), NoManagement: true, PresenceWait: 2 * time.Second})
	ctx := warrentest.Context(t, 30*time.Second)
	ws, err := insp.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(ws, w.ID()); !ok {
		t.Fatalf("worker %s did not answer the ping (%d listed)", w.ID(), len(ws))
	}
	if _, ok := find(ws, quiet.ID()); ok {
		t.Errorf("worker %s with presence off is listed", quiet.ID())
	}
	stop()
	// An hour's heartbeats: only the goodbye takes it off the list now.
	waitGone(ctx, t, insp, w.ID())
}

// Two first calls at once both wait for the ping's answers: the one that
// did not send the ping lists the worker too, rather than an empty list
// at once. The worker's heartbeats are an hour apart, so only its answer
// to the ping can list it.
func TestWorkersConcurrentFirstCalls(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	q := b.Queue("presence")
	w := warrentest.StartWorker(t, worker.Config{Conn: b.Conn(), Queues: []string{q},
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}, PresenceInterval: time.Hour},
		hold.Handler(func(context.Context, struct{}) error { return nil }))
	waitAnnouncing(t, w.ID())
	insp := newInspector(t, inspect.Config{Conn: b.Conn(), NoManagement: true, PresenceWait: time.Second})
	ctx := warrentest.Context(t, 30*time.Second)

	const callers = 3
	start := make(chan struct{})
	lists := make(chan []inspect.Worker, callers)
	errs := make(chan error, callers)
	for range callers {
		go func() {
			<-start
			ws, err := insp.Workers(ctx)
			errs <- err
			lists <- ws
		}()
	}
	close(start)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if ws := <-lists; !func() bool { _, ok := find(ws, w.ID()); return ok }() {
			t.Errorf("a first call listed %d workers without %s", len(ws), w.ID())
		}
	}
}

// Bad input on the control and presence exchanges (not JSON, null, wrong
// types, an empty body, a ping without a reply_to) neither crashes nor
// wedges a worker or a watcher: afterwards the worker answers a new
// watcher's ping, and the first watcher still hears its heartbeats.
func TestWorkersSurviveBadInput(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	raw := brokertest.New(t)
	q := b.Queue("presence")
	w := warrentest.StartWorker(t, worker.Config{Conn: b.Conn(), Queues: []string{q},
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}, PresenceInterval: 100 * time.Millisecond},
		hold.Handler(func(context.Context, struct{}) error { return nil }))
	waitAnnouncing(t, w.ID())
	first := newInspector(t, inspect.Config{Conn: b.Conn(), NoManagement: true})
	ctx := warrentest.Context(t, 30*time.Second)
	if ws, err := first.Workers(ctx); err != nil {
		t.Fatal(err)
	} else if _, ok := find(ws, w.ID()); !ok {
		t.Fatalf("worker %s not listed before the bad input", w.ID())
	}

	// None has a worker id: other tests' watchers must not list them.
	bad := []string{"", "not json", "null", "[]", "5", `"ping"`, `{"op":5}`, `{"op":null}`, `{"op":["ping"]}`,
		`{"op":"ping"}`, `{"op":"reboot"}`, `{"id":5}`, `{"id":"","state":"running"}`,
		`{"id":"x","interval_ns":"soon"}`, `{"id":"x","running":{}}`, `{"id":"x","sent":"yesterday"}`, "{", "\x00\xff"}
	for _, body := range bad {
		for _, x := range []string{routing.ControlExchange, routing.PresenceExchange} {
			raw.Publish(x, "", amqp.Publishing{Body: []byte(body), DeliveryMode: amqp.Transient})
		}
	}
	after := time.Now()

	second := newInspector(t, inspect.Config{Conn: b.Conn(), NoManagement: true})
	ws, err := second.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(ws, w.ID()); !ok {
		t.Errorf("after the bad input, worker %s did not answer a new watcher's ping", w.ID())
	}
	var me inspect.Worker
	warrentest.Eventually(t, 10*time.Second, func() bool {
		ws, err := first.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		me, _ = find(ws, w.ID())
		return me.Sent.After(after)
	}, "the first watcher heard nothing from worker %s after the bad input (last %+v)", w.ID(), me)
}
