package runner_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
)

// noBroker is a broker URL nobody answers: the HTTP listener comes up
// before the first connect, so these tests need no RabbitMQ.
const noBroker = "amqp://guest:guest@127.0.0.1:1/"

// runListening starts the runner with -metrics-addr addr until the test
// ends, waiting for /healthz.
func runListening(t *testing.T, addr, probe string) {
	t.Helper()
	reg := noopRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- runner.Run(ctx, []string{"-queues", "listen-test", "-metrics-addr", addr, "-broker", noBroker, "-shutdown-timeout", "1s"},
			&testenv.Buffer{}, reg, routing.Topology{})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-code:
		case <-time.After(15 * time.Second):
			t.Error("runner did not stop")
		}
	})
	brokertest.Eventually(t, 10*time.Second, func() bool { c, _ := httpGet(probe, "/healthz"); return c == 200 }, "/healthz never answered on "+probe)
}

// otherLoopback is an address of this host that is not 127.0.0.1: on Linux
// all of 127.0.0.0/8 is local without configuration.
const otherLoopback = "127.0.0.2"

// claimable reports whether port is free to listen on at otherLoopback,
// which it is not while someone listens on the wildcard address.
func claimable(t *testing.T, port string) bool {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(otherLoopback, port))
	if err != nil {
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("listen on %s: %v (want success or address in use)", otherLoopback, err)
		}
		return false
	}
	_ = ln.Close()
	return true
}

// -metrics-addr 127.0.0.1:<port> listens on loopback only: the same port
// on another local address is unreachable and free. The wildcard case is
// the control that shows the check can fail.
func TestMetricsAddrBindsWhereTold(t *testing.T) {
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	runListening(t, addr, addr)
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(otherLoopback, port), time.Second); err == nil {
		_ = c.Close()
		t.Errorf("-metrics-addr %s answers on %s too", addr, otherLoopback)
	}
	if !claimable(t, port) {
		t.Errorf("-metrics-addr %s holds port %s on every address", addr, port)
	}

	_, wport, _ := net.SplitHostPort(freeAddr(t))
	runListening(t, ":"+wport, "127.0.0.1:"+wport)
	if claimable(t, wport) {
		t.Errorf("-metrics-addr :%s should hold the port on every address, %s included", wport, otherLoopback)
	}
}

// An address already in use fails the start at once, exit code 1, with a
// log line naming the address and the reason.
func TestMetricsAddrInUseIsAStartupError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	reg := noopRegistry()
	var logs testenv.Buffer
	code := make(chan int, 1)
	go func() {
		code <- runner.Run(context.Background(), []string{"-queues", "listen-test", "-metrics-addr", addr, "-broker", noBroker}, &logs, reg, routing.Topology{})
	}()
	select {
	case c := <-code:
		if c != 1 {
			t.Errorf("exit code %d, want 1", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the runner kept running with its metrics address taken")
	}
	out := logs.String()
	for _, want := range []string{"cannot listen for metrics", addr, "address already in use"} {
		if !strings.Contains(out, want) {
			t.Errorf("log should say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "worker started") {
		t.Errorf("the worker started although its HTTP listener failed:\n%s", out)
	}
}
