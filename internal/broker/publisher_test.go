package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker"
)

// Returns are matched by message id, with the sequence number in a header
// only for an id already in flight on the channel. Whatever the order of
// routable (R) and unroutable (U) publishes sharing one id, in flight
// together, each gets its own outcome.
func TestReturnsFindTheirPublishAmongRepeatedIDs(t *testing.T) {
	t.Parallel()
	b, q, _, pub, ctx := broker.PublisherSetup(t, "routable", 1)
	missing := b.Queue("missing")
	routed := 0
	for round, pattern := range []string{"RU", "UR", "URU", "RUR", "UU", "RR", "URRU", "RUUR"} {
		id := fmt.Sprintf("same-%d", round)
		var cs []*broker.Confirm
		for _, kind := range pattern {
			key := missing
			if kind == 'R' {
				key = q
				routed++
			}
			c, err := pub.Publish(ctx, &broker.Publishing{Key: key, MessageID: id, Body: []byte("{}")})
			if err != nil {
				t.Fatalf("%s: publish: %v", pattern, err)
			}
			cs = append(cs, c)
		}
		for i, c := range cs {
			err := c.Wait(ctx)
			if pattern[i] == 'R' && err != nil {
				t.Errorf("%s: publish %d (routable) failed: %v", pattern, i, err)
			}
			if pattern[i] == 'U' && !errors.Is(err, broker.ErrUnroutable) {
				t.Errorf("%s: publish %d (unroutable): err = %v, want ErrUnroutable", pattern, i, err)
			}
		}
	}
	if n := b.Ready(q); n != routed {
		t.Errorf("queue holds %d, want %d", n, routed)
	}
}

// A header copied from an earlier publish (a consumed message republished
// whole) must not decide which publish a return belongs to.
func TestStaleSequenceHeaderIsIgnored(t *testing.T) {
	t.Parallel()
	b, q, _, pub, ctx := broker.PublisherSetup(t, "routable", 1)
	// On a fresh channel the first publish is sequence number 1.
	ok, err := pub.Publish(ctx, &broker.Publishing{Key: q, MessageID: "a", Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := pub.Publish(ctx, &broker.Publishing{Key: b.Queue("missing"), MessageID: "b", Body: []byte("{}"),
		Headers: amqp.Table{broker.HeaderPublishSeq: int64(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.Wait(ctx); err != nil {
		t.Errorf("routable publish: %v", err)
	}
	if err := bad.Wait(ctx); !errors.Is(err, broker.ErrUnroutable) {
		t.Errorf("unroutable publish with a stale sequence header: err = %v, want ErrUnroutable", err)
	}
	d, got := b.Get(q)
	if !got {
		t.Fatal("routable message not in its queue")
	}
	if _, tagged := d.Headers[broker.HeaderPublishSeq]; tagged {
		t.Errorf("a publish with no repeated id in flight carries %s: %v", broker.HeaderPublishSeq, d.Headers)
	}
}

// A context that ends after the broker answered must not hide the answer:
// Wait prefers a settled confirm to a done context, every time, where a
// plain select would pick one of the two at random and report a confirmed
// publish as failed, so that its caller sends it again.
func TestWaitPrefersTheBrokersAnswerToADoneContext(t *testing.T) {
	t.Parallel()
	b, q, _, pub, ctx := broker.PublisherSetup(t, "settled", 1)
	ok, err := pub.Publish(ctx, &broker.Publishing{Key: q, MessageID: "ok", Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	returned, err := pub.Publish(ctx, &broker.Publishing{Key: b.Queue("missing"), MessageID: "returned", Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := returned.Wait(ctx); !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("err = %v, want ErrUnroutable", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 1000 {
		if err := ok.Wait(done); err != nil {
			t.Fatalf("try %d: a confirmed publish waited on with a done context: %v", i, err)
		}
		if err := returned.Wait(done); !errors.Is(err, broker.ErrUnroutable) {
			t.Fatalf("try %d: a returned publish waited on with a done context: %v, want ErrUnroutable", i, err)
		}
	}
}

// A publish whose Live reports false when its writer reaches it is not
// written: it fails with ErrStaleDelivery and the queue never sees it,
// while the publishes around it go out.
func TestPublishNotLiveIsNotSent(t *testing.T) {
	t.Parallel()
	b, q, _, pub, ctx := broker.PublisherSetup(t, "not-live", 1)
	live := func() bool { return true }
	dead := func() bool { return false }
	var cs []*broker.Confirm
	for i, f := range []func() bool{live, dead, nil, dead} {
		c, err := pub.Publish(ctx, &broker.Publishing{Key: q, MessageID: fmt.Sprint(i), Body: []byte("{}"), Live: f})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for i, c := range cs {
		err := c.Wait(ctx)
		if wantStale := i%2 == 1; wantStale != errors.Is(err, broker.ErrStaleDelivery) || (!wantStale && err != nil) {
			t.Errorf("publish %d: %v", i, err)
		}
	}
	if n := b.Ready(q); n != 2 {
		t.Errorf("queue holds %d, want the 2 live publishes", n)
	}
}
