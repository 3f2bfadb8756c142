// Package brokertest gives tests a real RabbitMQ: its URL, names of their
// own for exchanges and queues (deleted when the test ends, so tests can
// run in parallel and never share messages), and raw AMQP helpers to
// publish, get and count messages as a plain client would.
//
// When no broker answers, tests skip locally and fail when CI=true: in CI a
// test that needs the broker must never pass by skipping.
package brokertest

import (
	"context"
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

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
)

// EnvURL names the variable that overrides the test broker's URL.
const EnvURL = "WARREN_TEST_URL"

// URL returns the test broker's URL after checking that it answers.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		u = conn.DefaultURL
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("brokertest: %s: %v", EnvURL, err)
	}
	host := pu.Host
	if pu.Port() == "" {
		host = net.JoinHostPort(pu.Hostname(), "5672")
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		msg := "brokertest: no RabbitMQ at " + host + " (run scripts/ensure-rabbitmq.sh): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = c.Close()
	return u
}

// Addr returns host:port of the test broker, for a TCP proxy in front of it.
func Addr(t testing.TB) string {
	pu, _ := url.Parse(URL(t))
	if pu.Port() == "" {
		return net.JoinHostPort(pu.Hostname(), "5672")
	}
	return pu.Host
}

// WithHost returns rawURL pointing at addr instead, keeping user and vhost.
func WithHost(rawURL, addr string) string {
	pu, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	pu.Host = addr
	return pu.String()
}

// Broker is a test's handle on the broker: a raw connection and the names
// it made, deleted at cleanup.
type Broker struct {
	t      testing.TB
	URL    string
	prefix string
	conn   *amqp.Connection

	mu        sync.Mutex
	queues    []string
	exchanges []string
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// New connects to the test broker and registers cleanup.
func New(t testing.TB) *Broker {
	t.Helper()
	u := URL(t)
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatalf("brokertest: dial: %v", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "-"), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	b := &Broker{t: t, URL: u, conn: conn, prefix: "wtest." + name + "." + hex.EncodeToString(rnd[:]) + "."}
	t.Cleanup(b.cleanup)
	return b
}

// Queue returns a name for a queue of this test and deletes the queue and
// its dead-letter queue at cleanup. It declares nothing.
func (b *Broker) Queue(base string) string {
	n := b.prefix + base
	b.mu.Lock()
	b.queues = append(b.queues, n, n+".dead")
	b.mu.Unlock()
	return n
}

// Exchange returns a name for an exchange of this test, deleted at cleanup.
func (b *Broker) Exchange(base string) string {
	n := b.prefix + "x." + base
	b.mu.Lock()
	b.exchanges = append(b.exchanges, n)
	b.mu.Unlock()
	return n
}

// Track deletes a queue made under another name at cleanup.
func (b *Broker) Track(queue string) {
	b.mu.Lock()
	b.queues = append(b.queues, queue)
	b.mu.Unlock()
}

func (b *Broker) cleanup() {
	defer b.conn.Close()
	if b.conn.IsClosed() {
		conn, err := amqp.Dial(b.URL)
		if err != nil {
			b.t.Logf("brokertest: cleanup: %v", err)
			return
		}
		b.conn = conn
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		if ch, err := b.conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, x := range b.exchanges {
		if ch, err := b.conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(x, false, false)
			_ = ch.Close()
		}
	}
}

func (b *Broker) channel() *amqp.Channel {
	b.t.Helper()
	if b.conn.IsClosed() {
		conn, err := amqp.Dial(b.URL)
		if err != nil {
			b.t.Fatalf("brokertest: redial: %v", err)
		}
		b.conn = conn
	}
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatalf("brokertest: channel: %v", err)
	}
	return ch
}

// Channel opens a channel for checks that need raw AMQP (passive declares,
// deletes, gets); it is closed at cleanup.
func (b *Broker) Channel() *amqp.Channel {
	b.t.Helper()
	ch := b.channel()
	b.t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// DeclareQueue declares a durable queue with no arguments, as a plain
// client would.
func (b *Broker) DeclareQueue(name string) {
	b.t.Helper()
	ch := b.channel()
	defer ch.Close()
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		b.t.Fatalf("brokertest: declare %s: %v", name, err)
	}
}

// Publish publishes msg persistently with a confirm, as a plain client
// would, and fails the test unless the broker confirmed it.
func (b *Broker) Publish(exchange, key string, msg amqp.Publishing) {
	b.t.Helper()
	ch := b.channel()
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		b.t.Fatalf("brokertest: confirm mode: %v", err)
	}
	if msg.DeliveryMode == 0 {
		msg.DeliveryMode = amqp.Persistent
	}
	dc, err := ch.PublishWithDeferredConfirm(exchange, key, true, false, msg)
	if err != nil {
		b.t.Fatalf("brokertest: publish: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := dc.WaitContext(ctx)
	if err != nil || !ok {
		b.t.Fatalf("brokertest: publish not confirmed: ok=%v err=%v", ok, err)
	}
}

// Get takes one message from queue with basic.get and acks it; ok is false
// when the queue is empty.
func (b *Broker) Get(queue string) (amqp.Delivery, bool) {
	b.t.Helper()
	ch := b.channel()
	defer ch.Close()
	d, ok, err := ch.Get(queue, true)
	if err != nil {
		b.t.Fatalf("brokertest: get %s: %v", queue, err)
	}
	return d, ok
}

// Ready returns the number of ready messages in queue (passive declare), or
// -1 if the queue does not exist.
func (b *Broker) Ready(queue string) int {
	b.t.Helper()
	ch := b.channel()
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// Eventually polls cond every 10ms until it holds or timeout passes, then
// fails the test with msg.
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

// LocalURL returns the test broker's URL without checking it, for godoc
// examples, which have no testing.T.
func LocalURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return conn.DefaultURL
}

// DeleteQueues removes queues an example declared; examples have no
// t.Cleanup. Errors are ignored: the queues may not exist.
func DeleteQueues(names ...string) {
	conn, err := amqp.Dial(LocalURL())
	if err != nil {
		return
	}
	defer conn.Close()
	for _, n := range names {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(n, false, false, false)
			_ = ch.Close()
		}
	}
}
