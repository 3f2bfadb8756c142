//go:build fault

package faulttest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

var tlsItem = task.Define[Item]("tls_item")

// A second RabbitMQ node with only a TLS listener that demands client
// certificates: warren works over amqps:// with a CA file and a client
// certificate, is refused with a clear error without one, and never shows
// the broker password, whether the password is right, wrong or the broker
// unreachable.
func TestBrokerTLS(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	password := "Pw-" + randHex(t, 8) // distinctive: found nowhere else
	node := startTLSNode(t, pki, "warren", password)
	url := fmt.Sprintf("amqps://warren:%s@127.0.0.1:%d/", password, node.TLSPort)

	t.Run("ClientCertificates", func(t *testing.T) {
		cfg := tlsLoad(t, pki.CA, pki.ClientCert, pki.ClientKey)
		q := "tls-" + randHex(t, 4)
		const n = 50
		var mu sync.Mutex
		seen := map[int]bool{}
		reg := task.NewRegistry()
		reg.MustRegister(tlsItem.Handler(func(_ context.Context, it Item) error {
			mu.Lock()
			defer mu.Unlock()
			seen[it.N] = true
			return nil
		}))
		w, err := worker.New(worker.Config{Conn: conn.Config{URL: url, TLS: cfg}, Queues: []string{q}, Registry: reg, ShutdownTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
		}()
		brokertest.Eventually(t, 20*time.Second, w.Ready, "worker never ready over amqps://")

		p, err := producer.New(producer.Config{Conn: conn.Config{URL: url, TLS: cfg}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ectx, ecancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer ecancel()
		for i := 0; i < n; i++ {
			if _, err := p.Enqueue(ectx, tlsItem.New(Item{N: i}), producer.WithQueue(q)); err != nil {
				t.Fatalf("enqueue %d over amqps://: %v", i, err)
			}
		}
		brokertest.Eventually(t, 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == n
		}, "the worker did not handle every task sent over amqps://")

		// The broker's own view: both connections are TLS and present the
		// client certificate.
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		out, err := node.ctl(cctx, "list_connections", "--no-table-headers", "--silent", "name", "ssl", "peer_cert_subject")
		if err != nil {
			t.Fatalf("list_connections: %v\n%s", err, out)
		}
		var conns int
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			conns++
			if !strings.Contains(line, "true") || !strings.Contains(line, pki.ClientSubject) {
				t.Errorf("connection without TLS or the client certificate: %q", line)
			}
		}
		if conns < 2 {
			t.Errorf("broker lists %d connections, want the worker's and the producer's:\n%s", conns, out)
		}
	})

	t.Run("RefusedWithoutClientCertOrCA", func(t *testing.T) {
		cases := []struct {
			name string
			cfg  *tls.Config
			want []string // one is in the error: what went wrong
		}{
			// Under TLS 1.3 the broker's alert may arrive or be lost
			// behind a reset; the broker layer then adds the hint.
			{"no client certificate", tlsLoad(t, pki.CA, "", ""), []string{"certificate required", "no client certificate is configured"}},
			{"server not trusted", tlsLoad(t, "", pki.ClientCert, pki.ClientKey), []string{"certificate signed by unknown authority"}},
		}
		for _, c := range cases {
			p, err := producer.New(producer.Config{Conn: conn.Config{URL: url, TLS: c.cfg}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = p.Enqueue(ctx, tlsItem.New(Item{}), producer.WithQueue("tls-refused"))
			cancel()
			_ = p.Close()
			switch {
			case err == nil:
				t.Errorf("%s: enqueue succeeded", c.name)
			case !errors.Is(err, context.DeadlineExceeded) || !tlsContainsAny(err.Error(), c.want):
				t.Errorf("%s: error %q should be a deadline error carrying %q", c.name, err, c.want)
			case strings.Contains(err.Error(), password):
				t.Errorf("%s: error %q shows the password", c.name, err)
			default:
				t.Logf("%s: %v", c.name, err)
			}
		}
	})

	t.Run("PasswordsNeverShown", func(t *testing.T) {
		t.Setenv(runner.EnvTLSCA, pki.CA)
		t.Setenv(runner.EnvTLSCert, pki.ClientCert)
		t.Setenv(runner.EnvTLSKey, pki.ClientKey)
		cfg := tlsLoad(t, pki.CA, pki.ClientCert, pki.ClientKey)
		wrong := "Wrong-" + randHex(t, 8)
		cases := []struct {
			name     string
			url      string
			secret   string
			works    bool
			errorSay string // in the producer's error and the worker's log when it does not work
		}{
			{"right password", url, password, true, ""},
			{"wrong password", fmt.Sprintf("amqps://warren:%s@127.0.0.1:%d/", wrong, node.TLSPort), wrong, false, "403"},
			{"unreachable", fmt.Sprintf("amqps://warren:%s@127.0.0.1:%d/", password, freePort(t)), password, false, "connection refused"},
		}
		for _, c := range cases {
			t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
				q := "tls-pw-" + randHex(t, 4)
				var handled atomic.Int64
				reg := task.NewRegistry()
				reg.MustRegister(tlsItem.Handler(func(context.Context, Item) error { handled.Add(1); return nil }))
				addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
				var logs testenv.Buffer
				ctx, cancel := context.WithCancel(context.Background())
				code := make(chan int, 1)
				go func() {
					code <- runner.Run(ctx, []string{"-queues", q, "-broker", c.url, "-metrics-addr", addr,
						"-log-level", "debug", "-shutdown-timeout", "2s"}, &logs, reg, routing.Topology{})
				}()
				stopped := false
				stop := func() {
					if stopped {
						return
					}
					stopped = true
					cancel()
					select {
					case rc := <-code:
						if rc != 0 {
							t.Errorf("worker exit code %d, want 0:\n%s", rc, logs.String())
						}
					case <-time.After(20 * time.Second):
						t.Error("worker did not stop")
					}
				}
				defer stop()

				p, err := producer.New(producer.Config{Conn: conn.Config{URL: c.url, TLS: cfg}})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				var shown []string // every text warren showed: errors, /metrics, logs
				if c.works {
					brokertest.Eventually(t, 20*time.Second, func() bool { return tlsHTTPStatus(addr, "/readyz") == 200 }, "worker never ready")
					ectx, ecancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer ecancel()
					for i := 0; i < 3; i++ {
						if _, err := p.Enqueue(ectx, tlsItem.New(Item{N: i}), producer.WithQueue(q)); err != nil {
							t.Fatal(err)
						}
					}
					brokertest.Eventually(t, 20*time.Second, func() bool { return handled.Load() >= 3 }, "tasks not handled")
				} else {
					// Two failed dials at least: the second is logged as a
					// warning, the first at info.
					brokertest.Eventually(t, 20*time.Second, func() bool {
						return strings.Count(logs.String(), "broker connect failed") >= 2
					}, "the worker never logged a failed connect")
					if s := tlsHTTPStatus(addr, "/readyz"); s != 503 {
						t.Errorf("/readyz = %d with the broker refusing us, want 503", s)
					}
					ectx, ecancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, err := p.Enqueue(ectx, tlsItem.New(Item{}), producer.WithQueue(q))
					ecancel()
					if err == nil {
						t.Fatal("enqueue succeeded")
					}
					if !strings.Contains(err.Error(), c.errorSay) {
						t.Errorf("enqueue error %q should say %q", err, c.errorSay)
					}
					if !strings.Contains(logs.String(), c.errorSay) {
						t.Errorf("worker logs should say %q:\n%s", c.errorSay, logs.String())
					}
					t.Logf("enqueue: %v", err)
					shown = append(shown, err.Error())
				}
				metrics := tlsHTTPBody(t, addr, "/metrics")
				if !strings.Contains(metrics, "warren_broker_reconnects_total") {
					t.Errorf("/metrics lacks warren's metrics:\n%s", metrics)
				}
				stop()
				shown = append(shown, metrics, logs.String())
				for _, s := range shown {
					for _, secret := range []string{password, wrong} {
						if strings.Contains(s, secret) {
							t.Errorf("the password %q is shown:\n%s", secret, s)
						}
					}
				}
				if !strings.Contains(logs.String(), "amqps://warren:xxxxx@127.0.0.1:") {
					t.Errorf("logs should name the broker with its password redacted:\n%s", logs.String())
				}
			})
		}
	})
}

func tlsContainsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func tlsLoad(t *testing.T, ca, cert, key string) *tls.Config {
	t.Helper()
	cfg, err := runner.LoadTLS(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func tlsHTTPStatus(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func tlsHTTPBody(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
