package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// uniqueEnv is one test's queue, unique task and producer. The task's name
// is the test's own, so that its lock queues are too.
type uniqueEnv struct {
	b    *brokertest.Broker
	q    string
	name string
	p    *producer.Producer
}

func newUniqueEnv(t *testing.T) *uniqueEnv {
	t.Helper()
	b := brokertest.New(t)
	q := b.Queue("unique")
	return &uniqueEnv{b: b, q: q, name: q, p: warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL},
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}})}
}

// track deletes the lock queues of key at cleanup.
func (e *uniqueEnv) track(key string) {
	l := routing.UniqueQueue(e.name, key)
	e.b.Track(l)
	e.b.Track(routing.HolderQueue(l))
}

func (e *uniqueEnv) worker(t *testing.T, h task.Handler) *worker.Worker {
	return warrentest.StartWorker(t, worker.Config{Conn: conn.Config{URL: e.b.URL}, Queues: []string{e.q}, Retry: fast}, h)
}

func (e *uniqueEnv) enqueue(t *testing.T, def *task.Def[Job], j Job) (string, error) {
	t.Helper()
	return producer.Enqueue(warrentest.Context(t, 10*time.Second), e.p, def, j, producer.WithQueue(e.q))
}

// mustDuplicate fails t unless err refuses a duplicate of holder.
func mustDuplicate(t *testing.T, err error, holder string) {
	t.Helper()
	var dup *producer.DuplicateError
	if !errors.Is(err, producer.ErrDuplicate) || !errors.As(err, &dup) {
		t.Fatalf("err = %v, want a *producer.DuplicateError", err)
	}
	if dup.ID != holder {
		t.Fatalf("duplicate names holder %q, want %q (%v)", dup.ID, holder, err)
	}
}

// The test: 8 producers enqueue one key 1,000 times at once;
// exactly one enqueue is accepted, every other is refused naming it, and
// the worker runs exactly one task. Once it has finished, the key is free.
func TestUniqueEightProducersOneRun(t *testing.T) {
	t.Parallel()
	e := newUniqueEnv(t)
	e.track("k")
	def := task.Define[Job](e.name, task.WithUnique(func(Job) string { return "k" }, time.Minute))
	const producers, total = 8, 1000
	var (
		mu       sync.Mutex
		accepted []string
		dups     = map[string]int{}
		others   []error
		wg       sync.WaitGroup
	)
	ctx := warrentest.Context(t, 60*time.Second)
	start := make(chan struct{})
	for i := range producers {
		p := e.p
		if i > 0 {
			p = warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: e.b.URL}})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for n := range total / producers {
				id, err := producer.Enqueue(ctx, p, def, Job{N: n}, producer.WithQueue(e.q))
				var dup *producer.DuplicateError
				mu.Lock()
				switch {
				case err == nil:
					accepted = append(accepted, id)
				case errors.As(err, &dup):
					dups[dup.ID]++
				default:
					others = append(others, err)
				}
				mu.Unlock()
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d enqueues from %d producers in %v", total, producers, time.Since(began))
	if len(others) > 0 {
		t.Fatalf("%d enqueues failed otherwise; first: %v", len(others), others[0])
	}
	if len(accepted) != 1 {
		t.Fatalf("%d enqueues accepted, want exactly 1", len(accepted))
	}
	if dups[accepted[0]] != total-1 || len(dups) != 1 {
		t.Fatalf("duplicates named holders %v, want %d naming %s", dups, total-1, accepted[0])
	}
	if n := e.b.Ready(e.q); n != 1 {
		t.Fatalf("%d tasks in the queue, want 1", n)
	}

	var runs atomic.Int32
	w := e.worker(t, def.Handler(func(context.Context, Job) error { runs.Add(1); return nil }))
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "the task never ran: %+v", w.Stats())
	// The worker stays idle on an empty queue: nothing else was there to run.
	warrentest.Eventually(t, 5*time.Second, func() bool { return e.b.Ready(e.q) == 0 }, "the queue is not empty")
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	id, err := e.enqueue(t, def, Job{N: -1})
	if err != nil {
		t.Fatalf("after the task finished, an enqueue of its key: %v", err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return runs.Load() == 2 }, "the second task %s never ran", id)
}

// A task that failed and waits for its retry still holds its key.
func TestUniqueRetryKeepsTheLock(t *testing.T) {
	t.Parallel()
	e := newUniqueEnv(t)
	e.track("r")
	def := task.Define[Job](e.name, task.WithUnique(func(Job) string { return "r" }, time.Minute))
	rec := newRecorder(errors.New("flaky"))
	w := e.worker(t, def.Handler(rec.handle))
	first, err := e.enqueue(t, def, Job{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Retried == 1 }, "never retried: %+v", w.Stats())
	_, err = e.enqueue(t, def, Job{N: 2})
	mustDuplicate(t, err, first)
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "the retry never succeeded: %+v", w.Stats())
	if _, err := e.enqueue(t, def, Job{N: 3}); err != nil {
		t.Fatalf("after the retry succeeded: %v", err)
	}
}

// A task that ends in the dead letters frees its key.
func TestUniqueDeadLetterReleases(t *testing.T) {
	t.Parallel()
	e := newUniqueEnv(t)
	e.track("d")
	def := task.Define[Job](e.name, task.WithUnique(func(Job) string { return "d" }, time.Minute))
	w := e.worker(t, def.Handler(func(context.Context, Job) error { return retry.Permanent(errors.New("never")) }))
	if _, err := e.enqueue(t, def, Job{N: 1}); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Dead == 1 }, "never dead-lettered: %+v", w.Stats())
	if _, err := e.enqueue(t, def, Job{N: 2}); err != nil {
		t.Fatalf("after the dead letter: %v", err)
	}
}

// A lock whose task vanished without a worker hearing of it (its queue was
// purged) frees itself after the unique duration.
func TestUniqueLockFreesItselfAfterItsTime(t *testing.T) {
	t.Parallel()
	e := newUniqueEnv(t)
	e.track("p")
	const d = 2 * time.Second
	def := task.Define[Job](e.name, task.WithUnique(func(Job) string { return "p" }, d))
	first, err := e.enqueue(t, def, Job{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Now()
	if _, err := e.b.Channel().QueuePurge(e.q, false); err != nil {
		t.Fatal(err)
	}
	_, err = e.enqueue(t, def, Job{N: 2})
	mustDuplicate(t, err, first)
	var freed time.Duration
	warrentest.Eventually(t, d+5*time.Second, func() bool {
		_, err := e.enqueue(t, def, Job{N: 3})
		freed = time.Since(took)
		return err == nil
	}, "the lock never freed itself")
	t.Logf("the lock freed itself %v after it was taken (duration %v)", freed, d)
	if freed < d-200*time.Millisecond {
		t.Errorf("freed after %v, before its duration %v", freed, d)
	}
}

// With a hold, the key stays refused for the hold after the task ended,
// naming the finished task, then frees itself.
func TestUniqueHoldAfterFinish(t *testing.T) {
	t.Parallel()
	e := newUniqueEnv(t)
	e.track("h")
	const hold = 2 * time.Second
	def := task.Define[Job](e.name, task.WithUnique(func(Job) string { return "h" }, time.Minute), task.WithUniqueHold(hold))
	w := e.worker(t, def.Handler(func(context.Context, Job) error { return nil }))
	first, err := e.enqueue(t, def, Job{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return w.Stats().Succeeded == 1 }, "never ran: %+v", w.Stats())
	ended := time.Now()
	_, err = e.enqueue(t, def, Job{N: 2})
	mustDuplicate(t, err, first)
	var freed time.Duration
	warrentest.Eventually(t, hold+5*time.Second, func() bool {
		_, err := e.enqueue(t, def, Job{N: 3})
		freed = time.Since(ended)
		return err == nil
	}, "the hold never ended")
	t.Logf("the hold ended %v after the task (hold %v)", freed, hold)
	if freed < hold-500*time.Millisecond {
		t.Errorf("the key was free %v after the task, before the hold of %v", freed, hold)
	}
}

// Keys that differ do not interfere, and neither do ordinary enqueues of
// the same task (an empty key).
func TestUniqueKeysDoNotInterfere(t *testing.T) {
	t.Parallel()
	e := newUniqueEnv(t)
	e.track("a")
	e.track("b")
	def := task.Define[Job](e.name, task.WithUnique(func(j Job) string { return j.Note }, time.Minute))
	a, err := e.enqueue(t, def, Job{Note: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.enqueue(t, def, Job{Note: "b"}); err != nil {
		t.Fatalf("key b while a is held: %v", err)
	}
	for range 2 {
		if _, err := e.enqueue(t, def, Job{}); err != nil {
			t.Fatalf("an empty key: %v", err)
		}
	}
	_, err = e.enqueue(t, def, Job{Note: "a"})
	mustDuplicate(t, err, a)
	// The per-enqueue option overrides the definition's key.
	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), e.p, def, Job{Note: "a"}, producer.WithQueue(e.q), producer.WithUnique("b2", time.Minute)); err != nil {
		t.Fatalf("WithUnique's own key: %v", err)
	}
	e.track("b2")
}
