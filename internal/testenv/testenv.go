// Package testenv tells tests where the test broker is and gives them
// names of their own and a way to wait. It is the part that package
// warrentest (public, on internal/broker) and internal/broker/brokertest (raw
// AMQP, for the broker's own tests) share; it imports no AMQP.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
)

// EnvURL names the variable that overrides the test broker's URL.
const EnvURL = "WARREN_TEST_URL"

// DefaultURL is the local broker the README's set-up starts: the one
// every component reaches by default.
const DefaultURL = conn.DefaultURL

// LocalURL returns the test broker's URL without checking it.
func LocalURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// URL returns the test broker's URL after checking that it answers. When
// it does not, the test is skipped, or failed when CI is set: in CI a test
// that needs the broker must never pass by skipping.
func URL(t testing.TB) string {
	t.Helper()
	u := LocalURL()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	host := pu.Host
	if pu.Port() == "" {
		host = net.JoinHostPort(pu.Hostname(), "5672")
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		msg := "no RabbitMQ at " + host + " (start one, or set " + EnvURL + "): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = c.Close()
	return u
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// Prefix returns a prefix for the names of t's queues and exchanges:
// "wtest.", the end of the test's name, and random hex, so that tests
// running in parallel, or again, never share a name.
func Prefix(t testing.TB) string {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "-"), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "wtest." + name + "." + hex.EncodeToString(rnd[:]) + "."
}

// Names hands out the names of one test's queues and exchanges and
// remembers them, so that its cleanup can delete them. It is safe for
// concurrent use.
type Names struct {
	prefix string

	mu        sync.Mutex
	queues    []string
	exchanges []string
}

// NewNames returns the names of t, under Prefix(t).
func NewNames(t testing.TB) *Names { return &Names{prefix: Prefix(t)} }

// Queue returns a name for a queue of the test and remembers it and its
// dead-letter queue.
func (n *Names) Queue(base string) string {
	q := n.prefix + base
	n.Track(q, q+".dead")
	return q
}

// Exchange returns a name for an exchange of the test and remembers it.
func (n *Names) Exchange(base string) string {
	x := n.prefix + "x." + base
	n.mu.Lock()
	n.exchanges = append(n.exchanges, x)
	n.mu.Unlock()
	return x
}

// Track remembers queues made under other names.
func (n *Names) Track(queues ...string) {
	n.mu.Lock()
	n.queues = append(n.queues, queues...)
	n.mu.Unlock()
}

// Made returns the queues and exchanges handed out or tracked so far.
func (n *Names) Made() (queues, exchanges []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.queues...), append([]string(nil), n.exchanges...)
}

// Eventually polls cond every 10ms until it holds, or fails the test with
// msg once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address (127.0.0.1:port) on which nothing
// listened a moment ago: for a server a test starts, or as an address
// where nothing answers. Another process may take the port meanwhile.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
