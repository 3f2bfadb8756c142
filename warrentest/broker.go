package warrentest

import (
	"context"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/routing"
)

// EnvURL names the environment variable, WARREN_TEST_URL, that points the
// kit at a broker other than DefaultURL.
const EnvURL = testenv.EnvURL

// DefaultURL is the broker the kit uses unless EnvURL names another: a
// local RabbitMQ with the default user, the one every component reaches
// by default.
const DefaultURL = conn.DefaultURL

// cleanupTimeout bounds the deletes at a test's end.
const cleanupTimeout = 10 * time.Second

// URL returns the test broker's URL (EnvURL, else DefaultURL) after
// checking that it answers. When it does not, t is skipped, or failed if
// the CI variable is set: in CI a test that needs the broker must not pass
// by skipping.
func URL(t testing.TB) string {
	t.Helper()
	return testenv.URL(t)
}

// Broker is one test's share of the test broker: names of its own for
// queues and exchanges, which it deletes when the test ends, so that tests
// can run in parallel (t.Parallel) and never see each other's messages.
type Broker struct {
	url   string
	names *testenv.Names
	admin *admin
}

// NewBroker connects to the test broker for t and deletes, when t ends,
// every queue and exchange it named. It skips or fails t as URL does.
func NewBroker(t testing.TB) *Broker {
	t.Helper()
	u := URL(t)
	c, err := dial(u)
	if err != nil {
		t.Fatalf("warrentest: %v", err)
	}
	b := &Broker{url: u, names: testenv.NewNames(t), admin: c}
	t.Cleanup(func() { b.cleanup(t) })
	return b
}

// URL is the broker's URL.
func (b *Broker) URL() string { return b.url }

// Conn is how to reach the broker, for the Conn field of a Config the kit
// does not fill (worker, producer, deadletter, inspect, result).
func (b *Broker) Conn() conn.Config { return conn.Config{URL: b.url} }

// Queue returns a name for a queue of this test, made from base. The queue
// and its dead-letter queue are deleted when the test ends; Queue declares
// nothing (a worker, a producer's Topology or Declare does).
func (b *Broker) Queue(base string) string { return b.names.Queue(base) }

// Exchange returns a name for an exchange of this test, made from base,
// deleted when the test ends. It declares nothing.
func (b *Broker) Exchange(base string) string { return b.names.Exchange(base) }

// Declare declares topo now, as a worker or producer would on connect,
// and fails t if the broker refuses it. Name its queues and exchanges with
// Queue and Exchange so that they are deleted.
func (b *Broker) Declare(t testing.TB, topo routing.Topology) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := b.admin.declare(ctx, topo); err != nil {
		t.Fatalf("warrentest: declare: %v", err)
	}
}

// cleanup deletes what the test named. It runs after the cleanups the
// test registered later (its workers and producers stop first).
func (b *Broker) cleanup(t testing.TB) {
	defer b.admin.close()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	queues, exchanges := b.names.Made()
	for _, q := range queues {
		if err := b.admin.deleteQueue(ctx, q); err != nil {
			t.Logf("warrentest: cleanup: %v", err)
		}
	}
	for _, x := range exchanges {
		if err := b.admin.deleteExchange(ctx, x); err != nil {
			t.Logf("warrentest: cleanup: %v", err)
		}
	}
}
