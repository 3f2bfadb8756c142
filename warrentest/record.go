package warrentest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// RecordTimeout is how long RequireEnqueued waits for a task that has not
// arrived yet (one enqueued by another goroutine, say).
const RecordTimeout = 10 * time.Second

// Recorder collects what is enqueued for one queue of a test: the tasks
// that reach it at once, and the delayed ones the moment they enter the
// delay levels, long before they are due. It takes them out of the queue,
// so it is for tests of code that enqueues, with no worker on the queue.
type Recorder struct {
	b       *Broker
	queue   string
	delayed string // a queue bound to the delay levels' entry for queue

	mu   sync.Mutex
	seen []Enqueued[struct{}] // arrived and not yet claimed, in order
}

// Enqueued is one task a Recorder saw: its decoded payload, the delay it
// was sent with, and its envelope (id, task name, headers, eta, expiry,
// priority, max attempts, reply-to...).
type Enqueued[T any] struct {
	Payload T
	// Delay is how long the delay levels hold the task before it reaches
	// its queue, in whole seconds as they count it; zero for a task sent
	// straight to its queue.
	Delay time.Duration
	*task.Message
}

// Record starts recording what is enqueued for queue, which should be a
// name from Queue: what the producer sends there from now on, after a
// delay or not. Record before the code under test enqueues. The queue
// itself must exist for a task to reach it (a producer's Topology or
// Declare declares it), as in production.
func (b *Broker) Record(t testing.TB, queue string) *Recorder {
	t.Helper()
	r := &Recorder{b: b, queue: queue, delayed: queue + ".delayed"}
	b.names.Track(r.delayed)
	// The producer publishes a delayed task to the delay levels' entry
	// exchange with a key that ends in the queue's name; a binding with
	// the same pattern the delivery binding uses sees it there at once.
	entry := routing.DelayBinding(queue)
	entry.Exchange, entry.Queue = routing.DelayEntry, r.delayed
	topo := routing.DelayTopology()
	topo.Queues = append(topo.Queues, routing.Queue{Name: r.delayed, NoDeadLetters: true})
	topo.Bindings = append(topo.Bindings, entry)
	b.Declare(t, topo)
	return r
}

// RequireEnqueued returns the first task of def that r has seen and not
// returned before, waiting up to RecordTimeout for one, and fails t if
// none comes or its payload does not decode. Tasks of other definitions
// stay for their own calls. Compare what it returns with what the code
// under test should have sent:
//
//	got := warrentest.RequireEnqueued(t, rec, SendEmail)
//	if got.Payload.To != "ann@example.com" || got.Delay != time.Hour { ... }
func RequireEnqueued[T any](t testing.TB, r *Recorder, def *task.Def[T]) Enqueued[T] {
	t.Helper()
	var got Enqueued[struct{}]
	found := false
	Eventually(t, RecordTimeout, func() bool {
		r.poll(t)
		got, found = r.claim(def.Name())
		return found
	}, "warrentest: no %s task enqueued for %s (seen: %s)", def.Name(), r.queue, lazy(r.names))
	// The definition's codec and format, as a producer encodes with them.
	tk := def.New(*new(T))
	codec := tk.Codec
	if got.ContentType != codec.ContentType() {
		t.Fatalf("warrentest: %s task %s has content type %q, want %q", def.Name(), got.ID, got.ContentType, codec.ContentType())
	}
	out := Enqueued[T]{Delay: got.Delay, Message: got.Message}
	decode := codec.Unmarshal
	if tk.Format != nil {
		decode = func(body []byte, p any) error { return tk.Format.Decode(body, codec, p) }
	}
	if err := decode(got.Body, &out.Payload); err != nil {
		t.Fatalf("warrentest: %s task %s: payload %s does not decode: %v", def.Name(), got.ID, got.Body, err)
	}
	return out
}

// RequireEmpty fails t if r has seen a task that RequireEnqueued did not
// return. Call it once the code under test has returned: an enqueue
// returns only after the broker confirmed the task, so a task that was
// enqueued is already there, and an empty Recorder means none was.
func (r *Recorder) RequireEmpty(t testing.TB) {
	t.Helper()
	r.poll(t)
	if n := r.names(); n != "none" {
		t.Fatalf("warrentest: tasks enqueued for %s: %s", r.queue, n)
	}
}

// poll moves what has arrived into seen: the delayed ones first, since
// any copy of them that has reached the queue already came through the
// delay levels and was seen on entering them.
func (r *Recorder) poll(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	delayed, err := r.b.admin.take(ctx, r.delayed)
	if err != nil {
		t.Fatalf("warrentest: record %s: %v", r.queue, err)
	}
	direct, err := r.b.admin.take(ctx, r.queue)
	if err != nil {
		t.Fatalf("warrentest: record %s: %v", r.queue, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range delayed {
		d, _, err := routing.ParseDelayKey(a.key)
		if err != nil {
			t.Fatalf("warrentest: record %s: %v", r.queue, err)
		}
		r.seen = append(r.seen, Enqueued[struct{}]{Delay: d, Message: a.m})
	}
	for _, a := range direct {
		if a.exchange == routing.DelayDeliver {
			continue // seen on its way into the delay levels
		}
		r.seen = append(r.seen, Enqueued[struct{}]{Message: a.m})
	}
}

// claim removes and returns the first task called name.
func (r *Recorder) claim(name string) (Enqueued[struct{}], bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.seen {
		if e.Task == name {
			r.seen = append(r.seen[:i], r.seen[i+1:]...)
			return e, true
		}
	}
	return Enqueued[struct{}]{}, false
}

// lazy is text made only when a failure message is printed.
type lazy func() string

func (l lazy) String() string { return l() }

// names lists the unclaimed tasks, for failure messages.
func (r *Recorder) names() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return "none"
	}
	s := make([]string, len(r.seen))
	for i, e := range r.seen {
		s[i] = fmt.Sprintf("%s %s", e.Task, e.ID)
	}
	return strings.Join(s, ", ")
}
