package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/task"
)

// letter is a dead letter as a worker writes it.
type letter struct {
	id, task, reason, err string
	attempts              int32
}

// deadSetup declares a work queue and puts letters into its dead-letter
// queue, oldest first.
func deadSetup(t *testing.T, letters ...letter) (*brokertest.Broker, string) {
	t.Helper()
	b := brokertest.New(t)
	q := workQueue(t, b, "orders")
	died := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, l := range letters {
		h := amqp.Table{
			task.HeaderTask:     l.task,
			task.HeaderID:       l.id,
			task.HeaderRetries:  l.attempts - 1,
			task.HeaderReason:   l.reason,
			task.HeaderError:    l.err,
			task.HeaderAttempts: l.attempts,
			task.HeaderQueue:    q,
			task.HeaderDiedAt:   died.Format(time.RFC3339),
		}
		if l.attempts > 1 {
			h[task.HeaderFirstError] = "first: " + l.err // a worker writes it on the first retry
		}
		b.Publish("", q+".dead", amqp.Publishing{
			MessageId:   l.id,
			ContentType: task.ContentTypeJSON,
			Body:        []byte(`{"order":"` + l.id + `"}`),
			Headers:     h,
		})
	}
	return b, q
}

var threeLetters = []letter{
	{"id-1", "charge", "exhausted", "card declined\nretry later", 5},
	{"id-2", "refund", "permanent", "no such order", 1},
	{"id-3", "charge", "unknown_task", "no handler for charge", 1},
}

func TestDeadList(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t, threeLetters...)
	r := cli(t, nil, "dead", "list", q, "-broker", b.URL).want(t, exitOK)
	l := lines(r.stdout)
	if len(l) != 4 || strings.Join(strings.Fields(l[0]), " ") != "ID TASK REASON ATTEMPTS DIED-AT ERROR" {
		t.Fatalf("output:\n%s", r.stdout)
	}
	if got := strings.Join(strings.Fields(l[1]), " "); got != "id-1 charge exhausted 5 2026-03-01T12:00:00Z card declined …" {
		t.Errorf("first row %q", got)
	}
	if !strings.HasPrefix(l[2], "id-2") || !strings.HasPrefix(l[3], "id-3") {
		t.Errorf("not oldest first:\n%s", r.stdout)
	}

	// -n: fewer, and a footer that says how many there are.
	r = cli(t, nil, "dead", "list", q, "-n", "2", "-broker", b.URL).want(t, exitOK)
	if l := lines(r.stdout); len(l) != 4 || l[3] != "2 of 3 dead letters of "+q+"; -n 3 shows more" {
		t.Errorf("output:\n%s", r.stdout)
	}

	r = cli(t, nil, "dead", "list", q, "-json", "-broker", b.URL).want(t, exitOK)
	var out struct {
		Queue     string
		DeadQueue string `json:"dead_queue"`
		Total     int
		Letters   []letterJSON
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if out.Queue != q || out.Total != 3 || out.DeadQueue != q+".dead" || len(out.Letters) != 3 {
		t.Fatalf("output %+v", out)
	}
	first := out.Letters[0]
	if first.ID != "id-1" || first.Task != "charge" || first.Queue != q || first.Reason != "exhausted" || first.Attempts != 5 ||
		first.Error != "card declined\nretry later" || first.FirstError != "first: card declined\nretry later" || out.Letters[1].FirstError != "" || first.DiedAt == nil || !first.DiedAt.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) ||
		compact(first.Payload) != `{"order":"id-1"}` {
		t.Errorf("first letter %+v", first)
	}
	// Listing takes nothing away.
	if n := b.Ready(q + ".dead"); n != 3 {
		t.Errorf("dead queue holds %d after listing, want 3", n)
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return err.Error()
	}
	return buf.String()
}

func TestDeadListEmptyAndMissing(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t)
	r := cli(t, nil, "dead", "list", q, "-broker", b.URL).want(t, exitOK)
	if r.stdout != "no dead letters in "+q+".dead\n" {
		t.Errorf("output %q", r.stdout)
	}
	missing := b.Queue("nosuch")
	for _, args := range [][]string{
		{"dead", "list", missing},
		{"dead", "replay", missing},
		{"dead", "purge", missing, "-yes"},
		{"dead", "delete", missing, "-all", "-yes"},
	} {
		r := cli(t, nil, append(args, "-broker", b.URL)...).want(t, exitFailed)
		if !strings.Contains(r.stderr, `"`+missing+`.dead" does not exist`) || !strings.Contains(r.stderr, "warren queues") {
			t.Errorf("%v: stderr:\n%s", args[1], r.stderr)
		}
	}
	if b.Ready(missing+".dead") != -1 || b.Ready(missing) != -1 {
		t.Error("a missing queue was created")
	}
}

func TestDeadReplay(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t, threeLetters...)
	r := cli(t, nil, "dead", "replay", q, "-task", "charge", "-broker", b.URL).want(t, exitOK)
	if r.stdout != "moved 2 dead letters of task charge from "+q+".dead back to their queue\n" {
		t.Errorf("output %q", r.stdout)
	}
	if n := b.Ready(q); n != 2 {
		t.Fatalf("work queue holds %d, want 2", n)
	}
	for _, id := range []string{"id-1", "id-3"} {
		d, _ := b.Get(q)
		if d.MessageId != id || d.Headers[task.HeaderTask] != "charge" || d.Headers[task.HeaderReason] != nil || d.Headers[task.HeaderRetries] != nil {
			t.Errorf("replayed %s: id %s headers %v", id, d.MessageId, d.Headers)
		}
	}
	left, ok := b.Get(q + ".dead")
	if !ok || left.MessageId != "id-2" {
		t.Errorf("left in the dead letters: %q", left.MessageId)
	}
}

func TestDeadReplayN(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t, threeLetters...)
	r := cli(t, nil, "dead", "replay", q, "-n", "1", "-json", "-broker", b.URL).want(t, exitOK)
	var out struct {
		Queue string
		Moved int
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Moved != 1 || out.Queue != q {
		t.Errorf("output %s (%v)", r.stdout, err)
	}
	if b.Ready(q) != 1 || b.Ready(q+".dead") != 2 {
		t.Errorf("work %d, dead %d; want 1 and 2", b.Ready(q), b.Ready(q+".dead"))
	}
	// No -n: all the rest.
	cli(t, nil, "dead", "replay", q, "-broker", b.URL).want(t, exitOK)
	if b.Ready(q) != 3 || b.Ready(q+".dead") != 0 {
		t.Errorf("work %d, dead %d; want 3 and 0", b.Ready(q), b.Ready(q+".dead"))
	}
}

func TestDeadPurge(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t, threeLetters...)
	dq := q + ".dead"
	publishN(b, q, 1) // the work queue is not touched

	// No terminal, no -yes: refused, nothing deleted.
	r := cli(t, strings.NewReader("y\n"), "dead", "purge", q, "-broker", b.URL).want(t, exitUsage)
	if !strings.Contains(r.stderr, "pass -yes") || !strings.Contains(r.stderr, dq) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// A terminal that says no.
	r = cli(t, tty{strings.NewReader("n\n")}, "dead", "purge", q, "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, "delete the 3 dead letters in "+dq+"?") || !strings.Contains(r.stderr, "nothing was deleted") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if n := b.Ready(dq); n != 3 {
		t.Fatalf("dead queue holds %d after refusals, want 3", n)
	}
	// A terminal that says yes.
	r = cli(t, tty{strings.NewReader("yes\n")}, "dead", "purge", q, "-broker", b.URL).want(t, exitOK)
	if r.stdout != "purged 3 dead letters from "+dq+"\n" {
		t.Errorf("output %q", r.stdout)
	}
	if b.Ready(dq) != 0 || b.Ready(q) != 1 {
		t.Errorf("dead %d, work %d; want 0 and 1", b.Ready(dq), b.Ready(q))
	}
	// -yes, JSON, nothing left.
	r = cli(t, nil, "dead", "purge", q, "-yes", "-json", "-broker", b.URL).want(t, exitOK)
	if strings.Join(strings.Fields(r.stdout), "") != `{"queue":"`+q+`","purged":0}` {
		t.Errorf("output %q", r.stdout)
	}
}

// The work queue was deleted since the tasks died: the replay fails at the
// first letter, says what to do, and every dead letter stays.
func TestDeadReplayWorkQueueGone(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t, threeLetters...)
	ch := b.Channel()
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	r := cli(t, nil, "dead", "replay", q, "-json", "-broker", b.URL).want(t, exitFailed)
	for _, s := range []string{"id-1", q, "does not exist any more", "start a worker"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not say %q:\n%s", s, r.stderr)
		}
	}
	var out struct {
		Moved int
		Error string
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Moved != 0 || !strings.Contains(out.Error, "unroutable") {
		t.Errorf("output %s (%v)", r.stdout, err)
	}
	if n := b.Ready(q + ".dead"); n != 3 {
		t.Errorf("dead queue holds %d after a failed replay, want 3", n)
	}
	if n := b.Ready(q); n != -1 {
		t.Errorf("the work queue was re-created")
	}
}

// The connection dies in the middle of a replay: the command fails and
// says the rest stays, and no task is lost. Each letter is in the work
// queue, in the dead letters, or (the copy confirmed, the removal cut off)
// in both.
func TestDeadReplayConnectionCut(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t)
	const n = 400
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("id-%d", i)
		b.Publish("", q+".dead", amqp.Publishing{MessageId: id, ContentType: task.ContentTypeJSON, Body: []byte(`{}`),
			Headers: amqp.Table{task.HeaderTask: "charge", task.HeaderQueue: q, task.HeaderReason: "exhausted"}})
	}
	proxy, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	// Moving a letter sends the broker a few hundred bytes (get, publish
	// with its headers, ack): 40 KiB let a hundred or so through, after the
	// connection's set-up, and stop the replay long before the 400th, so
	// the cut always finds it midway.
	proxy.HoldAfter(40 << 10)
	done := make(chan result, 1)
	go func() {
		done <- cli(t, nil, "dead", "replay", q, "-timeout", "3s", "-broker", brokertest.WithHost(b.URL, proxy.Addr()))
	}()
	brokertest.Eventually(t, 20*time.Second, func() bool { return b.Ready(q) >= 20 }, "replay never started")
	proxy.SetRefuse(true)
	proxy.Cut()
	cut := time.Now()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("replay did not end after the connection was cut")
	}
	r.want(t, exitFailed)
	if el := time.Since(cut); el > 5*time.Second {
		t.Errorf("took %v after the cut to give up", el)
	}
	if !strings.Contains(r.stderr, "still in "+q+".dead: run the replay again") {
		t.Errorf("stderr does not say where the rest is:\n%s", r.stderr)
	}
	var moved int
	if _, err := fmt.Sscanf(r.stdout, "moved %d dead letters", &moved); err != nil || moved < 20 {
		t.Errorf("stdout %q (%v)", r.stdout, err)
	}
	seen := map[string]int{}
	inWork := 0
	for _, queue := range []string{q, q + ".dead"} {
		for {
			d, ok := b.Get(queue)
			if !ok {
				break
			}
			seen[d.MessageId]++
			if queue == q {
				inWork++
			}
		}
	}
	for i := 0; i < n; i++ {
		if id := fmt.Sprintf("id-%d", i); seen[id] == 0 {
			t.Errorf("%s lost", id)
		}
	}
	if inWork < moved {
		t.Errorf("%d in the work queue, but %d reported moved", inWork, moved)
	}
	t.Logf("%d letters: %d moved, %d in the work queue, %d copies in all", n, moved, inWork, func() int {
		c := 0
		for _, v := range seen {
			c += v
		}
		return c
	}())
}

// deadIDs takes every dead letter of q and returns their ids in order.
func deadIDs(b *brokertest.Broker, q string) []string {
	var ids []string
	for {
		d, ok := b.Get(q + ".dead")
		if !ok {
			return ids
		}
		ids = append(ids, d.MessageId)
	}
}

func TestDeadDelete(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t, threeLetters...)
	dq := q + ".dead"

	// No terminal, no -yes: refused, nothing deleted.
	r := cli(t, nil, "dead", "delete", q, "-id", "id-2", "-broker", b.URL).want(t, exitUsage)
	if !strings.Contains(r.stderr, "pass -yes") || !strings.Contains(r.stderr, "id-2") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// A terminal that says no.
	r = cli(t, tty{strings.NewReader("n\n")}, "dead", "delete", q, "-id", "id-2", "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, "delete 1 dead letters (id-2) from "+dq+"?") || !strings.Contains(r.stderr, "nothing was deleted") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if n := b.Ready(dq); n != 3 {
		t.Fatalf("dead queue holds %d after refusals, want 3", n)
	}

	// One by id, from the middle: the others stay, in order.
	r = cli(t, nil, "dead", "delete", q, "-id", "id-2", "-yes", "-broker", b.URL).want(t, exitOK)
	if r.stdout != "deleted 1 dead letters from "+dq+"\n" {
		t.Errorf("output %q", r.stdout)
	}
	r = cli(t, nil, "dead", "list", q, "-json", "-broker", b.URL).want(t, exitOK)
	var list struct{ Letters []letterJSON }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Letters) != 2 ||
		list.Letters[0].ID != "id-1" || list.Letters[1].ID != "id-3" {
		t.Fatalf("left %s (%v), want id-1 then id-3", r.stdout, err)
	}

	// An id that is not there fails the command, after deleting the rest.
	r = cli(t, nil, "dead", "delete", q, "-id", "id-3", "-id", "nope", "-id", "id-3", "-yes", "-json", "-broker", b.URL).want(t, exitFailed)
	var out struct {
		Queue   string
		Deleted int
		Missing []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Queue != q || out.Deleted != 1 || len(out.Missing) != 1 || out.Missing[0] != "nope" {
		t.Errorf("output %s (%v)", r.stdout, err)
	}
	if !strings.Contains(r.stderr, "no dead letter with id nope in "+dq) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if ids := deadIDs(b, q); len(ids) != 1 || ids[0] != "id-1" {
		t.Errorf("left %v, want [id-1]", ids)
	}
}

func TestDeadDeleteAll(t *testing.T) {
	t.Parallel()
	b, q := deadSetup(t, threeLetters...)
	dq := q + ".dead"
	publishN(b, q, 1) // the work queue is not touched
	r := cli(t, tty{strings.NewReader("y\n")}, "dead", "delete", q, "-all", "-broker", b.URL).want(t, exitOK)
	if !strings.Contains(r.stderr, "delete the 3 dead letters in "+dq+"?") || r.stdout != "deleted 3 dead letters from "+dq+"\n" {
		t.Errorf("stdout %q stderr:\n%s", r.stdout, r.stderr)
	}
	if b.Ready(dq) != 0 || b.Ready(q) != 1 {
		t.Errorf("dead %d, work %d; want 0 and 1", b.Ready(dq), b.Ready(q))
	}
	// Nothing left: nothing to ask, nothing deleted.
	r = cli(t, nil, "dead", "delete", q, "-all", "-json", "-broker", b.URL).want(t, exitOK)
	if strings.Join(strings.Fields(r.stdout), "") != `{"queue":"`+q+`","deleted":0}` {
		t.Errorf("output %q", r.stdout)
	}
}
