package warrentest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

// Email is the payload of the examples' task.
type Email struct {
	To string `json:"to"`
}

// SendEmail is defined once, as in the code under test.
var SendEmail = task.Define[Email]("send_email", task.WithMaxAttempts(3), task.WithBackoff(time.Minute, time.Hour))

// signUp is the code under test: it takes the producer it is given, as in
// production, and enqueues a welcome email an hour later.
func signUp(ctx context.Context, p *producer.Producer, address string) error {
	_, err := producer.Enqueue(ctx, p, SendEmail, Email{To: address}, producer.WithDelay(time.Hour))
	return err
}

// Work runs a handler as a worker would and says what the worker would do
// next. No broker is needed.
func ExampleWork() {
	var t testing.TB = newExampleT() // in a test: its *testing.T
	ctx := context.Background()
	send := SendEmail.Handler(func(ctx context.Context, e Email) error {
		if e.To == "" {
			return retry.Permanent(errors.New("no address"))
		}
		return errors.New("smtp: connection refused")
	})

	fmt.Println(warrentest.Work(ctx, t, send, SendEmail.New(Email{To: "ann@example.com"})))
	fmt.Println(warrentest.Work(ctx, t, send, SendEmail.New(Email{To: "ann@example.com"}), warrentest.WithAttempt(3)))
	fmt.Println(warrentest.Work(ctx, t, send, SendEmail.New(Email{})))
	// Output:
	// retry after 1m0s: smtp: connection refused
	// dead (exhausted): smtp: connection refused
	// dead (permanent): no address
}

// Record sees what the code under test enqueued through a real producer,
// delayed tasks included, long before they are due.
func ExampleRecorder() {
	t := newExampleT() // in a test: its *testing.T
	defer t.end()
	b := warrentest.NewBroker(t)
	q := b.Queue("email")
	p := warrentest.NewProducer(t, producer.Config{
		Conn:     b.Conn(),
		Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}},
		Routes:   routing.NewTable().Add(SendEmail.Name(), routing.ToQueue(q)),
	})
	rec := b.Record(t, q)

	if err := signUp(warrentest.Context(t, 10*time.Second), p, "ann@example.com"); err != nil {
		t.Fatal(err)
	}

	got := warrentest.RequireEnqueued(t, rec, SendEmail)
	fmt.Println(got.Payload.To, got.Delay)
	rec.RequireEmpty(t)
	// Output:
	// ann@example.com 1h0m0s
}

// StartWorker runs a real worker on the test's queue until the test ends.
func ExampleStartWorker() {
	t := newExampleT() // in a test: its *testing.T
	defer t.end()
	b := warrentest.NewBroker(t)
	q := b.Queue("email")
	sent := make(chan string, 1)
	warrentest.StartWorker(t, worker.Config{Conn: b.Conn(), Queues: []string{q}},
		SendEmail.Handler(func(ctx context.Context, e Email) error { sent <- e.To; return nil }))
	p := warrentest.NewProducer(t, producer.Config{Conn: b.Conn()})

	if _, err := producer.Enqueue(warrentest.Context(t, 10*time.Second), p, SendEmail, Email{To: "bob@example.com"}, producer.WithQueue(q)); err != nil {
		t.Fatal(err)
	}
	select {
	case to := <-sent:
		fmt.Println("sent to", to)
	case <-warrentest.Context(t, 10*time.Second).Done():
		t.Fatal("the worker never ran the task")
	}
	// Output:
	// sent to bob@example.com
}

// exampleT stands in for the *testing.T that examples do not get: it runs
// the cleanups when the example ends and panics on a failure.
type exampleT struct {
	testing.TB // nil: only the methods below are called
	cleanups   []func()
}

func newExampleT() *exampleT { return &exampleT{} }

func (t *exampleT) end() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func (t *exampleT) Name() string                 { return "Example" }
func (t *exampleT) Helper()                      {}
func (t *exampleT) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Logf(string, ...any)          {}
func (t *exampleT) Errorf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (t *exampleT) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (t *exampleT) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (t *exampleT) Skip(args ...any)             { panic(fmt.Sprint(args...)) }
