package main

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
)

func TestDelete(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "retired")
	publishN(b, q, 3)
	publishN(b, q+".dead", 2)

	r := cli(t, nil, "delete", q, "-broker", b.URL).want(t, exitUsage)
	if !strings.Contains(r.stderr, "pass -yes") || !strings.Contains(r.stderr, "3 ready messages") || !strings.Contains(r.stderr, "2 dead letters") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	cli(t, tty{strings.NewReader("n\n")}, "delete", q, "-broker", b.URL).want(t, exitFailed)
	if b.Ready(q) != 3 || b.Ready(q+".dead") != 2 {
		t.Fatalf("work %d, dead %d after refusals; want both kept", b.Ready(q), b.Ready(q+".dead"))
	}

	// A worker consuming the queue would declare it again: refused.
	ch := b.Channel()
	if _, err := ch.Consume(q, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	r = cli(t, nil, "delete", q, "-yes", "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, "has 1 consumers") || b.Ready(q+".dead") != 2 {
		t.Errorf("stderr:\n%s\ndead %d, want kept", r.stderr, b.Ready(q+".dead"))
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	// The consumer's 3 unacked messages are ready again once it is gone.
	brokertest.Eventually(t, 5*time.Second, func() bool { return b.Ready(q) == 3 }, "ready %d, want 3", b.Ready(q))

	r = cli(t, nil, "delete", q, "-yes", "-json", "-broker", b.URL).want(t, exitOK)
	if got := strings.Join(strings.Fields(r.stdout), ""); got != `{"queue":"`+q+`","ready":3,"dead":2}` {
		t.Errorf("output %q", r.stdout)
	}
	if b.Ready(q) != -1 || b.Ready(q+".dead") != -1 {
		t.Errorf("work %d, dead %d after delete; want both gone (-1)", b.Ready(q), b.Ready(q+".dead"))
	}
	r = cli(t, nil, "delete", q, "-yes", "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, `"`+q+`" does not exist`) {
		t.Errorf("deleting again: stderr:\n%s", r.stderr)
	}
}
