package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
)

// Config configures a Supervisor. Zero values work except URL.
type Config struct {
	// URL is the broker, amqp:// or amqps://.
	URL string
	// Role names the process role in logs and metrics: "producer" or "worker".
	Role string
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Backoff spaces re-dials. Defaults to 100ms doubling to 5s, 20% jitter:
	// a restarted broker is back in seconds, and 5s keeps a fleet's retries
	// cheap for it.
	Backoff retry.Backoff
	// Heartbeat is the AMQP heartbeat interval; a silent TCP path is noticed
	// within about two of them. Defaults to 10s.
	Heartbeat time.Duration
	// DialTimeout bounds the TCP and AMQP handshake. Defaults to 10s.
	DialTimeout time.Duration
	// TLS configures amqps:// connections; nil uses the system roots.
	TLS *tls.Config
	// Topology is declared on every connect, before anyone uses the
	// connection, so consumers and publishers never meet a missing queue
	// after a broker lost its non-durable state.
	Topology routing.Topology
	// OnReconnect, if set, is called after every successful connect but the
	// first (for the reconnects metric).
	OnReconnect func()
}

// Session is one live connection. Done is closed when it dies.
type Session struct {
	Conn *amqp.Connection
	Gen  uint64 // counts connects from 1
	done chan struct{}
}

// Done is closed when the session's connection has closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Supervisor keeps one connection alive: it dials, declares the topology,
// hands the connection out as a Session, and re-dials when it dies.
type Supervisor struct {
	cfg Config
	log *zap.Logger

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
}

// New validates cfg and starts supervising in the background. It does not
// wait for the first connect: Session does.
func New(cfg Config) (*Supervisor, error) {
	if err := CheckURL(cfg.URL); err != nil {
		return nil, err
	}
	if err := cfg.Topology.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Backoff == (retry.Backoff{}) {
		cfg.Backoff = retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	s := &Supervisor{
		cfg:     cfg,
		log:     cfg.Logger.With(zap.String("role", cfg.Role), zap.String("broker", Redact(cfg.URL))),
		ready:   make(chan struct{}),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.run()
	return s, nil
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
				// Both wrapped, so that callers can tell a timeout from a
				// refused login (LoginRefused) behind it.
				return nil, fmt.Errorf("not connected to %s: %w (last error: %w)", Redact(s.cfg.URL), ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("not connected to %s: %w", Redact(s.cfg.URL), ctx.Err())
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
	attempt := 0
	for {
		conn, err := s.connect()
		if err != nil {
			attempt++
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			d := s.cfg.Backoff.Next(attempt)
			lvl := s.log.Warn
			if attempt == 1 {
				lvl = s.log.Info
			}
			lvl("broker connect failed", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("retry_in", d))
			select {
			case <-time.After(d):
				continue
			case <-s.stop:
				return
			}
		}
		attempt = 0
		gen++
		sess := &Session{Conn: conn, Gen: gen, done: make(chan struct{})}
		closes := conn.NotifyClose(make(chan *amqp.Error, 1))
		s.mu.Lock()
		s.cur, s.lastErr = sess, nil
		close(s.ready)
		s.mu.Unlock()
		if gen > 1 {
			s.log.Info("broker reconnected", zap.Uint64("session", gen))
			if s.cfg.OnReconnect != nil {
				s.cfg.OnReconnect()
			}
		} else {
			s.log.Info("broker connected")
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
			_ = conn.Close()
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
		s.log.Warn("broker connection lost", zap.Error(reason), zap.Uint64("session", gen))
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

// connect dials and declares the topology; a connection that cannot take
// the topology is closed and counts as a failed dial.
func (s *Supervisor) connect() (*amqp.Connection, error) {
	timeout := s.cfg.DialTimeout
	conn, err := amqp.DialConfig(s.cfg.URL, amqp.Config{
		Heartbeat:       s.cfg.Heartbeat,
		TLSClientConfig: s.cfg.TLS.Clone(), // amqp091-go sets ServerName on it; the caller's may be shared
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
		return nil, explainDial(err, s.cfg.URL, s.cfg.TLS)
	}
	if err := Declare(conn, s.cfg.Topology); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}
