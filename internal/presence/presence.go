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
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
)

// DefaultInterval is a worker's heartbeat interval unless it sets one.
const DefaultInterval = 2 * time.Second

// declareBackoff spaces the announcer's attempts to declare its topology
// and subscribe to its command queue when they fail: a worker without
// permission for presence tries again (and logs it) at most twice a
// minute; one whose last connection's command queue the broker has not
// yet dropped (RESOURCE_LOCKED) gets it back within seconds of that.
var declareBackoff = retry.Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}

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

// directReplyTo starts the reply_to of a ping sent with RabbitMQ's direct
// reply-to.
const directReplyTo = "amq.rabbitmq.reply-to"

// ReplyAllowed reports whether a worker answers a ping whose reply_to is
// replyTo: only a watcher's queue (routing.WatchQueuePrefix) or a direct
// reply-to. Anyone who may publish to the control exchange could otherwise
// make every worker publish its status into a work queue, where it would
// be taken for a task and dead-lettered.
func ReplyAllowed(replyTo string) bool {
	return strings.HasPrefix(replyTo, routing.WatchQueuePrefix) && len(replyTo) > len(routing.WatchQueuePrefix) ||
		strings.HasPrefix(replyTo, directReplyTo)
}

// Topology is what a worker with id declares for presence: both
// exchanges, and its command queue bound to the control exchange. The
// queue is exclusive to the worker's connection: declared on the node the
// worker is connected to, so that it never waits for another node to come
// back, and gone with the connection. It is not part of the worker's
// topology, whose declaration gates the connection and so the data path:
// the announcer declares it, best effort, each time it subscribes.
func Topology(id string) routing.Topology {
	q := CommandQueue(id)
	return routing.Topology{
		Exchanges: []routing.Exchange{
			{Name: routing.PresenceExchange, Kind: routing.Fanout},
			{Name: routing.ControlExchange, Kind: routing.Fanout},
		},
		Queues: []routing.Queue{{Name: q, Exclusive: true, NoDeadLetters: true, Args: map[string]any{
			// A command is worth nothing later: a ping's sender waits a
			// second or so.
			"x-message-ttl": int64(10000),
		}}},
		Bindings: []routing.Binding{{Exchange: routing.ControlExchange, Queue: q}},
	}
}

// Config configures an Announcer.
type Config struct {
	// ID is the worker's (NewID); the announcer declares Topology(ID).
	ID string
	// Sup is the worker's connection. The announcer publishes on a
	// channel of its own, so that a refusal of a heartbeat (no write
	// permission on the presence exchange) never closes the channel the
	// worker's retries and dead letters use.
	Sup *broker.Supervisor
	// Interval is the heartbeat interval. Defaults to DefaultInterval.
	Interval time.Duration
	// Status returns the worker's status now; the announcer fills in ID,
	// Interval and Sent.
	Status func() inspect.Worker
	Log    *zap.Logger
}

// Announcer sends a worker's heartbeats and answers its pings, best effort:
// when the broker refuses its topology, it logs that, tries again later,
// and sends nothing meanwhile; the worker consumes its queues regardless.
type Announcer struct {
	cfg  Config
	pub  *broker.Publisher
	cons *broker.Consumer
	poke chan struct{}

	// Run's goroutine only: heartbeats failed in a row, and none is
	// sent before holdUntil, so that a broker that refuses them (no
	// write permission on the presence exchange: each refusal closes the
	// announcer's channel) is asked at most twice a minute.
	failed    int
	holdUntil time.Time
}

// New returns an announcer; Run starts it.
func New(cfg Config) *Announcer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	a := &Announcer{
		cfg:  cfg,
		pub:  broker.NewPublisher(cfg.Sup, 1),
		cons: cfg.Sup.NewConsumer(CommandQueue(cfg.ID), 4, nil),
		poke: make(chan struct{}, 1),
	}
	a.cons.DeclareTopologyOnSubscribe(Topology(cfg.ID), declareBackoff)
	return a
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
		a.pub.Close()
	}()
	// The first heartbeat goes as soon as the exchanges and the command
	// queue are declared, so that a watcher lists a new worker at once;
	// nothing goes while they cannot be.
	if !a.waitDeclared(ctx) {
		return
	}
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	a.beat(ctx)
	for {
		select {
		case <-t.C:
			a.beat(ctx)
		case <-a.poke:
			a.beat(ctx)
		case d := <-a.cons.Deliveries():
			a.command(ctx, d)
		case <-ctx.Done():
			gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), goodbyeTimeout)
			_ = a.send(gctx, routing.PresenceExchange, "", inspect.WorkerStopped)
			cancel()
			return
		}
	}
}

// beat sends a heartbeat, unless failed ones hold it back.
func (a *Announcer) beat(ctx context.Context) {
	if time.Now().Before(a.holdUntil) {
		return
	}
	err := a.send(ctx, routing.PresenceExchange, "", "")
	if err == nil {
		if a.failed > 0 {
			a.cfg.Log.Info("presence: heartbeats sent again")
		}
		a.failed, a.holdUntil = 0, time.Time{}
		return
	}
	if !a.cfg.Sup.Connected() {
		// Lost with the connection, not refused: the next one goes out
		// as soon as it is back, lest watchers drop a worker that is
		// fine.
		return
	}
	a.failed++
	wait := declareBackoff.Next(a.failed)
	a.holdUntil = time.Now().Add(wait)
	if a.failed == 3 {
		// Not the first: a reconnect costs one or two.
		a.cfg.Log.Warn("presence: heartbeats fail; the worker runs on without them, trying again less often (does its user have write permission on warren.presence?)",
			zap.Error(err), zap.Duration("retry_in", wait))
	}
}

// Declared reports whether the announcer is subscribed to its command
// queue now, and so has declared its topology on this connection.
func (a *Announcer) Declared() bool { return a.cons.Consuming() }

// waitDeclared waits until the command consumer has subscribed, and so
// declared Topology, or until ctx is done (false).
func (a *Announcer) waitDeclared(ctx context.Context) bool {
	for wait := 10 * time.Millisecond; !a.cons.Consuming(); wait = min(2*wait, a.cfg.Interval) {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
	}
	return true
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
		if !ReplyAllowed(d.ReplyTo) {
			a.cfg.Log.Debug("presence: ignoring a ping whose reply_to is not a watcher's queue", zap.String("reply_to", d.ReplyTo))
			return
		}
		// To the default exchange, which routes by queue name.
		_ = a.send(ctx, "", d.ReplyTo, "")
	default:
		a.cfg.Log.Debug("presence: ignoring an unknown command", zap.String("op", c.Op))
	}
}

// send publishes the worker's status to exchange with key; state, if set,
// overrides the status's. It returns why the status was not sent, or nil;
// nil too when no one listens (unroutable) or ctx ended.
func (a *Announcer) send(ctx context.Context, exchange, key, state string) error {
	s := a.cfg.Status()
	s.ID, s.Interval, s.Sent = a.cfg.ID, a.cfg.Interval, time.Now()
	if state != "" {
		s.State = state
	}
	body, err := json.Marshal(s)
	if err != nil {
		a.cfg.Log.Error("presence: encode status", zap.Error(err))
		return nil // sending again would not help
	}
	// Bounded by an interval: a broker that does not confirm must not
	// hold back the next heartbeat.
	cctx, cancel := context.WithTimeout(ctx, a.cfg.Interval)
	defer cancel()
	cf, err := a.pub.Publish(cctx, &broker.Publishing{
		Exchange: exchange, Key: key, MessageID: uuid.NewString(),
		ContentType: "application/json", Body: body, Timestamp: s.Sent, Transient: true,
	})
	if err == nil {
		err = cf.Wait(cctx)
	}
	switch {
	case err == nil, errors.Is(err, conn.ErrUnroutable):
		// Unroutable: no one watches the workers now.
		return nil
	case ctx.Err() != nil:
		return nil
	default:
		a.cfg.Log.Debug("presence: status not sent", zap.String("exchange", exchange), zap.String("key", key), zap.Error(err))
		return err
	}
}
