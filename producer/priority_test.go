package producer_test

import (
	"testing"
	"time"

	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
)

// A definition's priority is what an enqueue without WithPriority sends;
// WithPriority wins, even with 0; a delayed copy carries it into the delay
// levels.
func TestPriorityReachesTheBroker(t *testing.T) {
	t.Parallel()
	b := warrentest.NewBroker(t)
	q := b.Queue("prio")
	p := warrentest.NewProducer(t, producer.Config{Conn: b.Conn(),
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q, MaxPriority: 9}}},
		Routes:   routing.NewTable().SetDefault(routing.ToQueue(q))})
	rec := b.Record(t, q)
	urgent := task.Define[Note]("urgent_note", task.WithPriority(7))
	ctx := warrentest.Context(t, 10*time.Second)

	for _, tc := range []struct {
		name string
		def  *task.Def[Note]
		opts []producer.Option
		want uint8
	}{
		{"no priority anywhere", noteTask, nil, 0},
		{"the definition's", urgent, nil, 7},
		{"the enqueue's over the definition's", urgent, []producer.Option{producer.WithPriority(2)}, 2},
		{"the enqueue's 0 over the definition's", urgent, []producer.Option{producer.WithPriority(0)}, 0},
		{"the enqueue's on a task without one", noteTask, []producer.Option{producer.WithPriority(9)}, 9},
		{"the definition's, delayed", urgent, []producer.Option{producer.WithDelay(time.Hour)}, 7},
	} {
		if _, err := producer.Enqueue(ctx, p, tc.def, Note{Text: tc.name}, tc.opts...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := warrentest.RequireEnqueued(t, rec, tc.def)
		if got.Payload.Text != tc.name || got.Priority != tc.want {
			t.Errorf("%s: enqueued %q with priority %d, want %d", tc.name, got.Payload.Text, got.Priority, tc.want)
		}
	}
	rec.RequireEmpty(t)
}

// A definition's priority costs an enqueue nothing: building the message
// allocates the same with it or without, and with no options at all.
func TestPriorityAllocatesNothing(t *testing.T) {
	urgent := task.Define[Note]("urgent_note", task.WithPriority(7))
	plain, prio := noteTask.New(Note{Text: "x"}), urgent.New(Note{Text: "x"})
	build := func(tk task.Task, opts ...producer.Option) func() {
		return func() {
			if _, err := producer.NewMessage(tk, opts...); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := minAllocs(build(plain))
	if got := minAllocs(build(prio)); got != base {
		t.Errorf("a definition's priority: %v allocations per message, want %v as without", got, base)
	}
	withOpt := minAllocs(build(plain, producer.WithMaxAttempts(3)))
	if got := minAllocs(build(plain, producer.WithPriority(3))); got != withOpt {
		t.Errorf("WithPriority: %v allocations per message, want %v as another option", got, withOpt)
	}
}

// minAllocs is the fewest allocations per call of f over a few
// measurements. testing.AllocsPerRun counts the whole process's
// allocations, so goroutines left by earlier tests (a producer's
// connection reader, say) can add to one measurement, never take away:
// the least is f's own (a CI run once read 9 against 8 so).
func minAllocs(f func()) float64 {
	least := testing.AllocsPerRun(200, f)
	for range 4 {
		least = min(least, testing.AllocsPerRun(200, f))
	}
	return least
}
