package producer

import (
	"errors"
	"fmt"
	"time"

	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// Option changes one enqueue. warren uses functional options for every
// per-call choice.
type Option func(*options)

type options struct {
	id          string
	route       *routing.Route
	priority    uint8
	hasPriority bool // WithPriority was given: it wins over the task's, even with 0
	headers     map[string]any
	eta         time.Time     // WithETA
	delay       time.Duration // WithDelay: from the enqueue
	expires     time.Time
	maxAttempts int
	early       bool   // WithEarlyDelivery
	replyTo     string // set by EnqueueResult
	unique      task.Unique
	uniqueSet   bool // WithUnique: unique's Key and For override the task's
	holdSet     bool // WithUniqueHold: unique's Hold overrides the task's
}

// resolve applies opts in order: a later option overrides an earlier one.
func resolve(opts []Option) options {
	if len(opts) == 0 {
		return options{} // the common case, without the allocation below
	}
	o := new(options) // escapes: an Option is an indirect call
	for _, opt := range opts {
		opt(o)
	}
	return *o
}

// NewMessage returns the message an enqueue of t with opts would publish,
// as a worker reads it: id, task name, headers, encoded body, content type
// and the times the options set. Nothing is sent and no route is looked
// up. Package warrentest runs handlers on it, as a worker would.
func NewMessage(t task.Task, opts ...Option) (*task.Message, error) {
	o := resolve(opts)
	now := time.Now()
	id, err := o.identify(t, now)
	if err != nil {
		return nil, err
	}
	m, err := o.message(t, id, now)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// identify checks t and returns its id: the caller's, or one made now.
func (o *options) identify(t task.Task, now time.Time) (string, error) {
	if t.Name == "" {
		return "", errors.New("task has no name (build it with Def.New)")
	}
	if o.id != "" {
		return o.id, nil
	}
	return task.NewID(now), nil
}

// message encodes t and builds its envelope as enqueued at now. It
// returns a value: an enqueue keeps it on its stack.
func (o *options) message(t task.Task, id string, now time.Time) (task.Message, error) {
	var body []byte
	var contentType string
	if t.Format == nil { // else the format builds the body once the headers are known
		var err error
		if body, contentType, err = t.Encode(); err != nil {
			return task.Message{}, err
		}
	}
	eta := o.eta
	if o.delay > 0 {
		eta = now.Add(o.delay)
	}
	priority := t.Priority
	if o.hasPriority {
		priority = o.priority
	}
	m := task.Message{ID: id, Task: t.Name, ContentType: contentType, Body: body, Timestamp: now, ETA: eta,
		Expires: o.expires, Priority: priority, MaxAttempts: o.maxAttempts, EnqueuedAt: now, ReplyTo: o.replyTo}
	if u := o.uniqueOf(t); u.Key != "" {
		if u.For <= 0 {
			return task.Message{}, fmt.Errorf("%w: unique task %s needs a lock duration above zero", ErrInvalid, t.Name)
		}
		m.Unique, m.UniqueHold = routing.UniqueQueue(t.Name, u.Key), u.Hold
	}
	m.Headers = m.BuildHeaders(o.headers)
	if t.Format != nil {
		return encodeFormat(t, m)
	}
	return m, nil
}

// encodeFormat builds m's body with t's format. A function of its own, so
// that only a formatted task's message goes to the heap: a pointer passed
// to an interface method escapes, and in message it would take every
// task's along.
func encodeFormat(t task.Task, m task.Message) (task.Message, error) {
	if err := t.Format.Encode(&m, t.Payload, t.Codec); err != nil {
		return task.Message{}, err
	}
	return m, nil
}

// uniqueOf returns what makes this enqueue of t unique: the definition's
// (task.WithUnique), overridden by WithUnique and WithUniqueHold.
func (o *options) uniqueOf(t task.Task) task.Unique {
	u := t.Unique
	if o.uniqueSet {
		u.Key, u.For = o.unique.Key, o.unique.For
	}
	if o.holdSet {
		u.Hold = o.unique.Hold
	}
	return u
}

// WithUnique makes this enqueue unique by key for at most d, as
// task.WithUnique does for every enqueue of a definition (whose key and
// duration it overrides): while a task of the same name and key is
// queued, delayed or running, the enqueue fails with a *DuplicateError
// (errors.Is ErrDuplicate) naming that task, and nothing is published. An
// empty key makes it an ordinary enqueue.
func WithUnique(key string, d time.Duration) Option {
	return func(o *options) { o.unique.Key, o.unique.For, o.uniqueSet = key, d, true }
}

// WithUniqueHold keeps a unique task's lock for h after the task succeeded
// or was dead-lettered, as task.WithUniqueHold does.
func WithUniqueHold(h time.Duration) Option {
	return func(o *options) { o.unique.Hold, o.holdSet = h, true }
}

// WithID sets the task id instead of a new UUID, e.g. to make an enqueue
// retried by the caller carry the same id, so handlers can deduplicate. It
// names one task: EnqueueBatch refuses it for a batch of more than one.
func WithID(id string) Option { return func(o *options) { o.id = id } }

// WithQueue publishes straight to queue through the default exchange,
// bypassing the route table.
func WithQueue(queue string) Option {
	return func(o *options) { r := routing.ToQueue(queue); o.route = &r }
}

// WithRoute publishes to exchange with routing key, bypassing the route
// table.
func WithRoute(exchange, key string) Option {
	return func(o *options) { o.route = &routing.Route{Exchange: exchange, Key: key} }
}

// WithPriority sets the AMQP priority, over the task definition's
// (task.WithPriority), even with 0. Only a priority queue
// (routing.Queue.MaxPriority) delivers higher priorities first, among the
// tasks it holds ready; a priority above its maximum counts as the
// maximum, and other queues ignore it.
func WithPriority(p uint8) Option {
	return func(o *options) { o.priority, o.hasPriority = p, true }
}

// WithHeaders adds application headers. They never override the protocol
// headers (task, id, retries, eta, expires).
func WithHeaders(h map[string]any) Option {
	return func(o *options) {
		if o.headers == nil {
			o.headers = make(map[string]any, len(h))
		}
		for k, v := range h {
			o.headers[k] = v
		}
	}
}

// WithDelay holds the task back for d from its enqueue in the delay levels
// before it reaches its queue. The levels count whole seconds: any d above
// zero is rounded up, so 100ms waits a second; d of zero or less runs the
// task at once. At most about 48 days. The delay levels deliver to queues,
// so the task's route must lead to queues the producer's Topology names
// (or use WithQueue); a route that reaches several sends one copy to each,
// and a failure of some is a *QueuesError. WithDelay and WithETA override
// each other: the later one counts.
func WithDelay(d time.Duration) Option {
	return func(o *options) { o.delay, o.eta = d, time.Time{} }
}

// WithETA holds the task back until t, as WithDelay does: a t in the
// future waits in the delay levels for the time left, rounded up to whole
// seconds; a t that is not in the future runs the task at once (it still
// carries its eta header).
func WithETA(t time.Time) Option { return func(o *options) { o.eta, o.delay = t, 0 } }

// WithEarlyDelivery sends a task due later (WithDelay, WithETA) to its
// route at once, carrying its eta header, instead of into the delay
// levels; a warren worker that takes it before its ETA holds it in the
// delay levels until then (docs/protocol.md, "ETA and expiry"). It is for
// routes whose queues only the broker knows (bindings outside
// Config.Topology, topic and fanout exchanges), which the delay levels
// cannot deliver to: without it such a task fails with ErrNoDelayTarget.
// A consumer other than a warren worker sees the task early.
func WithEarlyDelivery() Option { return func(o *options) { o.early = true } }

// WithExpiry makes the task expire d from now: a worker that gets it later
// does not run it (it is dead-lettered with reason "expired", or dropped if
// its definition says so).
func WithExpiry(d time.Duration) Option {
	return func(o *options) { o.expires = time.Now().Add(d) }
}

// WithDeadline makes the task expire at t, as WithExpiry does.
func WithDeadline(t time.Time) Option { return func(o *options) { o.expires = t } }

// WithMaxAttempts overrides the task definition's MaxAttempts for this
// enqueue.
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }
