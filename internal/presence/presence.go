// Package presence is a worker's side of worker presence: it announces the
// worker on the broker with a heartbeat every interval, answers pings on a
// command queue of the worker's own, and says goodbye when the worker
// stops. Package inspect watches the heartbeats; docs/protocol.md
// describes the messages.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
)

// DefaultInterval is a worker's heartbeat interval unless it sets one.
const DefaultInterval = 2 * time.Second

// commandQueueExpiry is how long the broker keeps a worker's command queue
// once the worker is gone: long enough to ride out a reconnect.
const commandQueueExpiry = time.Minute

// goodbyeTimeout bounds the wait for the goodbye's confirm, so that a
// broker that does not answer does not hold up the worker's stop.
const goodbyeTimeout = 2 * time.Second

// NewID returns an ID for a worker process's run: host/pid/random, so
// that it says where to look and never repeats.
func NewID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}

// Version returns warren's module version in this binary: a release's tag
// when warren is a dependency, "(devel)" when built from its own tree.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	const mod = "github.com/warrenq/warren"
	if bi.Main.Path == mod {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == mod {
			return d.Version
		}
	}
	return "unknown"
}

// CommandQueue is the name of the command queue of the worker id.
func CommandQueue(id string) string { return routing.WorkerQueuePrefix + id }

// Topology is what a worker with id declares for presence: both
// exchanges, and its command queue bound to the control exchange. It is
// part of the worker's topology, declared on every connect.
func Topology(id string) routing.Topology {
	q := CommandQueue(id)
	return routing.Topology{
		Exchanges: []routing.Exchange{
			{Name: routing.PresenceExchange, Kind: routing.Fanout},
			{Name: routing.ControlExchange, Kind: routing.Fanout},
		},
		Queues: []routing.Queue{{Name: q, NoDeadLetters: true, Args: map[string]any{
			"x-expires": commandQueueExpiry.Milliseconds(),
			// A command is worth nothing later: a ping's sender waits a
			// second or so.
			"x-message-ttl": int64(10000),
		}}},
		Bindings: []routing.Binding{{Exchange: routing.ControlExchange, Queue: q}},
	}
}

// Config configures an Announcer.
type Config struct {
	// ID is the worker's (NewID); its command queue is in the worker's
	// Topology(ID).
	ID string
	// Sup and Pub are the worker's connection and publisher.
	Sup *broker.Supervisor
	Pub *broker.Publisher
	// Interval is the heartbeat interval. Defaults to DefaultInterval.
	Interval time.Duration
	// Status returns the worker's status now; the announcer fills in ID,
	// Interval and Sent.
	Status func() inspect.Worker
	Log    *zap.Logger
}

// Announcer sends a worker's heartbeats and answers its pings.
type Announcer struct {
	cfg  Config
	cons *broker.Consumer
	poke chan struct{}
}

// New returns an announcer; Run starts it.
func New(cfg Config) *Announcer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Announcer{
		cfg:  cfg,
		cons: cfg.Sup.NewConsumer(CommandQueue(cfg.ID), 4, nil),
		poke: make(chan struct{}, 1),
	}
}

// Poke sends a heartbeat now rather than at the next tick: the worker's
// state changed.
func (a *Announcer) Poke() {
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// Run sends a heartbeat at once and then every interval, and answers
// pings, until ctx is done; then it says goodbye and returns.
func (a *Announcer) Run(ctx context.Context) {
	consumed := make(chan struct{})
	go func() { defer close(consumed); a.cons.Run(ctx) }()
	defer func() {
		<-consumed
		a.cons.Close()
	}()
	// The first heartbeat goes as soon as the connection is up, so that a
	// watcher lists a new worker at once.
	if _, err := a.cfg.Sup.Session(ctx); err != nil {
		return
	}
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	a.send(ctx, routing.PresenceExchange, "", "")
	for {
		select {
		case <-t.C:
			a.send(ctx, routing.PresenceExchange, "", "")
		case <-a.poke:
			a.send(ctx, routing.PresenceExchange, "", "")
		case d := <-a.cons.Deliveries():
			a.command(ctx, d)
		case <-ctx.Done():
			gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), goodbyeTimeout)
			a.send(gctx, routing.PresenceExchange, "", inspect.WorkerStopped)
			cancel()
			return
		}
	}
}

// command carries out one command from the control exchange.
func (a *Announcer) command(ctx context.Context, d *broker.Delivery) {
	defer func() { _ = d.Ack() }()
	var c inspect.ControlCommand
	if err := json.Unmarshal(d.Body, &c); err != nil {
		a.cfg.Log.Warn("presence: ignoring a command that is not JSON", zap.Error(err))
		return
	}
	switch c.Op {
	case inspect.OpPing:
		if d.ReplyTo != "" {
			// To the default exchange, which routes by queue name.
			a.send(ctx, "", d.ReplyTo, "")
		}
	default:
		a.cfg.Log.Debug("presence: ignoring an unknown command", zap.String("op", c.Op))
	}
}

// send publishes the worker's status to exchange with key; state, if set,
// overrides the status's.
func (a *Announcer) send(ctx context.Context, exchange, key, state string) {
	s := a.cfg.Status()
	s.ID, s.Interval, s.Sent = a.cfg.ID, a.cfg.Interval, time.Now()
	if state != "" {
		s.State = state
	}
	body, err := json.Marshal(s)
	if err != nil {
		a.cfg.Log.Error("presence: encode status", zap.Error(err))
		return
	}
	// Bounded by an interval: a broker that does not confirm must not
	// hold back the next heartbeat.
	cctx, cancel := context.WithTimeout(ctx, a.cfg.Interval)
	defer cancel()
	cf, err := a.cfg.Pub.Publish(cctx, &broker.Publishing{
		Exchange: exchange, Key: key, MessageID: uuid.NewString(),
		ContentType: "application/json", Body: body, Timestamp: s.Sent, Transient: true,
	})
	if err == nil {
		err = cf.Wait(cctx)
	}
	switch {
	case err == nil, errors.Is(err, conn.ErrUnroutable):
		// Unroutable: no one watches the workers now.
	case ctx.Err() != nil:
	default:
		a.cfg.Log.Debug("presence: heartbeat not sent", zap.Error(err))
	}
}
