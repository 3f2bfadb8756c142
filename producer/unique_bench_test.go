package producer_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
)

// BenchmarkEnqueueUnique measures one caller's enqueues, one after the
// other, without and with uniqueness, in one run: plain; unique with a key
// whose lock queues exist and are free (the usual case: a key enqueued
// again after its task ended); unique with a key never seen (the lock
// queues are declared first). Run it with
//
//	go test -run '^$' -bench EnqueueUnique -benchmem ./producer
func BenchmarkEnqueueUnique(b *testing.B) {
	bk := brokertest.New(b)
	q := bk.Queue("bench")
	name := q
	def := task.Define[payload](name, task.WithUnique(func(p payload) string { return p.Key }, time.Minute))
	p := warrentest.NewProducer(b, producer.Config{Conn: conn.Config{URL: bk.URL}, Topology: routing.Topology{Queues: []routing.Queue{{Name: q}}}})
	ctx := warrentest.Context(b, 10*time.Minute)
	ch := bk.Channel()
	keys := 0
	key := func() string {
		keys++
		k := strconv.Itoa(keys)
		l := routing.UniqueQueue(name, k)
		bk.Track(l)
		bk.Track(routing.HolderQueue(l))
		return k
	}
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			if _, err := producer.Enqueue(ctx, p, def, payload{}, producer.WithQueue(q)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unique-free", func(b *testing.B) {
		// Keys enqueued once and freed again, as a worker frees them.
		ks := make([]string, 0, b.N)
		for range b.N {
			k := key()
			if _, err := producer.Enqueue(ctx, p, def, payload{Key: k}, producer.WithQueue(q)); err != nil {
				b.Fatal(err)
			}
			l := routing.UniqueQueue(name, k)
			for _, qq := range []string{l, routing.HolderQueue(l)} {
				if _, err := ch.QueuePurge(qq, false); err != nil {
					b.Fatal(err)
				}
			}
			ks = append(ks, k)
		}
		b.ResetTimer()
		for i := range b.N {
			if _, err := producer.Enqueue(ctx, p, def, payload{Key: ks[i]}, producer.WithQueue(q)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unique-new", func(b *testing.B) {
		for b.Loop() {
			if _, err := producer.Enqueue(ctx, p, def, payload{Key: key()}, producer.WithQueue(q)); err != nil {
				b.Fatal(err)
			}
		}
	})
	if _, err := ch.QueuePurge(q, false); err != nil {
		b.Fatal(err)
	}
}

// payload is the benchmark's task payload; Key is its unique key.
type payload struct {
	Key string `json:"key,omitempty"`
}
