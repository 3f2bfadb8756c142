package runner_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
)

// /readyz says, for people, which node the worker is on: the URL it
// reached among -broker's, its password hidden. The status code alone is
// for the kubelet, and stays 200 or 503.
func TestReadyzNamesTheNode(t *testing.T) {
	b := brokertest.New(t)
	q := b.Queue("readyz")
	pu, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := pu.User.Password()
	if !ok || pw == "" {
		t.Fatal("the test broker's URL has no password to look for")
	}
	var urls []string
	var pxs []*tcpproxy.Proxy
	for range 2 {
		px, err := tcpproxy.Start(brokertest.Addr(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = px.Close() })
		pxs = append(pxs, px)
		urls = append(urls, brokertest.WithHost(b.URL, px.Addr()))
	}
	for _, px := range pxs {
		px.SetRefuse(true) // every node down at first
	}
	addr := freeAddr(t)
	reg := task.NewRegistry()
	reg.MustRegister(task.Define[struct{}]("noop").Handler(func(context.Context, struct{}) error { return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- runner.Run(ctx, []string{"-queues", q, "-metrics-addr", addr, "-broker", strings.Join(urls, ","), "-shutdown-timeout", "2s"},
			&syncBuffer{}, reg, routing.Topology{})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-code:
		case <-time.After(20 * time.Second):
			t.Error("runner did not stop")
		}
	})

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
