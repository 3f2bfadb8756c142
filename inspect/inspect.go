package inspect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
)

// Where a queue's counts come from (Queue.Source, Report.Source).
const (
	// SourceManagement: the management HTTP API, which counts unacked
	// messages and rates too.
	SourceManagement = "management"
	// SourceAMQP: a passive declare, which tells ready messages and
	// consumers only.
	SourceAMQP = "amqp"
)

// DefaultTimeout is Config.Timeout when it is zero.
const DefaultTimeout = 10 * time.Second

// ErrNeedsManagement: listing queues (rather than reading named ones)
// needs the management API, and it is off or did not answer; the Report
// says which.
var ErrNeedsManagement = errors.New("listing queues needs the management API")

// Config configures an Inspector. The zero value reads a local broker and
// its management API.
type Config struct {
	// Conn is how to reach the broker over AMQP. Metrics is not used.
	Conn conn.Config
	// Management is the URL of the management API (the rabbitmq_management
	// plugin), http:// or https://, with an optional path prefix; user
	// and password in it replace the broker URL's. Defaults to the broker's
	// host, http on port 15672 for amqp:// and https on 15671 for amqps://,
	// with the broker URL's user, password and vhost.
	Management string
	// NoManagement turns the management API off: AMQP only.
	NoManagement bool
	// Timeout bounds each request to the broker or the management API, so
	// that one that does not answer fails the call rather than hang it.
	// Defaults to DefaultTimeout.
	Timeout time.Duration
	// HTTPClient asks the management API. Defaults to a client with
	// Conn.TLS for https.
	HTTPClient *http.Client
	// PresenceWait is how long Workers waits for the workers' answers to
	// the ping its first call sends: every call until then waits.
	// Defaults to DefaultPresenceWait.
	PresenceWait time.Duration
}

// Queue is what is known of one queue. A nil field is not known from
// the source.
type Queue struct {
	Name string
	// Ready counts the messages waiting for a consumer.
	Ready int
	// Consumers counts the queue's consumers (worker channels).
	Consumers int
	// Unacked counts messages delivered and not yet acked: tasks running,
	// or waiting in a worker's prefetch window. The management API only.
	Unacked *int
	// Dead counts the ready messages of the queue's dead-letter queue
	// (routing.DeadQueue); nil when it has none.
	Dead *int
	// PublishRate and DeliverRate are messages per second, as the
	// management API last sampled them (deliveries include basic.get).
	PublishRate, DeliverRate *float64
	// Source says where Ready and Consumers come from.
	Source string
	// Missing is true for a queue asked for by name that does not exist.
	Missing bool
}

// Filter chooses the queues Queues reports.
type Filter struct {
	// Names are the queues to report, in this order. None: every work
	// queue (a queue with a <name>.dead beside it, neither warren.* nor
	// *.dead itself), which needs the management API.
	Names []string
	// All reports, when Names is empty, every queue of the vhost.
	All bool
}

// Report is the answer of Queues.
type Report struct {
	// Source is SourceManagement when the management API answered, else
	// SourceAMQP.
	Source string
	// Management is the management API asked (without credentials), ""
	// when it is off; Vhost the vhost it was asked about.
	Management, Vhost string
	// ManagementErr says why the management API was not used, when it is
	// on and did not answer.
	ManagementErr error
	// Queues, in the order of Filter.Names, or sorted by name.
	Queues []Queue
}

// Inspector reads queues. It is safe for concurrent use; Close it when
// done.
type Inspector struct {
	cfg  Config
	mgmt *management // nil: off

	mu     sync.Mutex
	sup    *broker.Supervisor // made on first need
	watch  *watch             // made by the first Workers
	closed bool
}

// New checks cfg and returns an Inspector. It connects to nothing yet.
func New(cfg Config) (*Inspector, error) {
	cfg.Conn = cfg.Conn.WithDefaults()
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PresenceWait <= 0 {
		cfg.PresenceWait = DefaultPresenceWait
	}
	if err := broker.CheckURL(cfg.Conn.URL); err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	i := &Inspector{cfg: cfg}
	if !cfg.NoManagement {
		m, err := newManagement(cfg.Conn.URL, cfg.Management, cfg.Conn.TLS, cfg.HTTPClient)
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		i.mgmt = m
	}
	return i, nil
}

// Close disconnects.
func (i *Inspector) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.closed = true
	var err error
	if i.watch != nil {
		err = i.watch.close()
	}
	if i.sup != nil {
		err = errors.Join(err, i.sup.Close())
	}
	return err
}

// Management returns the address of the management API the inspector
// asks, without credentials, and the vhost; "" when it is off.
func (i *Inspector) Management() (url, vhost string) {
	if i.mgmt == nil {
		return "", ""
	}
	return i.mgmt.base, i.mgmt.vhost
}

// Ping connects over AMQP if it is not connected, waiting until ctx is
// done; a broker that refuses the login or the vhost fails it at once,
// with an error for which errors.Is(err, conn.ErrRefused) is true.
func (i *Inspector) Ping(ctx context.Context) error {
	sup, err := i.supervisor()
	if err != nil {
		return err
	}
	return sup.Wait(ctx)
}

// supervisor returns the AMQP connection's supervisor, starting it.
func (i *Inspector) supervisor() (*broker.Supervisor, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, conn.ErrClosed
	}
	if i.sup == nil {
		sup, err := broker.New(broker.Config{Conn: i.cfg.Conn, Role: "inspect"})
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		i.sup = sup
	}
	return i.sup, nil
}

// connected returns the supervisor once it has a session, bounded by ctx.
func (i *Inspector) connected(ctx context.Context) (*broker.Supervisor, error) {
	sup, err := i.supervisor()
	if err != nil {
		return nil, err
	}
	if err := sup.Wait(ctx); err != nil {
		return nil, err
	}
	return sup, nil
}

// call bounds one request by the configured timeout.
func (i *Inspector) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, i.cfg.Timeout)
}

// Queue reads one queue and its dead-letter queue with passive declares,
// which never create them. A missing queue is an error for which
// errors.Is(err, conn.ErrNotFound) is true.
func (i *Inspector) Queue(ctx context.Context, name string) (Queue, error) {
	cctx, cancel := i.call(ctx)
	defer cancel()
	sup, err := i.connected(cctx)
	if err != nil {
		return Queue{}, err
	}
	return passive(cctx, sup, name)
}

func passive(ctx context.Context, sup *broker.Supervisor, name string) (Queue, error) {
	st, err := sup.InspectQueue(ctx, name)
	if err != nil {
		return Queue{}, err
	}
	q := Queue{Name: name, Ready: st.Ready, Consumers: st.Consumers, Source: SourceAMQP}
	dst, err := sup.InspectQueue(ctx, routing.DeadQueue(name))
	switch {
	case err == nil:
		q.Dead = &dst.Ready
	case !broker.IsNotFound(err):
		return Queue{}, err
	}
	return q, nil
}

// CheckExchange returns nil if exchange exists (a passive declare, which
// never creates it). A missing one is an error for which
// errors.Is(err, conn.ErrNotFound) is true. The default exchange ("")
// always exists.
func (i *Inspector) CheckExchange(ctx context.Context, exchange string) error {
	cctx, cancel := i.call(ctx)
	defer cancel()
	sup, err := i.connected(cctx)
	if err != nil {
		return err
	}
	return sup.CheckExchange(cctx, exchange)
}

// Purge deletes the ready messages of queue and returns how many. Messages
// workers hold unacked stay, and so do its dead letters (deadletter.Purge).
// A missing queue is an error for which errors.Is(err, conn.ErrNotFound)
// is true.
func (i *Inspector) Purge(ctx context.Context, queue string) (int, error) {
	cctx, cancel := i.call(ctx)
	defer cancel()
	sup, err := i.connected(cctx)
	if err != nil {
		return 0, err
	}
	return sup.PurgeQueue(cctx, queue)
}

// Delete deletes the work queue and then its dead-letter queue, with every
// message in them, and returns how many ready messages and dead letters
// went. The broker refuses while a consumer is attached to either, so stop
// the workers first; a worker started later declares the queue again,
// empty. A missing work queue is an error for which errors.Is(err,
// conn.ErrNotFound) is true; a missing dead-letter queue is not.
func (i *Inspector) Delete(ctx context.Context, queue string) (ready, dead int, err error) {
	cctx, cancel := i.call(ctx)
	defer cancel()
	sup, err := i.connected(cctx)
	if err != nil {
		return 0, 0, err
	}
	if ready, err = sup.RemoveQueue(cctx, queue); err != nil {
		return 0, 0, err
	}
	dead, err = sup.RemoveQueue(cctx, routing.DeadQueue(queue))
	if broker.IsNotFound(err) {
		err = nil
	}
	return ready, dead, err
}

// Queues reports the queues f chooses: from the management API when it
// answers, else, for named queues, from passive declares. A named queue
// that does not exist is reported Missing. With no names and no management
// API the error is ErrNeedsManagement, with the Report saying why.
func (i *Inspector) Queues(ctx context.Context, f Filter) (*Report, error) {
	rep := &Report{}
	if i.mgmt != nil {
		rep.Management, rep.Vhost = i.mgmt.base, i.mgmt.vhost
		cctx, cancel := i.call(ctx)
		qs, err := i.mgmt.queues(cctx)
		cancel()
		if err == nil {
			rep.Source = SourceManagement
			rows, need := fromManagement(qs, f)
			if err := i.fill(ctx, rows, need); err != nil {
				return rep, err
			}
			rep.Queues = rows
			return rep, nil
		}
		rep.ManagementErr = err
	}
	if len(f.Names) == 0 {
		if rep.ManagementErr != nil {
			return rep, fmt.Errorf("%w: the management API at %s did not answer (%v)", ErrNeedsManagement, rep.Management, rep.ManagementErr)
		}
		return rep, fmt.Errorf("%w, which is off", ErrNeedsManagement)
	}
	rep.Source = SourceAMQP
	cctx, cancel := i.call(ctx)
	sup, err := i.connected(cctx)
	cancel()
	if err != nil {
		return rep, err
	}
	for _, n := range f.Names {
		cctx, cancel := i.call(ctx)
		q, err := passive(cctx, sup, n)
		cancel()
		switch {
		case broker.IsNotFound(err):
			q = Queue{Name: n, Missing: true}
		case err != nil:
			return rep, fmt.Errorf("queue %q: %w", n, err)
		}
		rep.Queues = append(rep.Queues, q)
	}
	return rep, nil
}

// needs says what the management API left out of a row.
type needs struct{ counts, dead bool }

// fromManagement picks the rows f chooses, and says which need counts
// from AMQP: the management API leaves them out until the broker has
// emitted a queue's first statistics (every 5s by default).
func fromManagement(qs []mgmtQueue, f Filter) ([]Queue, []needs) {
	byName := make(map[string]*mgmtQueue, len(qs))
	for i := range qs {
		byName[qs[i].Name] = &qs[i]
	}
	row := func(q *mgmtQueue) (Queue, needs) {
		r, n := Queue{Name: q.Name, Source: SourceManagement}, needs{}
		if q.Ready == nil || q.Consumers == nil {
			n.counts = true
		} else {
			r.Ready, r.Consumers, r.Unacked = *q.Ready, *q.Consumers, q.Unacked
			// With statistics, a rate the API leaves out is one with
			// nothing to count since the plugin started: zero.
			pub, del := 0.0, 0.0
			if q.Stats.Publish != nil {
				pub = q.Stats.Publish.Rate
			}
			if q.Stats.DeliverGet != nil {
				del = q.Stats.DeliverGet.Rate
			}
			r.PublishRate, r.DeliverRate = &pub, &del
		}
		if d, ok := byName[routing.DeadQueue(q.Name)]; ok {
			if d.Ready != nil {
				r.Dead = d.Ready
			} else {
				n.dead = true
			}
		}
		return r, n
	}
	var rows []Queue
	var need []needs
	add := func(r Queue, n needs) { rows, need = append(rows, r), append(need, n) }
	if len(f.Names) > 0 {
		for _, name := range f.Names {
			q, ok := byName[name]
			if !ok {
				add(Queue{Name: name, Missing: true}, needs{})
				continue
			}
			add(row(q))
		}
		return rows, need
	}
	for i := range qs {
		q := &qs[i]
		if !f.All && !isWorkQueue(q.Name, byName) {
			continue
		}
		add(row(q))
	}
	sort.Sort(byQueueName{rows, need})
	return rows, need
}

// isWorkQueue reports whether name is a work queue among the listed ones:
// it has a dead-letter queue beside it, and is not warren's own or one.
func isWorkQueue(name string, listed map[string]*mgmtQueue) bool {
	if strings.HasPrefix(name, "warren.") || strings.HasSuffix(name, routing.DeadSuffix) {
		return false
	}
	_, ok := listed[routing.DeadQueue(name)]
	return ok
}

type byQueueName struct {
	rows []Queue
	need []needs
}

func (b byQueueName) Len() int           { return len(b.rows) }
func (b byQueueName) Less(i, j int) bool { return b.rows[i].Name < b.rows[j].Name }
func (b byQueueName) Swap(i, j int) {
	b.rows[i], b.rows[j] = b.rows[j], b.rows[i]
	b.need[i], b.need[j] = b.need[j], b.need[i]
}

// fill completes, with passive declares, the rows whose counts the
// management API did not have yet. It connects only if one needs it.
func (i *Inspector) fill(ctx context.Context, rows []Queue, need []needs) error {
	for k := range rows {
		r, n := &rows[k], need[k]
		if !n.counts && !n.dead {
			continue
		}
		cctx, cancel := i.call(ctx)
		sup, err := i.connected(cctx)
		if err != nil {
			cancel()
			return fmt.Errorf("the management API has no statistics yet for queue %q, and AMQP: %w", r.Name, err)
		}
		p, err := passive(cctx, sup, r.Name)
		cancel()
		switch {
		case broker.IsNotFound(err): // deleted since the management API listed it
			*r = Queue{Name: r.Name, Missing: true}
			continue
		case err != nil:
			return fmt.Errorf("queue %q: %w", r.Name, err)
		}
		if n.counts {
			r.Ready, r.Consumers, r.Source = p.Ready, p.Consumers, SourceAMQP
		}
		if n.dead {
			r.Dead = p.Dead
		}
	}
	return nil
}
