package producer_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
)

// endingCtx is a context that ends on cue. Err reports it live for its
// first live calls (Publish asks once per publish). The first call to Done,
// made when the producer starts waiting for confirms, blocks until the
// test calls end; from then on it is done.
type endingCtx struct {
	context.Context // Background: no deadline, no values

	live    atomic.Int32
	ended   atomic.Bool
	once    sync.Once
	waiting chan struct{} // closed at the first Done
	release chan struct{} // closed by end
}

func newEndingCtx(live int) *endingCtx {
	c := &endingCtx{Context: context.Background(), waiting: make(chan struct{}), release: make(chan struct{})}
	c.live.Store(int32(live))
	return c
}

func (c *endingCtx) Err() error {
	if c.ended.Load() || c.live.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func (c *endingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	<-c.release
	return c.release
}

func (c *endingCtx) end() {
	c.ended.Store(true)
	close(c.release)
}

// barrier returns once every publish the producer made before it on its
// single channel has its confirm: confirms come back in publish order.
func barrier(t *testing.T, p *producer.Producer, q string) {
	t.Helper()
	if _, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{Text: "barrier"}), producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
}

// A batch whose context ends after the broker confirmed its tasks reports
// them enqueued, with their ids, and the tasks its context stopped before
// they were sent as not enqueued; the broker's answer wins over the
// context every time, so callers do not retry what is already in the
// queue.
func TestBatchReportsWhatWasConfirmedBeforeItsContextEnded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		tasks, ran int // ran: tasks published before the context ends
	}{
		{"all confirmed", 20, 20},
		{"ended midway", 20, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, q, p := producerWithQueue(t, "batch", producer.Config{Channels: 1})
			barrier(t, p, q) // connected, channel open: publishing asks nothing of ctx but Err

			ctx := newEndingCtx(tc.ran)
			ts := make([]task.Task, tc.tasks)
			for i := range ts {
				ts[i] = noteTask.New(Note{Text: "batch"})
			}
			type outcome struct {
				ids []string
				err error
			}
			res := make(chan outcome, 1)
			go func() {
				ids, err := p.EnqueueBatch(ctx, ts, producer.WithQueue(q))
				res <- outcome{ids, err}
			}()
			select {
			case <-ctx.waiting:
			case <-time.After(10 * time.Second):
				t.Fatal("EnqueueBatch never waited for a confirm")
			}
			barrier(t, p, q)
			ctx.end()
			var got outcome
			select {
			case got = <-res:
			case <-time.After(10 * time.Second):
				t.Fatal("EnqueueBatch did not return after its context ended")
			}

			var be *producer.BatchError
			if tc.ran == tc.tasks && got.err != nil {
				t.Fatalf("err = %v, want nil: every task was confirmed", got.err)
			}
			if tc.ran < tc.tasks && (!errors.As(got.err, &be) || be.Failed != tc.tasks-tc.ran) {
				t.Fatalf("err = %v, want a *BatchError with %d failures", got.err, tc.tasks-tc.ran)
			}
			for i, id := range got.ids {
				var err error
				if be != nil {
					err = be.Errs[i]
				}
				if i < tc.ran && (id == "" || err != nil) {
					t.Errorf("task %d was confirmed, reported id %q, error %v", i, id, err)
				}
				if i >= tc.ran && (id != "" || !errors.Is(err, context.Canceled)) {
					t.Errorf("task %d was never sent, reported id %q, error %v", i, id, err)
				}
			}
			if n := b.Ready(q); n != tc.ran+2 {
				t.Errorf("queue holds %d, want %d tasks and 2 barriers", n, tc.ran)
			}
		})
	}
}

// A task delayed to two queues goes into the delay levels as two copies.
// When the second cannot be sent (here its context ended between the two
// publishes), the first is still waited for, and the error says which
// queue got the task and which did not, so that the caller sends it again
// to that one only, with the same id.
func TestDelayedCopiesReportWhichQueuesGotTheTask(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	qa, qb, x := b.Queue("a"), b.Queue("b"), b.Exchange("fanout-by-key")
	topo := routing.Topology{
		Exchanges: []routing.Exchange{{Name: x}},
		Queues:    []routing.Queue{{Name: qa}, {Name: qb}},
		Bindings:  []routing.Binding{{Exchange: x, Queue: qa, Key: "k"}, {Exchange: x, Queue: qb, Key: "k"}},
	}
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, Channels: 1, Topology: topo,
		Routes: routing.NewTable().Add("note", routing.Route{Exchange: x, Key: "k"})})
	barrier(t, p, qa)

	ctx := newEndingCtx(1) // the first copy's publish, not the second's
	res := make(chan error, 1)
	go func() {
		_, err := producer.Enqueue(ctx, p, noteTask, Note{Text: "delayed"}, producer.WithDelay(time.Second))
		res <- err
	}()
	var err error
	select {
	case <-ctx.waiting:
		barrier(t, p, qa) // the first copy's confirm has arrived
		ctx.end()
		err = <-res
	case err = <-res:
		t.Errorf("Enqueue returned without waiting for the copy it had sent")
	case <-time.After(10 * time.Second):
		t.Fatal("Enqueue never returned")
	}
	var qe *producer.QueuesError
	if !errors.As(err, &qe) {
		t.Fatalf("err = %v, want a *QueuesError", err)
	}
	if qe.ID == "" || len(qe.Enqueued) != 1 || qe.Enqueued[0] != qa || len(qe.Failed) != 1 || qe.Failed[0] != qb {
		t.Errorf("QueuesError %+v, want enqueued to %s, not to %s", qe, qa, qb)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(err, context.Canceled) = false for %v", err)
	}
	for _, s := range []string{qa, qb, qe.ID, "WithQueue"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}

	// As the error advises: the missing queue only, with the same id.
	if _, err := p.Enqueue(warrentest.Context(t, 10*time.Second), noteTask.New(Note{Text: "delayed"}),
		producer.WithQueue(qb), producer.WithID(qe.ID), producer.WithDelay(time.Second)); err != nil {
		t.Fatal(err)
	}
	warrentest.Eventually(t, 15*time.Second, func() bool { return b.Ready(qa) == 3 && b.Ready(qb) == 1 },
		"ready: %s=%d (want 2 barriers and the task), %s=%d (want the task)", qa, b.Ready(qa), qb, b.Ready(qb))
	ids := map[string]int{}
	for _, q := range []string{qa, qa, qa, qb} {
		d, _ := b.Get(q)
		ids[d.MessageId]++
	}
	if ids[qe.ID] != 2 {
		t.Errorf("task %s reached the queues %d times, want once each", qe.ID, ids[qe.ID])
	}
}
