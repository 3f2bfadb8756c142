package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Payload is the benchmark task's payload: Sent carries the enqueue time
// for the raw side's latency; Pad brings it to the size asked for.
type Payload struct {
	N    int    `json:"n"`
	Sent int64  `json:"sent"`
	Pad  string `json:"pad"`
}

func body(p params, i int) []byte {
	b, _ := json.Marshal(Payload{N: i, Sent: time.Now().UnixNano(), Pad: strings.Repeat("x", max(p.Payload-40, 0))})
	return b
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func withChannel(p params, f func(*amqp.Channel) error) error {
	return withChannelOn(publishNode(p), f)
}

func withChannelOn(url string, f func(*amqp.Channel) error) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return f(ch)
}

// declare declares the exchange and the queues, queue i through node i
// (counting round -broker's list): a quorum queue's leader is placed on
// the node of the client that declares it (RabbitMQ 3.10's client-local
// default), so on a cluster the leaders of a spread are spread too.
func declare(p params) error {
	if err := withChannel(p, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(p.Exchange, "direct", true, false, false, false, nil)
	}); err != nil {
		return err
	}
	for i, q := range benchQueues(p) {
		if err := withChannelOn(node(p, i), func(ch *amqp.Channel) error {
			if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table(queueArgs(p, q))); err != nil {
				return err
			}
			return ch.QueueBind(q, keyOf(p, q), p.Exchange, false, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}

func purge(p params) error {
	return withChannel(p, func(ch *amqp.Channel) error {
		for _, q := range benchQueues(p) {
			if _, err := ch.QueuePurge(q, false); err != nil {
				return err
			}
		}
		return nil
	})
}

func cleanup(p params) {
	_ = withChannel(p, func(ch *amqp.Channel) error {
		for _, q := range benchQueues(p) {
			_, _ = ch.QueueDelete(q, false, false, false)
			_, _ = ch.QueueDelete(q+".dead", false, false, false)
		}
		return ch.ExchangeDelete(p.Exchange, false, false)
	})
}

func purgeAndFill(ctx context.Context, p params) error {
	if err := purge(p); err != nil {
		return err
	}
	_, err := rawEnqueue(ctx, p)
	return err
}

// rawPublish publishes n messages on one confirm channel with a window of
// unconfirmed publishes, as an expert would: pipelined, never one round
// trip per message. With a rate above 0 it publishes at that many a second,
// on a schedule (a late publish does not delay the next).
func rawPublish(ctx context.Context, conn *amqp.Connection, p params, key string, n int, rate float64) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, p.Window))
	window := make(chan struct{}, p.Window)
	var nacked atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			c, ok := <-confirms
			if !ok {
				return
			}
			if !c.Ack {
				nacked.Add(1)
			}
			<-window
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
		window <- struct{}{}
		if err := ch.PublishWithContext(ctx, p.Exchange, key, true, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body(p, i),
			MessageId: fmt.Sprint(i), Timestamp: time.Now(),
			Headers: amqp.Table{"task": "bench", "id": fmt.Sprint(i)},
		}); err != nil {
			return err
		}
	}
	<-done
	if nacked.Load() > 0 {
		return fmt.Errorf("%d nacked", nacked.Load())
	}
	return nil
}

func rawEnqueue(ctx context.Context, p params) (result, error) {
	conn, err := amqp.Dial(publishNode(p))
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	start := time.Now()
	if err := rawPublishSpread(ctx, conn, p, p.N); err != nil {
		return result{}, err
	}
	return result{Rate: float64(p.N) / time.Since(start).Seconds()}, nil
}

func rawDrain(ctx context.Context, p params, variant string) (result, error) {
	if p.Shards > 0 {
		return rawDrainSpread(ctx, p, variant)
	}
	r, _, err := rawConsume(ctx, p, variant, p.N, nil)
	return r, err
}

// rawEndToEnd publishes n messages, at rate a second if rate is above 0,
// while the variant consumes them, from a consumer registered before the
// first publish.
func rawEndToEnd(ctx context.Context, p params, variant string, n int, rate float64) (result, error) {
	conn, err := amqp.Dial(publishNode(p))
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	type out struct {
		r     result
		waits []time.Duration
		err   error
	}
	got := make(chan out, 1)
	started := make(chan struct{})
	go func() {
		r, w, err := rawConsume(ctx, p, variant, n, started)
		got <- out{r, w, err}
	}()
	select {
	case <-started:
	case o := <-got:
		return result{}, o.err
	}
	if err := rawPublish(ctx, conn, p, "bench", n, rate); err != nil {
		return result{}, fmt.Errorf("publish: %w", err)
	}
	o := <-got
	if o.err != nil {
		return result{}, fmt.Errorf("consume: %w", o.err)
	}
	o.r.P50, o.r.P99, o.r.Max = latencies(o.waits)
	return o.r, nil
}
