package broker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
)

func advPublish(t *testing.T, b *brokertest.Broker, q string, n int) {
	ch := b.Channel()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var dcs []*amqp.DeferredConfirmation
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirm("", q, true, false, amqp.Publishing{MessageId: strconv.Itoa(i), Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
			t.Fatal("not confirmed", err)
		}
	}
}

// Coalesced acks under an adversarial mix: random ack / nack(requeue) /
// nack(drop) with random delays from 8 goroutines. Each message is finally acked or dropped; a delivery of a
// message after its final settle means a lost settle; a channel close is a
// refused frame. With stopMid, ctx is cancelled midway: handlers finish,
// then Close; the queue must then hold exactly the unfinished messages.
func TestAdversarialSettle(t *testing.T) {
	for _, tc := range []struct {
		prefetch int
		stopMid  bool
	}{{1, false}, {3, false}, {8, false}, {64, false}, {200, false}, {64, true}, {200, true}, {7, true}} {
		t.Run(fmt.Sprintf("p%d-stop%v", tc.prefetch, tc.stopMid), func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(3) {
				advRun(t, tc.prefetch, tc.stopMid, seed)
			}
		})
	}
}

func advRun(t *testing.T, prefetch int, stopMid bool, seed uint64) {
	const n = 1000
	b := brokertest.New(t)
	q := b.Queue(fmt.Sprintf("adv%d", seed))
	b.DeclareQueue(q)
	advPublish(t, b, q, n)
	core, logs := observer.New(zapcore.WarnLevel)
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: b.URL, Logger: zap.New(core)}, Role: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan *broker.Delivery)
	c := sup.NewConsumer(q, prefetch, out)
	runDone := make(chan struct{})
	go func() { defer close(runDone); c.Run(ctx) }()

	var mu sync.Mutex
	final := map[string]string{} // id -> "ack" | "drop"
	seen := map[string]int{}
	gens := map[uint64]bool{}
	var errs []string
	allDone := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for d := range out {
				mu.Lock()
				gens[d.Gen] = true
				seen[d.MessageID]++
				if f, ok := final[d.MessageID]; ok {
					errs = append(errs, fmt.Sprintf("%s delivered again after %s (redelivered %v, tag %d)", d.MessageID, f, d.Redelivered, d.Tag))
				}
				cnt := seen[d.MessageID]
				mu.Unlock()
				switch x := r.IntN(100); {
				case x < 60:
				case x < 85:
					time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
				case x < 97:
					time.Sleep(time.Duration(1+r.IntN(4)) * time.Millisecond)
				default:
					time.Sleep(time.Duration(8+r.IntN(20)) * time.Millisecond)
				}
				act := r.IntN(100)
				var err error
				var fin string
				switch {
				case act < 60 || (cnt > 2 && act < 85):
					err, fin = d.Ack(), "ack"
				case act < 85:
					err = d.Nack(true)
				default:
					err, fin = d.Nack(false), "drop"
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("settle %s: %v", d.MessageID, err))
				} else if fin != "" {
					final[d.MessageID] = fin
					if len(final) == n {
						once.Do(func() { close(allDone) })
					}
				}
				if stopMid && len(final) >= n/2 {
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	if !stopMid {
		select {
		case <-allDone:
		case <-time.After(60 * time.Second):
			t.Fatal("not all settled")
		}
		brokertest.Eventually(t, 5*time.Second, func() bool { p, _ := c.AckStats(); return p == 0 }, "pending acks never sent")
		cancel()
	}
	<-runDone
	close(out) // Run returned: nothing more is sent on out
	wg.Wait()  // handlers finish after Run, as in the worker
	_, frames := c.AckStats()
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	if len(gens) != 1 {
		t.Errorf("deliveries came on %d channels: the channel died", len(gens))
	}
	for _, e := range logs.All() {
		t.Errorf("log: %s %v", e.Message, e.ContextMap())
	}
	// Close requeued every message not finally settled; a lost ack or drop
	// would leave one more.
	want := n - len(final)
	brokertest.Eventually(t, 5*time.Second, func() bool { return b.Ready(q) == want }, "queue ready %d, want %d", b.Ready(q), want)
	acks := 0
	for _, f := range final {
		if f == "ack" {
			acks++
		}
	}
	t.Logf("prefetch %d seed %d: finalized %d (acks %d) frames %d, ready %d", prefetch, seed, len(final), acks, frames, b.Ready(q))
}
