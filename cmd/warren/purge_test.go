package main

import (
	"strings"
	"testing"

	"github.com/warrenq/warren/internal/broker/brokertest"
)

func TestPurge(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	publishN(b, q, 4)
	publishN(b, q+".dead", 2)

	r := cli(t, nil, "purge", q, "-broker", b.URL).want(t, exitUsage)
	if !strings.Contains(r.stderr, "pass -yes") || !strings.Contains(r.stderr, q) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	r = cli(t, tty{strings.NewReader("")}, "purge", q, "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, "delete the 4 ready messages of queue") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if n := b.Ready(q); n != 4 {
		t.Fatalf("queue holds %d after refusals, want 4", n)
	}

	r = cli(t, tty{strings.NewReader("y\n")}, "purge", q, "-broker", b.URL).want(t, exitOK)
	if r.stdout != "purged 4 messages from queue \""+q+"\"\n" {
		t.Errorf("output %q", r.stdout)
	}
	if b.Ready(q) != 0 || b.Ready(q+".dead") != 2 {
		t.Errorf("work %d, dead %d; want 0 and the 2 dead letters kept", b.Ready(q), b.Ready(q+".dead"))
	}

	publishN(b, q, 1)
	r = cli(t, nil, "purge", "-yes", "-json", q, "-broker", b.URL).want(t, exitOK)
	if strings.Join(strings.Fields(r.stdout), "") != `{"queue":"`+q+`","purged":1}` {
		t.Errorf("output %q", r.stdout)
	}
}

func TestPurgeMissingQueue(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	missing := b.Queue("nosuch")
	r := cli(t, nil, "purge", missing, "-yes", "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, `"`+missing+`" does not exist`) || r.stdout != "" {
		t.Errorf("stdout %q stderr:\n%s", r.stdout, r.stderr)
	}
	if b.Ready(missing) != -1 {
		t.Error("purge created the queue")
	}
}
