package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/task"
)

func TestPeek(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	for k := range 3 {
		id := fmt.Sprintf("m-%d", k)
		b.Publish("", q, amqp.Publishing{MessageId: id, ContentType: task.ContentTypeJSON, Body: []byte(fmt.Sprintf(`{"n":%d}`, k)),
			Headers: amqp.Table{task.HeaderTask: "process_media", task.HeaderID: id, task.HeaderRetries: int32(k)}})
	}

	r := cli(t, nil, "peek", q, "-broker", b.URL).want(t, exitOK)
	l := lines(r.stdout)
	if len(l) != 4 || strings.Join(strings.Fields(l[0]), " ") != "ID TASK RETRIES ETA REDELIVERED PAYLOAD" {
		t.Fatalf("output:\n%s", r.stdout)
	}
	for k := range 3 {
		if got, want := strings.Join(strings.Fields(l[k+1]), " "), fmt.Sprintf(`m-%d process_media %d - false {"n":%d}`, k, k, k); got != want {
			t.Errorf("row %d %q, want %q", k, got, want)
		}
	}

	// -n: fewer, a footer with how many are ready, and the peeked ones are
	// now marked redelivered.
	r = cli(t, nil, "peek", q, "-n", "2", "-json", "-broker", b.URL).want(t, exitOK)
	var out struct {
		Queue    string
		Ready    int
		Messages []messageJSON
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if out.Queue != q || out.Ready != 3 || len(out.Messages) != 2 {
		t.Fatalf("output %+v", out)
	}
	if m := out.Messages[1]; m.ID != "m-1" || m.Task != "process_media" || m.Queue != q || m.Retries != 1 || !m.Redelivered ||
		compact(m.Payload) != `{"n":1}` || m.Headers[task.HeaderID] != "m-1" {
		t.Errorf("second message %+v", m)
	}
	r = cli(t, nil, "peek", q, "-n", "1", "-broker", b.URL).want(t, exitOK)
	if l := lines(r.stdout); len(l) != 3 || l[2] != "1 of 3 ready messages of "+q {
		t.Errorf("output:\n%s", r.stdout)
	}

	// All three are still there, in order.
	for k := range 3 {
		d, ok := b.Get(q)
		if want := fmt.Sprintf("m-%d", k); !ok || d.MessageId != want {
			t.Errorf("message %d after the peeks: %q, want %s", k, d.MessageId, want)
		}
	}
	r = cli(t, nil, "peek", q, "-broker", b.URL).want(t, exitOK)
	if r.stdout != "no ready messages in queue \""+q+"\"\n" {
		t.Errorf("output %q", r.stdout)
	}
}

func TestPeekMissingQueue(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	missing := b.Queue("nosuch")
	r := cli(t, nil, "peek", missing, "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, `"`+missing+`" does not exist`) || r.stdout != "" {
		t.Errorf("stdout %q stderr:\n%s", r.stdout, r.stderr)
	}
	if b.Ready(missing) != -1 {
		t.Error("peek created the queue")
	}
}
