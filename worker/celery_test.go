package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/celery"
	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// celeryMsg is a Celery protocol 2 message for task name with id, args
// and an embed, as a Celery app publishes it.
func celeryMsg(name, id, args, embed string) amqp.Publishing {
	return amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", CorrelationId: id,
		Headers: amqp.Table{"lang": "py", "task": name, "id": id, "root_id": id, "retries": int32(0)},
		Body:    []byte(fmt.Sprintf(`[%s, {}, %s]`, args, embed)),
	}
}

func sig(name, options string) string {
	return fmt.Sprintf(`{"task": %q, "args": [], "kwargs": {}, "options": %s, "subtask_type": null, "immutable": false}`, name, options)
}

// What a Celery workflow's next task meets on its way out of a warren
// worker: a step this worker runs goes back to the queue it came from; a
// step whose queue does not exist, or whose id from the sender's options
// is over AMQP's 255 bytes, dead-letters the finished task with the cause
// in its error (a replay once it is mended sends it), never requeueing it
// for ever; an errback with no queue still leaves the failed task's dead
// letter.
func TestCeleryNextTaskRouting(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("celery")
	missing := b.Queue("missing") // named, never declared
	double := celery.DefineWithResult[int, int]("c.double")
	fail := celery.Define[string]("c.fail", task.WithMaxAttempts(1))
	var mu sync.Mutex
	var doubled []int
	reg := task.NewRegistry()
	reg.MustRegister(
		double.Handler(func(ctx context.Context, n int) (int, error) {
			mu.Lock()
			doubled = append(doubled, n)
			mu.Unlock()
			return 2 * n, nil
		}),
		fail.Handler(func(ctx context.Context, why string) error { return retry.Permanent(errors.New(why)) }),
	)
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: b.URL}, Queues: []string{q}, Registry: reg,
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)

	noOpts := `{}`
	b.Publish("", q, celeryMsg("c.double", "here", `[4]`, fmt.Sprintf(`{"chain": [%s]}`, sig("c.double", noOpts))))
	b.Publish("", q, celeryMsg("c.double", "nowhere", `[3]`, fmt.Sprintf(`{"chain": [%s]}`, sig("c.double", fmt.Sprintf(`{"queue": %q}`, missing)))))
	b.Publish("", q, celeryMsg("c.double", "toolong", `[5]`, fmt.Sprintf(`{"chain": [%s]}`, sig("c.double", fmt.Sprintf(`{"task_id": %q}`, strings.Repeat("x", 300))))))
	b.Publish("", q, celeryMsg("c.fail", "failed", `["boom"]`, fmt.Sprintf(`{"errbacks": [%s]}`, sig("c.double", fmt.Sprintf(`{"queue": %q}`, missing)))))

	dead := map[string]amqp.Delivery{}
	var ids []string // printed through the pointer on timeout
	brokertest.Eventually(t, 20*time.Second, func() bool {
		if d, ok := b.Get(routing.DeadQueue(q)); ok {
			id := d.Headers[task.HeaderID].(string)
			dead[id], ids = d, append(ids, id+": "+fmt.Sprint(d.Headers[task.HeaderError]))
		}
		mu.Lock()
		defer mu.Unlock()
		return len(dead) == 3 && len(doubled) == 4
	}, "want 3 dead letters (nowhere, toolong, failed) and 4 runs; dead letters of %v", &ids)

	mu.Lock()
	if !hasAll(doubled, 4, 8, 3, 5) {
		t.Errorf("c.double ran with %v, want 4, 8 (the next step, with 4's result, back on its queue), 3 and 5", doubled)
	}
	mu.Unlock()
	d := dead["nowhere"]
	if d.Headers[task.HeaderReason] != string(outcome.ReasonPermanent) || !strings.Contains(fmt.Sprint(d.Headers[task.HeaderError]), "the next task of its workflow cannot be sent") ||
		!strings.Contains(fmt.Sprint(d.Headers[task.HeaderError]), missing) {
		t.Errorf("the task whose next step has no queue: dead letter %v, want reason permanent and an error naming %s", d.Headers, missing)
	}
	if d := dead["toolong"]; d.Headers[task.HeaderReason] != string(outcome.ReasonPermanent) || !strings.Contains(fmt.Sprint(d.Headers[task.HeaderError]), "255") {
		t.Errorf("the task whose next step has a 300-byte id: dead letter %v, want reason permanent and an error naming the limit", d.Headers)
	}
	if d := dead["failed"]; d.Headers[task.HeaderReason] != string(outcome.ReasonPermanent) || d.Headers[task.HeaderError] != "boom" {
		t.Errorf("the failed task with an errback that has no queue: dead letter %v, want reason permanent, error boom", d.Headers)
	}
	if s := w.Stats(); s.Succeeded != 2 || s.Dead != 3 || s.Requeued != 0 {
		t.Errorf("stats %+v, want 2 succeeded (4 and 8), 3 dead, none requeued", s)
	}
}

func hasAll(got []int, want ...int) bool {
	seen := map[int]int{}
	for _, n := range got {
		seen[n]++
	}
	for _, n := range want {
		if seen[n] == 0 {
			return false
		}
		seen[n]--
	}
	return len(got) == len(want)
}
