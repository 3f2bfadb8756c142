package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// Node names the node the worker reached, password hidden, and follows it
// when the connection moves to another node of the list; "" before Run
// and after it.
func TestNodeNamesTheBrokerReached(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("node")
	pxs, urls := brokertest.Nodes(t, 2)
	pxs[0].SetRefuse(true) // the first node is down: the worker goes on to the second

	w, err := worker.New(worker.Config{Conn: conn.Config{URL: strings.Join(urls, ",")}, Queues: []string{q}, Registry: task.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if n := w.Node(); n != "" {
		t.Errorf("Node() = %q before Run, want \"\"", n)
	}
	stop := warrentest.Run(t, w)
	if n, want := w.Node(), conn.Redact(urls[1]); n != want {
		t.Errorf("Node() = %q, want the second node %q", n, want)
	}
	if n, pw := w.Node(), brokertest.Password(t, b.URL); strings.Contains(n, ":"+pw+"@") {
		t.Errorf("Node() = %q shows the password", n)
	}

	// The second node goes away: the worker moves to the first.
	pxs[0].SetRefuse(false)
	pxs[1].SetRefuse(true)
	pxs[1].Cut()
	deadline := time.Now().Add(15 * time.Second)
	for !w.Ready() || w.Node() != conn.Redact(urls[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("after its node went away the worker is on %q (ready %v), want %q", w.Node(), w.Ready(), conn.Redact(urls[0]))
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop()
	if n := w.Node(); n != "" {
		t.Errorf("Node() = %q after Run returned, want \"\"", n)
	}
}
