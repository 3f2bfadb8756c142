package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
)

// Worker states (Worker.State).
const (
	// WorkerRunning: the worker takes deliveries.
	WorkerRunning = "running"
	// WorkerStopping: the worker was told to stop, takes no more
	// deliveries and waits for its running tasks.
	WorkerStopping = "stopping"
	// WorkerStopped is a worker's goodbye: it has stopped. Workers never
	// list a stopped worker.
	WorkerStopped = "stopped"
)

// DefaultPresenceWait is Config.PresenceWait when it is zero.
const DefaultPresenceWait = time.Second

// MaxRunningListed caps Worker.Running, so that a heartbeat stays small
// whatever a worker's concurrency; Worker.RunningCount has them all.
const MaxRunningListed = 1000

// Worker is what a live worker last said of itself, in a heartbeat or in
// its answer to a ping. It is also the heartbeat's JSON body
// (docs/protocol.md).
type Worker struct {
	// ID names the worker process's run: host/pid/random.
	ID   string `json:"id"`
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Version is warren's module version in the worker's binary.
	Version string `json:"version"`
	// Node is the broker node the worker is connected to, its password
	// hidden.
	Node        string   `json:"node,omitempty"`
	Queues      []string `json:"queues"`
	Concurrency int      `json:"concurrency"`
	Prefetch    int      `json:"prefetch"`
	// Started is when the worker's Run began; Sent when it sent this.
	Started time.Time `json:"started"`
	Sent    time.Time `json:"sent"`
	// Interval is the worker's heartbeat interval: it counts as gone
	// after about three of them without a word.
	Interval time.Duration `json:"interval_ns"`
	// State is WorkerRunning or WorkerStopping.
	State string `json:"state"`
	// Leading is true while the worker fires its group's schedules.
	Leading bool `json:"leading,omitempty"`
	// Running are the tasks whose handlers run now, oldest first, at most
	// MaxRunningListed; RunningCount counts them all.
	Running      []RunningTask `json:"running"`
	RunningCount int           `json:"running_count"`
	// Counts are the worker's delivery outcomes since it started.
	Counts WorkerCounts `json:"counts"`
	// Limits are the limits in force on the worker's queues.
	Limits []QueueLimit `json:"limits,omitempty"`
}

// QueueLimit is a limit a worker holds one of its queues to (its
// worker.Limit).
type QueueLimit struct {
	Queue string `json:"queue"`
	// PerWorker caps the queue's tasks running at once in the worker.
	PerWorker int `json:"per_worker,omitempty"`
	// Concurrency caps them over every worker with the same limit.
	Concurrency int `json:"concurrency,omitempty"`
	// Rate tasks start per Per over those workers, Burst at once after a
	// quiet spell.
	Rate  int           `json:"rate,omitempty"`
	Per   time.Duration `json:"per_ns,omitempty"`
	Burst int           `json:"burst,omitempty"`
}

// RunningTask is one task a worker runs now.
type RunningTask struct {
	ID    string `json:"id"`
	Task  string `json:"task"`
	Queue string `json:"queue"`
	// Attempt counts from 1.
	Attempt int       `json:"attempt"`
	Started time.Time `json:"started"`
}

// WorkerCounts are a worker's outcome counts since it started (its
// worker.Stats).
type WorkerCounts struct {
	Received  uint64 `json:"received"`
	Succeeded uint64 `json:"succeeded"`
	Retried   uint64 `json:"retried"`
	Dead      uint64 `json:"dead"`
	Expired   uint64 `json:"expired"`
	Requeued  uint64 `json:"requeued"`
}

// ControlCommand is the body of a message on routing.ControlExchange.
type ControlCommand struct {
	// Op is what to do: "ping" asks every worker for its Worker status,
	// sent to the message's reply_to queue.
	Op string `json:"op"`
}

// OpPing is ControlCommand.Op of a ping.
const OpPing = "ping"

// maxExpiryInterval caps the heartbeat interval a watcher trusts: a
// heartbeat that claims a longer one (a fake, or a worker configured so)
// stays listed about three minutes, not for ever.
const maxExpiryInterval = time.Minute

// gone says whether a worker heard at heard, with heartbeat interval
// every, counts as dead at now: three heartbeats missed, and a second
// for the broker and the watcher's own delays.
func gone(heard time.Time, every time.Duration, now time.Time) bool {
	if every <= 0 {
		every = time.Second
	}
	every = min(every, maxExpiryInterval)
	return now.Sub(heard) > 3*every+time.Second
}

// Workers returns the live workers, sorted by ID. The first call starts a
// watcher: a queue of the inspector's own bound to the heartbeats, then a
// ping that every worker answers at once. Every call until
// Config.PresenceWait after that ping waits for the answers (bounded by
// its ctx); later calls return what the watcher knows at once. A ping that
// failed is sent again by the next call. A worker that stops says goodbye
// and leaves the list; one that dies leaves it after about three missed
// heartbeats.
func (i *Inspector) Workers(ctx context.Context) ([]Worker, error) {
	w, err := i.watcher()
	if err != nil {
		return nil, err
	}
	at, err := w.pinged(ctx, i.cfg.Timeout, i.cfg.PresenceWait)
	if err != nil {
		return nil, fmt.Errorf("inspect: ping workers: %w", err)
	}
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return w.list(time.Now()), nil
}

// watcher returns the inspector's worker watcher, starting it.
func (i *Inspector) watcher() (*watch, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, conn.ErrClosed
	}
	if i.watch != nil {
		return i.watch, nil
	}
	w, err := startWatch(i.cfg.Conn)
	if err != nil {
		return nil, err
	}
	i.watch = w
	return w, nil
}

// pinged returns when the answers to the watcher's first ping are due:
// wait after it was sent. The first call sends it (bounded by timeout);
// the others wait for that call, and send it again if it failed.
func (w *watch) pinged(ctx context.Context, timeout, wait time.Duration) (time.Time, error) {
	select {
	case w.pinging <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	defer func() { <-w.pinging }()
	if !w.readyAt.IsZero() {
		return w.readyAt, nil
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := w.ping(cctx); err != nil {
		return time.Time{}, err
	}
	w.readyAt = time.Now().Add(wait)
	return w.readyAt, nil
}

// watchQueueTTL drops heartbeats no one read in time: a stale one says
// nothing a newer one does not.
const watchQueueTTL = 30 * time.Second

// watch keeps the table of live workers from their heartbeats.
type watch struct {
	sup    *broker.Supervisor
	pub    *broker.Publisher
	cons   *broker.Consumer
	queue  string
	log    *zap.Logger
	cancel context.CancelFunc
	done   chan struct{} // receive returned
	ran    chan struct{} // the consumer's Run returned

	pinging chan struct{} // held while a call sends the first ping
	readyAt time.Time     // when the first ping's answers are due; zero until it was sent (pinging guards it)

	mu      sync.Mutex
	workers map[string]heard
	gone    map[string]time.Time // said goodbye: a late heartbeat must not bring it back
}

type heard struct {
	w  Worker
	at time.Time // when it arrived here: the watcher's clock, not the worker's
}

func startWatch(cfg conn.Config) (*watch, error) {
	queue := routing.WatchQueuePrefix + uuid.NewString()
	topo := routing.Topology{
		Exchanges: []routing.Exchange{
			{Name: routing.PresenceExchange, Kind: routing.Fanout},
			{Name: routing.ControlExchange, Kind: routing.Fanout},
		},
		// Exclusive: on the node the watcher is connected to, gone with its
		// connection, and declared anew on the next.
		Queues: []routing.Queue{{Name: queue, Exclusive: true, NoDeadLetters: true, Args: map[string]any{
			"x-message-ttl": watchQueueTTL.Milliseconds(),
			"x-max-length":  int64(10000),
		}}},
		Bindings: []routing.Binding{{Exchange: routing.PresenceExchange, Queue: queue}},
	}
	// Its own connection, declaring its queue and binding on every
	// connect, so that the watch outlives a broker restart. A reconnect
	// the broker has not noticed the end of yet finds the old queue still
	// held (RESOURCE_LOCKED) and is tried again until it has.
	sup, err := broker.New(broker.Config{Conn: cfg, Role: "watch", Topology: topo})
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{
		sup:     sup,
		pub:     broker.NewPublisher(sup, 1),
		cons:    sup.NewConsumer(queue, 64, nil),
		queue:   queue,
		log:     cfg.Logger,
		cancel:  cancel,
		done:    make(chan struct{}),
		ran:     make(chan struct{}),
		pinging: make(chan struct{}, 1),
		workers: make(map[string]heard),
		gone:    make(map[string]time.Time),
	}
	go func() { defer close(w.ran); w.cons.Run(ctx) }()
	go w.receive(ctx)
	return w, nil
}

func (w *watch) close() error {
	w.cancel()
	<-w.done
	// Only once Run has returned: its basic.cancel and the channel.close
	// must not be in flight together on one channel.
	<-w.ran
	w.cons.Close()
	err := w.sup.Close()
	w.pub.Close()
	return err
}

// ping asks every worker for its status now, to the watcher's queue. No
// worker at all is not an error: the control exchange has no binding then.
func (w *watch) ping(ctx context.Context) error {
	body, _ := json.Marshal(ControlCommand{Op: OpPing})
	cf, err := w.pub.Publish(ctx, &broker.Publishing{
		Exchange: routing.ControlExchange, MessageID: uuid.NewString(),
		ContentType: "application/json", Body: body, ReplyTo: w.queue,
		Timestamp: time.Now(), Transient: true,
	})
	if err == nil {
		err = cf.Wait(ctx)
	}
	if errors.Is(err, conn.ErrUnroutable) {
		return nil
	}
	return err
}

func (w *watch) receive(ctx context.Context) {
	defer close(w.done)
	for {
		select {
		case d := <-w.cons.Deliveries():
			var s Worker
			if err := json.Unmarshal(d.Body, &s); err != nil || s.ID == "" {
				w.log.Warn("presence: ignoring a message that is not a worker's status",
					zap.String("queue", w.queue), zap.Error(err))
			} else {
				w.heard(s, time.Now())
			}
			_ = d.Ack()
		case <-ctx.Done():
			return
		}
	}
}

// heard records s as heard at now.
func (w *watch) heard(s Worker, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.State == WorkerStopped {
		delete(w.workers, s.ID)
		w.gone[s.ID] = now
		return
	}
	if _, bye := w.gone[s.ID]; bye {
		return
	}
	if prev, ok := w.workers[s.ID]; ok && s.Sent.Before(prev.w.Sent) {
		return // an answer to a ping that overtook a newer heartbeat
	}
	w.workers[s.ID] = heard{w: s, at: now}
}

// list returns the workers alive at now, forgetting the dead.
func (w *watch) list(now time.Time) []Worker {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Worker, 0, len(w.workers))
	for id, h := range w.workers {
		if gone(h.at, h.w.Interval, now) {
			delete(w.workers, id)
			continue
		}
		out = append(out, h.w)
	}
	for id, at := range w.gone {
		if now.Sub(at) > watchQueueTTL {
			delete(w.gone, id) // nothing older than this is still queued
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}
