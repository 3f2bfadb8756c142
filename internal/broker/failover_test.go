package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/retry"
)

// nodes starts n proxies standing for the nodes of a cluster
// (brokertest.Nodes), with the URL list naming them all.
func nodes(t *testing.T, n int) ([]*tcpproxy.Proxy, []string, string) {
	t.Helper()
	pxs, urls := brokertest.Nodes(t, n)
	return pxs, urls, strings.Join(urls, ",")
}

func session(t *testing.T, sup *broker.Supervisor) *broker.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := sup.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// quick retries the whole list every few milliseconds.
var quick = retry.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2}

// A node that refuses connections is passed over for the next, at once:
// the backoff waits only once every node has failed.
func TestFirstNodeDownConnectsToTheNext(t *testing.T) {
	pxs, urls, list := nodes(t, 3)
	pxs[0].SetRefuse(true)
	// A backoff long enough to show if it were taken between nodes.
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: list}, Role: "worker",
		Backoff: retry.Backoff{Base: 10 * time.Second, Max: 10 * time.Second, Multiplier: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Close() })
	start := time.Now()
	s := session(t, sup)
	if want := conn.Redact(urls[1]); s.Node != want || sup.Node() != want {
		t.Fatalf("connected to %q (Node() %q), want the second node %q", s.Node, sup.Node(), want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v to pass over a refusing node: it waited a backoff of 10s before the next", took)
	}
}

// A lost connection moves to the next node, and from the last back to the
// first.
func TestLostConnectionMovesToTheNextNode(t *testing.T) {
	pxs, urls, list := nodes(t, 2)
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: list}, Role: "worker", Backoff: quick})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Close() })
	s := session(t, sup)
	if s.Node != conn.Redact(urls[0]) {
		t.Fatalf("first session on %q, want %q", s.Node, conn.Redact(urls[0]))
	}
	for _, next := range []int{1, 0} {
		cur := 1 - next
		pxs[cur].SetRefuse(true)
		pxs[cur].Cut()
		select {
		case <-s.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("the session did not end when its node went away")
		}
		s = session(t, sup)
		if s.Node != conn.Redact(urls[next]) {
			t.Fatalf("after node %d went away the session is on %q, want node %d %q", cur, s.Node, next, conn.Redact(urls[next]))
		}
		pxs[cur].SetRefuse(false)
	}
}

// With every node down the supervisor keeps trying all of them, and the
// error it gives a waiting caller names no password.
func TestAllNodesDown(t *testing.T) {
	pxs, urls, list := nodes(t, 2)
	for _, px := range pxs {
		px.SetRefuse(true)
	}
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: list}, Role: "worker", Backoff: quick})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = sup.Session(ctx)
	if err == nil {
		t.Fatal("a session with every node refusing")
	}
	if pw := brokertest.Password(t, urls[0]); strings.Contains(err.Error(), ":"+pw+"@") {
		t.Errorf("error leaks the password: %v", err)
	}
	pxs[1].SetRefuse(false)
	if s := session(t, sup); s.Node != conn.Redact(urls[1]) {
		t.Errorf("session on %q, want the node that came back", s.Node)
	}
}
