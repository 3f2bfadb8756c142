package producer_test

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/result"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
)

// farBackend is a result backend whose reply address is too long for AMQP.
type farBackend struct{ replyTo string }

func (f farBackend) ReplyTo() string                        { return f.replyTo }
func (farBackend) Subscribe(id string) *result.Subscription { return result.NewSubscription(id) }
func (farBackend) Unsubscribe(string)                       {}
func (farBackend) Close() error                             { return nil }

// Bad metadata from a caller is refused with ErrInvalid before anything is
// sent, naming the field, its size and the limit, and the connection every
// enqueue shares is left alone: amqp091-go would close it over a name
// longer than 255 bytes, and the broker over properties larger than a
// frame, failing every publish in flight with ErrConnectionLost. Good
// enqueues run on the same producer throughout and must all succeed, with
// no reconnect.
func TestBadInputMatrix(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("good")
	x := b.Exchange("bad-input")
	long := strings.Repeat("x", 300)
	// A queue name that is a valid name, but too long for the delay
	// levels' routing key, which adds 44 bytes to it.
	longQueue := b.Queue(strings.Repeat("q", 200))
	var reconnects atomic.Int32
	p := warrentest.NewProducer(t, producer.Config{
		Conn:         conn.Config{URL: b.URL, OnReconnect: func() { reconnects.Add(1) }},
		Topology:     routing.Topology{Exchanges: []routing.Exchange{{Name: x}}, Queues: []routing.Queue{{Name: q}}},
		MaxBodyBytes: 1 << 20,
		Results:      farBackend{replyTo: long},
	})
	ctx := warrentest.Context(t, 60*time.Second)
	if _, err := p.Enqueue(ctx, noteTask.New(Note{}), producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	sent := atomic.Int32{}
	sent.Store(1)

	// Good enqueues, concurrent with the bad ones.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	goodErrs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := p.Enqueue(ctx, noteTask.New(Note{Text: "good"}), producer.WithQueue(q)); err != nil {
					goodErrs <- err
					return
				}
				sent.Add(1)
			}
		}()
	}

	enqueue := func(opts ...producer.Option) func() error {
		return func() error {
			_, err := p.Enqueue(ctx, noteTask.New(Note{}), append([]producer.Option{producer.WithQueue(q)}, opts...)...)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		do   func() error
		says []string
	}{
		{"id", enqueue(producer.WithID(long)), []string{`message id "xxx`, "is 300 bytes", "limit of 255"}},
		{"queue", enqueue(producer.WithQueue(long)), []string{`routing key "xxx`, "is 300 bytes", "limit of 255"}},
		{"exchange", enqueue(producer.WithRoute(long, "k")), []string{`exchange "xxx`, "is 300 bytes", "limit of 255"}},
		{"routing key", enqueue(producer.WithRoute(x, long)), []string{`routing key "xxx`, "is 300 bytes", "limit of 255"}},
		{"delayed queue", enqueue(producer.WithQueue(longQueue), producer.WithDelay(time.Minute)),
			[]string{longQueue, "is " + strconv.Itoa(44+len(longQueue)) + " bytes", "limit of 255"}},
		{"header key", enqueue(producer.WithHeaders(map[string]any{long: 1})), []string{"header key", "is 300 bytes", "limit of 255"}},
		{"nested header key", enqueue(producer.WithHeaders(map[string]any{"outer": amqp.Table{long: 1}})),
			[]string{`header key "outer" > "xxx`, "is 300 bytes"}},
		{"header key in a table in an array", enqueue(producer.WithHeaders(map[string]any{"list": []any{1, amqp.Table{long: 1}}})),
			[]string{`header key "list"[1] > "xxx`, "is 300 bytes"}},
		{"header table over the frame", enqueue(producer.WithHeaders(map[string]any{"big": strings.Repeat("x", 128<<10)})),
			[]string{"header table", "limit of 131050"}},
		{"header of a type AMQP cannot carry", enqueue(producer.WithHeaders(map[string]any{"ch": make(chan int)})),
			[]string{`header "ch"`, "chan int"}},
		{"body over MaxBodyBytes", func() error {
			_, err := p.Enqueue(ctx, noteTask.New(Note{Text: strings.Repeat("x", 1<<20)}), producer.WithQueue(q))
			return err
		}, []string{"body is 1048587 bytes", "limit of 1048576", "MaxBodyBytes"}},
		{"reply_to", func() error {
			_, err := producer.EnqueueResult(ctx, p, resultTask, Note{}, producer.WithQueue(q))
			return err
		}, []string{`reply-to "xxx`, "is 300 bytes", "limit of 255"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, producer.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, s := range append(tc.says, "retrying will not help") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not say %q:\n%v", s, err)
				}
			}
			if len(err.Error()) > 800 {
				t.Errorf("error is %d bytes long: it should quote long values clipped:\n%v", len(err.Error()), err)
			}
		})
	}
	close(stop)
	wg.Wait()
	close(goodErrs)
	for err := range goodErrs {
		t.Errorf("good enqueue beside the bad ones: %v", err)
	}
	if _, err := p.Enqueue(ctx, noteTask.New(Note{}), producer.WithQueue(q)); err != nil {
		t.Fatalf("good enqueue after the bad ones: %v", err)
	}
	sent.Add(1)
	if n := reconnects.Load(); n != 0 {
		t.Errorf("the producer reconnected %d times: bad input took its connection down", n)
	}
	if got, want := b.Ready(q), int(sent.Load()); got != want {
		t.Errorf("queue holds %d, want the %d good tasks", got, want)
	}
}

var resultTask = task.DefineWithResult[Note, Note]("note_result")

// The body limit defaults to 16 MiB; negative lifts it.
func TestMaxBodyBytes(t *testing.T) {
	t.Parallel()
	b, q, p := producerWithQueue(t, "bodies", producer.Config{})
	big := noteTask.New(Note{Text: strings.Repeat("x", producer.DefaultMaxBodyBytes)})
	ctx := warrentest.Context(t, 60*time.Second)
	if _, err := p.Enqueue(ctx, big, producer.WithQueue(q)); !errors.Is(err, producer.ErrInvalid) || !strings.Contains(err.Error(), "limit of 16777216") {
		t.Errorf("a body over 16 MiB with the default limit: err = %v, want ErrInvalid", err)
	}
	unlimited := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL}, MaxBodyBytes: -1})
	if _, err := unlimited.Enqueue(ctx, big, producer.WithQueue(q)); err != nil {
		t.Errorf("a body over 16 MiB with no limit: %v", err)
	}
	warrentest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == 1 }, "queue holds %d, want 1", b.Ready(q))
}
