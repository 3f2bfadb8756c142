package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
)

// Config configures a Supervisor. Zero values work.
type Config struct {
	// Conn is how to reach the broker: URL, TLS, heartbeat, dial timeout,
	// logger, OnReconnect (for the reconnects metric), with the defaults of
	// conn.Config.WithDefaults. Metrics is not the supervisor's to use.
	Conn conn.Config
	// Role names the process role in logs and metrics: "producer" or "worker".
	Role string
	// Backoff spaces re-dials. Defaults to 100ms doubling to 5s, 20% jitter:
	// a restarted broker is back in seconds, and 5s keeps a fleet's retries
	// cheap for it.
	Backoff retry.Backoff
	// Topology is declared on every connect, before anyone uses the
	// connection, so consumers and publishers never meet a missing queue
	// after a broker lost its non-durable state.
	Topology routing.Topology
}

// Session is one live connection. Done is closed when it dies.
type Session struct {
	Conn *amqp.Connection
	Gen  uint64 // counts connects from 1
	Node string // the URL of the node it is connected to, redacted
	done chan struct{}
}

// Done is closed when the session's connection has closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Supervisor keeps one connection alive: it dials, declares the topology,
// hands the connection out as a Session, and re-dials when it dies.
type Supervisor struct {
	cfg  Config
	urls []string // the nodes, from cfg.Conn.URL
	log  *zap.Logger

	mu      sync.Mutex
	cur     *Session
	ready   chan struct{} // closed while cur != nil
	lastErr error
	closed  bool

	stop    chan struct{}
	stopped chan struct{}
	chanGen atomic.Uint64 // generations of channels opened on any session

	bindMu   sync.Mutex
	bound    map[routing.Binding]bool // bindings ensured on session boundGen
	boundGen uint64

	touchMu   sync.Mutex
	touchCh   *amqp.Channel // Touch's channel, on session touchSess
	touchSess *Session
}

// New validates cfg and starts supervising in the background. It does not
// wait for the first connect: Session does.
func New(cfg Config) (*Supervisor, error) {
	cfg.Conn = cfg.Conn.WithDefaults()
	if err := CheckURL(cfg.Conn.URL); err != nil {
		return nil, err
	}
	if err := cfg.Topology.Validate(); err != nil {
		return nil, err
	}
	if cfg.Backoff == (retry.Backoff{}) {
		cfg.Backoff = retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}
	}
	s := &Supervisor{
		cfg:     cfg,
		urls:    conn.SplitURLs(cfg.Conn.URL),
		log:     cfg.Conn.Logger.With(zap.String("role", cfg.Role)),
		ready:   make(chan struct{}),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// CheckURL returns an error, without the URL's password, if url is not
// one the client can dial, or a list (conn.SplitURLs) holding such a URL:
// conn.CheckURL's checks, in words a person can act on, then amqp091-go's
// own parse for what only it refuses (whitespace, a port past 32 bits, bad
// query parameters).
func CheckURL(url string) error {
	if err := conn.CheckURL(url); err != nil {
		return err
	}
	for _, u := range conn.SplitURLs(url) {
		if _, err := amqp.ParseURI(u); err != nil {
			// Not err itself: url.Error quotes the URL, password included.
			return fmt.Errorf("broker URL %s is not one the client accepts: check the port, the vhost and the query parameters", conn.Redact(u))
		}
	}
	return nil
}

// Session returns the live session, waiting for one until ctx is done. On
// timeout the error says why the last dial failed.
func (s *Supervisor) Session(ctx context.Context) (*Session, error) {
	for {
		s.mu.Lock()
		cur, ready, closed := s.cur, s.ready, s.closed
		s.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		var lastErr error
		if cur != nil {
			select {
			case <-cur.done:
				// Dead but not yet cleared: wait for the supervisor.
			default:
				return cur, nil
			}
		}
		select {
		case <-ready:
		case <-cur.doneOrNil():
		case <-s.stop:
			return nil, ErrClosed
		case <-ctx.Done():
			s.mu.Lock()
			lastErr = s.lastErr
			s.mu.Unlock()
			if lastErr != nil {
				return nil, fmt.Errorf("not connected to %s: %w (last error: %v)", conn.Redact(s.cfg.Conn.URL), ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("not connected to %s: %w", conn.Redact(s.cfg.Conn.URL), ctx.Err())
		}
		if cur != nil {
			// The old session died; give the supervisor a moment to clear it.
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

func (s *Session) doneOrNil() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.done
}

// Wait waits for a live session as Session does, but gives up at once when
// the broker refused the last dial's login or vhost (conn.ErrRefused),
// which no re-dial cures until someone fixes it: for tools that would
// rather fail fast than wait out their context.
func (s *Supervisor) Wait(ctx context.Context) error {
	for {
		// Short waits, so that a refusal is seen after the first dial.
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := s.Session(wctx)
		cancel()
		if err == nil {
			return nil
		}
		s.mu.Lock()
		last := s.lastErr
		s.mu.Unlock()
		if errors.Is(last, conn.ErrRefused) {
			return fmt.Errorf("connect to %s: %w", conn.Redact(s.cfg.Conn.URL), last)
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// isRefused reports whether a dial failed because the broker refused the
// login (ACCESS_REFUSED, amqp091-go's ErrCredentials) or the vhost
// (NOT_ALLOWED, or amqp091-go's ErrVhost, a 403 too). RabbitMQ answers a
// wrong password only after about three seconds, and amqp091-go reports a
// handshake cut short after the credentials were sent as ErrCredentials
// too, so a dial timeout shorter than that reads as a refusal: the broker
// took the connection and did not take the login. The two read apart by
// their text: "username or password not allowed", "no access to this
// vhost".
func isRefused(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed)
}

// refusedError is a refused dial, which errors.Is also takes for
// conn.ErrRefused. Its text is the broker's.
type refusedError struct{ err error }

func (e refusedError) Error() string        { return e.err.Error() }
func (e refusedError) Unwrap() error        { return e.err }
func (e refusedError) Is(target error) bool { return target == conn.ErrRefused }

// Node returns the redacted URL of the node the live session is connected
// to, or "" when there is none (for logs and readiness probes).
func (s *Supervisor) Node() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return ""
	}
	select {
	case <-s.cur.done:
		return ""
	default:
		return s.cur.Node
	}
}

// Connected reports whether a session is live now (for readiness probes).
func (s *Supervisor) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return false
	}
	select {
	case <-s.cur.done:
		return false
	default:
		return true
	}
}

// NextChannelGen returns a fresh channel generation, unique for the
// supervisor's lifetime, so deliveries of different channels never share one.
func (s *Supervisor) NextChannelGen() uint64 { return s.chanGen.Add(1) }

// Logger returns the supervisor's logger.
func (s *Supervisor) Logger() *zap.Logger { return s.log }

// Close stops supervising and closes the connection. Channels on it close
// too: unacked deliveries go back to their queues.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.stopped
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	return nil
}

func (s *Supervisor) run() {
	defer close(s.stopped)
	var gen uint64
	attempt, node := 0, 0
	for {
		nodeURL := s.urls[node]
		ac, err := s.connect(nodeURL)
		if err != nil {
			attempt++
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			node = (node + 1) % len(s.urls)
			// The next node at once, until every node has failed in a
			// row; then the backoff, counted in such rounds.
			var d time.Duration
			if attempt%len(s.urls) == 0 {
				d = s.cfg.Backoff.Next(attempt / len(s.urls))
			}
			lvl := s.log.Warn
			if attempt == 1 {
				lvl = s.log.Info
			}
			lvl("broker connect failed", zap.String("node", conn.Redact(nodeURL)), zap.Error(err), zap.Int("attempt", attempt), zap.Duration("retry_in", d))
			select {
			case <-time.After(d):
				continue
			case <-s.stop:
				return
			}
		}
		attempt = 0
		gen++
		sess := &Session{Conn: ac, Gen: gen, Node: conn.Redact(nodeURL), done: make(chan struct{})}
		closes := ac.NotifyClose(make(chan *amqp.Error, 1))
		s.mu.Lock()
		s.cur, s.lastErr = sess, nil
		close(s.ready)
		s.mu.Unlock()
		if gen > 1 {
			s.log.Info("broker reconnected", zap.String("node", sess.Node), zap.Uint64("session", gen))
			if s.cfg.Conn.OnReconnect != nil {
				s.cfg.Conn.OnReconnect()
			}
		} else {
			s.log.Info("broker connected", zap.String("node", sess.Node))
		}

		var reason error
		select {
		case e, ok := <-closes:
			if ok && e != nil {
				reason = e
			} else {
				reason = errors.New("connection closed")
			}
		case <-s.stop:
			_ = ac.Close()
		}
		s.mu.Lock()
		s.cur = nil
		s.ready = make(chan struct{})
		if reason != nil {
			s.lastErr = reason
		}
		s.mu.Unlock()
		close(sess.done)
		if reason == nil {
			return
		}
		s.log.Warn("broker connection lost", zap.String("node", sess.Node), zap.Error(reason), zap.Uint64("session", gen))
		// A node that dropped us may be going down: try the next first.
		node = (node + 1) % len(s.urls)
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

// connect dials and declares the topology; a connection that cannot take
// the topology is closed and counts as a failed dial.
func (s *Supervisor) connect(nodeURL string) (*amqp.Connection, error) {
	timeout := s.cfg.Conn.DialTimeout
	c, err := amqp.DialConfig(nodeURL, amqp.Config{
		Heartbeat:       s.cfg.Conn.Heartbeat,
		TLSClientConfig: s.cfg.Conn.TLS.Clone(), // amqp091-go sets ServerName on it; the caller's may be shared
		Locale:          "en_US",
		Properties:      amqp.Table{"connection_name": "warren " + s.cfg.Role},
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := net.DialTimeout(network, addr, timeout)
			if err != nil {
				return nil, err
			}
			// The deadline covers the AMQP handshake; amqp091-go clears it
			// once the connection is open and heartbeats take over.
			if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			return newCoalescingConn(c), nil
		},
	})
	if err != nil {
		if isRefused(err) {
			return nil, refusedError{err}
		}
		return nil, explainDial(err, nodeURL, s.cfg.Conn.TLS)
	}
	if err := Declare(c, s.cfg.Topology); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}
