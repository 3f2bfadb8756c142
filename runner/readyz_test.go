package runner_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
)

// /readyz says, for people, which node the worker is on: the URL it
// reached among -broker's, its password hidden. The status code alone is
// for the kubelet, and stays 200 or 503.
func TestReadyzNamesTheNode(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("readyz")
	pw := brokertest.Password(t, b.URL)
	pxs, urls := brokertest.Nodes(t, 2)
	for _, px := range pxs {
		px.SetRefuse(true) // every node down at first
	}
	addr, _ := launch(t, noopRegistry(), routing.Topology{}, "-queues", q, "-broker", strings.Join(urls, ","), "-shutdown-timeout", "2s")

	var c int
	var body string
	// await polls /readyz until it answers want with a body naming node
	// ("" for none).
	await := func(want int, node string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, body = httpGet(addr, "/readyz")
			if c == want && (node == "" || strings.Contains(body, "node="+node+"\n")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %q, want %d naming node %q", c, body, want, node)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if strings.Contains(body, ":"+pw+"@") {
			t.Errorf("/readyz shows the broker password: %q", body)
		}
	}

	await(http.StatusServiceUnavailable, "")
	if strings.Contains(body, "node=") {
		t.Errorf("/readyz = %q with every node refusing: it names a node it is not on", body)
	}
	pxs[1].SetRefuse(false)
	await(http.StatusOK, conn.Redact(urls[1]))
	if !strings.HasPrefix(body, "ready ") {
		t.Errorf("/readyz = %q, want it to start with \"ready \"", body)
	}

	// Its node goes away: the worker moves to the other, and so does
	// the body.
	pxs[0].SetRefuse(false)
	pxs[1].SetRefuse(true)
	pxs[1].Cut()
	await(http.StatusOK, conn.Redact(urls[0]))
}
