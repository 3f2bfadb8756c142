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
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/routing"
)

// EnvURL names the variable that overrides the test broker's URL.
const EnvURL = testenv.EnvURL

// URL returns the test broker's URL after checking that it answers.
func URL(t testing.TB) string {
	t.Helper()
	return testenv.URL(t)
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

// Password returns the password in rawURL, for tests that check it is
// never shown; it fails the test when there is none to look for.
func Password(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		t.Fatal("brokertest: the broker URL has no password to look for")
	}
	return pw
}

// Nodes starts n TCP proxies in front of the test broker, each standing
// for a node of a cluster that the test takes down and brings back
// (SetRefuse, Cut), and returns them with their URLs: the test broker's
// user, password and vhost on each proxy's address. They close when the
// test ends.
func Nodes(t testing.TB, n int) ([]*tcpproxy.Proxy, []string) {
	t.Helper()
	base, addr := URL(t), Addr(t)
	var pxs []*tcpproxy.Proxy
	var urls []string
	for range n {
		px, err := tcpproxy.Start(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = px.Close() })
		pxs = append(pxs, px)
		urls = append(urls, WithHost(base, px.Addr()))
	}
	return pxs, urls
}

// Broker is a test's handle on the broker: a raw connection and the names
// it made, deleted at cleanup.
type Broker struct {
	t     testing.TB
	URL   string
	names *testenv.Names
	conn  *amqp.Connection
}

// New connects to the test broker and registers cleanup.
func New(t testing.TB) *Broker {
	t.Helper()
	u := URL(t)
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatalf("brokertest: dial: %v", err)
	}
	b := &Broker{t: t, URL: u, conn: conn, names: testenv.NewNames(t)}
	t.Cleanup(b.cleanup)
	return b
}

// Queue returns a name for a queue of this test and deletes the queue and
// its dead-letter queue at cleanup. It declares nothing.
func (b *Broker) Queue(base string) string { return b.names.Queue(base) }

// Exchange returns a name for an exchange of this test, deleted at cleanup.
func (b *Broker) Exchange(base string) string { return b.names.Exchange(base) }

// Direct names a queue and a direct exchange of this test, made from base,
// and returns the topology that binds the queue to the exchange with key.
// It declares nothing.
func (b *Broker) Direct(base, key string) (queue, exchange string, topo routing.Topology) {
	queue, exchange = b.Queue(base), b.Exchange(base)
	topo = routing.Topology{
		Exchanges: []routing.Exchange{{Name: exchange}},
		Queues:    []routing.Queue{{Name: queue}},
		Bindings:  []routing.Binding{{Exchange: exchange, Queue: queue, Key: key}},
	}
	return queue, exchange, topo
}

// Track deletes a queue made under another name at cleanup.
func (b *Broker) Track(queue string) { b.names.Track(queue) }

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
	queues, exchanges := b.names.Made()
	for _, q := range queues {
		if ch, err := b.conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, x := range exchanges {
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

// DeclaredWith reports whether queue exists with arguments equivalent to
// args (x-queue-type, x-delivery-limit, dead-lettering ...), by declaring
// it again with them: the broker takes an equivalent declaration and
// refuses any other with PRECONDITION_FAILED. It fails the test if the
// queue does not exist or the broker answers otherwise.
func (b *Broker) DeclaredWith(queue string, args map[string]any) bool {
	b.t.Helper()
	if b.Ready(queue) < 0 {
		b.t.Fatalf("brokertest: queue %s does not exist", queue)
	}
	ch := b.channel()
	defer ch.Close()
	_, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table(args))
	var ae *amqp.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed:
		return false
	default:
		b.t.Fatalf("brokertest: declare %s again: %v", queue, err)
		return false
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
	testenv.Eventually(t, timeout, cond, msg, args...)
}

// LocalURL returns the test broker's URL without checking it, for godoc
// examples, which have no testing.T.
func LocalURL() string { return testenv.LocalURL() }

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
