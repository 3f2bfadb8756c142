package inspect_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/warrentest"
)

func newInspector(t *testing.T, cfg inspect.Config) *inspect.Inspector {
	t.Helper()
	insp, err := inspect.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = insp.Close() })
	return insp
}

// Over AMQP alone: counts of named queues and their dead letters, a
// missing queue named as such and never created, exchanges checked, and a
// purge that takes the ready messages only.
func TestInspectOverAMQP(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q, plain, gone := b.Queue("video"), b.Queue("plain"), b.Queue("gone")
	b.DeclareQueue(q)
	b.DeclareQueue(q + ".dead")
	b.DeclareQueue(plain)
	for range 3 {
		b.Publish("", q, amqp.Publishing{Body: []byte("{}")})
	}
	b.Publish("", q+".dead", amqp.Publishing{Body: []byte("{}")})
	insp := newInspector(t, inspect.Config{Conn: conn.Config{URL: b.URL}, NoManagement: true})
	ctx := warrentest.Context(t, 20*time.Second)

	if _, err := insp.Queues(ctx, inspect.Filter{}); !errors.Is(err, inspect.ErrNeedsManagement) {
		t.Errorf("listing without the management API: %v, want ErrNeedsManagement", err)
	}
	rep, err := insp.Queues(ctx, inspect.Filter{Names: []string{q, plain, gone}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != inspect.SourceAMQP || rep.Management != "" || len(rep.Queues) != 3 {
		t.Fatalf("report %+v", rep)
	}
	video, noDead, missing := rep.Queues[0], rep.Queues[1], rep.Queues[2]
	if video.Name != q || video.Ready != 3 || video.Dead == nil || *video.Dead != 1 || video.Unacked != nil || video.Missing {
		t.Errorf("work queue %+v", video)
	}
	if noDead.Name != plain || noDead.Dead != nil || noDead.Missing {
		t.Errorf("queue without a dead-letter queue %+v", noDead)
	}
	if missing.Name != gone || !missing.Missing {
		t.Errorf("missing queue %+v", missing)
	}
	if _, err := insp.Queue(ctx, gone); !errors.Is(err, conn.ErrNotFound) {
		t.Errorf("Queue(missing) = %v, want ErrNotFound", err)
	}
	if b.Ready(gone) != -1 {
		t.Error("inspection created a queue")
	}

	x := b.Exchange("media")
	if err := insp.CheckExchange(ctx, x); !errors.Is(err, conn.ErrNotFound) {
		t.Errorf("CheckExchange(missing) = %v, want ErrNotFound", err)
	}
	if err := b.Channel().ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := insp.CheckExchange(ctx, x); err != nil {
		t.Errorf("CheckExchange(declared) = %v", err)
	}

	if n, err := insp.Purge(ctx, q); err != nil || n != 3 {
		t.Errorf("Purge = %d, %v; want 3", n, err)
	}
	if got, err := insp.Queue(ctx, q); err != nil || got.Ready != 0 || got.Dead == nil || *got.Dead != 1 {
		t.Errorf("after the purge: %+v, %v; want none ready and the dead letter kept", got, err)
	}
	if _, err := insp.Purge(ctx, gone); !errors.Is(err, conn.ErrNotFound) {
		t.Errorf("Purge(missing) = %v, want ErrNotFound", err)
	}
}

// A refused login is not waited out: no retry cures it.
func TestPingRefused(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	insp := newInspector(t, inspect.Config{Conn: conn.Config{URL: u.String()}, NoManagement: true})
	start := time.Now()
	err = insp.Ping(warrentest.Context(t, time.Minute))
	if !errors.Is(err, conn.ErrRefused) {
		t.Fatalf("Ping = %v, want ErrRefused", err)
	}
	// RabbitMQ answers a bad password after about 3s.
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("took %v", el)
	}
}

// The management API gives every column; a queue it has no statistics
// for yet is counted with a passive declare, and work queues are those
// with a dead-letter queue beside them.
func TestInspectManagement(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	fresh := b.Queue("fresh")
	b.DeclareQueue(fresh)
	b.DeclareQueue(fresh + ".dead")
	b.Publish("", fresh, amqp.Publishing{Body: []byte("{}")})
	body := `[
 {"name":"video","messages_ready":5,"messages_unacknowledged":2,"consumers":3,
  "message_stats":{"publish_details":{"rate":4.25},"deliver_get_details":{"rate":3.5}}},
 {"name":"video.dead","messages_ready":4,"messages_unacknowledged":0,"consumers":0},
 {"name":"audio","messages_ready":1,"messages_unacknowledged":0,"consumers":0},
 {"name":"warren.delay.3","messages_ready":7,"messages_unacknowledged":0,"consumers":0},
 {"name":"warren.delay.3.dead","messages_ready":0,"messages_unacknowledged":0,"consumers":0},
 {"name":"` + fresh + `"},
 {"name":"` + fresh + `.dead"}
]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ops" || p != "pw" || r.URL.EscapedPath() != "/api/queues/%2F" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	mu, _ := url.Parse(srv.URL)
	mu.User = url.UserPassword("ops", "pw")
	insp := newInspector(t, inspect.Config{Conn: conn.Config{URL: b.URL}, Management: mu.String()})
	if base, vhost := insp.Management(); base != srv.URL || vhost != "/" {
		t.Errorf("Management() = %s %s", base, vhost)
	}
	rep, err := insp.Queues(warrentest.Context(t, 20*time.Second), inspect.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != inspect.SourceManagement || len(rep.Queues) != 2 {
		t.Fatalf("report %+v", rep)
	}
	v, f := rep.Queues[0], rep.Queues[1] // sorted by name
	if f.Name != fresh || f.Ready != 1 || f.Source != inspect.SourceAMQP || f.Dead == nil || *f.Dead != 0 {
		t.Errorf("queue without statistics yet %+v", f)
	}
	if v.Name != "video" || v.Ready != 5 || v.Unacked == nil || *v.Unacked != 2 || v.Consumers != 3 || *v.Dead != 4 ||
		*v.PublishRate != 4.25 || *v.DeliverRate != 3.5 || v.Source != inspect.SourceManagement {
		t.Errorf("work queue %+v", v)
	}
	all, err := insp.Queues(warrentest.Context(t, 20*time.Second), inspect.Filter{All: true})
	if err != nil || len(all.Queues) != 7 {
		t.Errorf("All: %d queues, %v; want 7", len(all.Queues), err)
	}
}
