package faulttest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

func startProxy(t *testing.T) *tcpproxy.Proxy {
	t.Helper()
	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	return px
}

func checkReport(t *testing.T, name string, r report) {
	t.Helper()
	t.Logf("faulttest: %s: %v", name, r)
	if r.Lost != 0 || r.Handled != r.Sent {
		t.Errorf("%s: %d of %d tasks lost", name, r.Lost, r.Sent)
	}
}

// The TCP path between the clients and the broker is cut twice and refused
// for two seconds while 3000 tasks flow: producer and worker reconnect by
// themselves and every task is handled.
func TestFaultProxyCut(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	px := startProxy(t)
	url := brokertest.WithHost(b.URL, px.Addr())
	s := &scenario{t: t, b: b, n: 3000, producerURL: url, workerURL: url, handlerDelay: 500 * time.Microsecond,
		faults: []func(){
			px.Cut,
			func() { px.SetRefuse(true); px.Cut(); time.Sleep(2 * time.Second); px.SetRefuse(false) },
			px.Cut,
		}}
	checkReport(t, "tcp cut x2 + 2s refused", s.run())
}

// The path goes silent without closing: only heartbeats can tell. Both
// sides notice within a few heartbeat intervals and reconnect.
func TestFaultSilentPath(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	px := startProxy(t)
	url := brokertest.WithHost(b.URL, px.Addr())
	s := &scenario{t: t, b: b, n: 1000, producerURL: url, workerURL: url, handlerDelay: time.Millisecond,
		faults: []func(){
			func() {
				px.SetBlackhole(true)
				// 2s heartbeats: both sides declare the peer dead after ~4-6s.
				time.Sleep(8 * time.Second)
				px.Cut()
				px.SetBlackhole(false)
			},
		}}
	checkReport(t, "silent path 8s", s.run())
}

// A handler that finishes after its channel died must not ack anything on
// the new channel, where its delivery tag names another message: the
// worker sees the delivery is no longer live and sends nothing for it
// (the ack guard itself is TestStaleDeliveryIsNotAcked in internal/broker).
func TestFaultStaleAckDropped(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	px := startProxy(t)
	q := b.Queue("stale")
	def := task.Define[Item]("stale_item")
	firstStarted := make(chan struct{})
	releaseFirst := make(chan struct{})
	var laterStarted atomic.Int32
	var first atomic.Bool
	reg := task.NewRegistry()
	reg.MustRegister(def.Handler(func(ctx context.Context, it Item) error {
		if it.N == 0 && first.CompareAndSwap(false, true) {
			close(firstStarted)
			<-releaseFirst
			return nil
		}
		laterStarted.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}))
	topo := routing.Topology{Queues: []routing.Queue{{Name: q}}}
	w, err := worker.New(worker.Config{Conn: conn.Config{URL: brokertest.WithHost(b.URL, px.Addr())},
		Queues: []string{q}, Registry: reg,
		Topology: topo, Concurrency: 4, Prefetch: 10, ShutdownTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer cancel()
	brokertest.Eventually(t, 15*time.Second, w.Ready, "worker not ready")

	p, err := producer.New(producer.Config{Conn: conn.Config{URL: b.URL}, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	enqueue := func(n int) {
		tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer tcancel()
		if _, err := producer.Enqueue(tctx, p, def, Item{N: n}); err != nil {
			t.Fatal(err)
		}
	}

	enqueue(0) // A: delivery tag 1 on the first channel
	<-firstStarted
	px.Cut()
	// A comes back as tag 1 on the new channel, then B as tag 2.
	brokertest.Eventually(t, 15*time.Second, func() bool { return laterStarted.Load() == 1 }, "A not redelivered after the cut")
	enqueue(1)
	brokertest.Eventually(t, 15*time.Second, func() bool { return laterStarted.Load() == 2 }, "B not delivered")

	close(releaseFirst) // the old handler of A finishes; tag 1 now names A' on the new channel
	brokertest.Eventually(t, 10*time.Second, func() bool { return w.Stats().ChannelLost == 1 }, "the old run of A was not settled as lost: %+v", w.Stats())

	cancel() // A' and B are cancelled and requeued on the live channel
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
	// Had the stale ack reached the new channel it would have acked A' (or
	// B), and only one message would be left.
	brokertest.Eventually(t, 10*time.Second, func() bool { return b.Ready(q) == 2 }, "ready = %d, want 2: a stale ack reached the new channel", b.Ready(q))
	// Every delivery has one outcome: the one of the dead channel is
	// requeued (the broker gave it back; the worker sent nothing for it),
	// as are the two cancelled at shutdown.
	if s := w.Stats(); s.Received != 3 || s.Succeeded != 0 || s.Requeued != 3 || s.ChannelLost != 1 || s.StaleAcks != 0 {
		t.Errorf("stats %+v: want 3 received, 0 succeeded, 3 requeued, 1 of them for a lost channel, no ack sent", s)
	}
}
