package conn

import (
	"crypto/tls"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// DefaultURL is the broker used when Config.URL is empty: a local
// RabbitMQ with its default user.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// Defaults of Config's durations.
const (
	// DefaultHeartbeat is Config.Heartbeat when it is zero.
	DefaultHeartbeat = 10 * time.Second
	// DefaultDialTimeout is Config.DialTimeout when it is zero.
	DefaultDialTimeout = 10 * time.Second
)

// Config is how a component connects to the broker and reports on it. Its
// zero value reaches DefaultURL with no logs and no metrics.
type Config struct {
	// URL of the broker, amqp:// or amqps://, or of a cluster's nodes,
	// several URLs separated by commas (SplitURLs): a failed dial or a
	// lost connection then moves to the next node in turn, and the backoff
	// applies once every node has failed in a row. Defaults to DefaultURL.
	// Passwords in it never appear in logs or errors (Redact).
	URL string
	// TLS configures amqps:// connections. nil verifies the broker
	// against the system's roots and sends no client certificate.
	TLS *tls.Config
	// Heartbeat is the AMQP heartbeat interval: a silent TCP path is
	// noticed within about two of them. Defaults to DefaultHeartbeat.
	Heartbeat time.Duration
	// DialTimeout bounds each dial, TCP and AMQP handshake together; a
	// failed dial is retried with backoff. Defaults to DefaultDialTimeout.
	DialTimeout time.Duration
	// Logger receives the component's logs. Defaults to zap.NewNop(): an
	// embedded component is silent until given one (runner.NewLogger, or
	// your own). Durations are zap.Duration fields: your encoder decides
	// their form.
	Logger *zap.Logger
	// Metrics is where the component registers its Prometheus collectors
	// (package metrics), never the global registry. Defaults to nil: no
	// metrics. Components that have none ignore it.
	Metrics prometheus.Registerer
	// OnReconnect, if set, is called after every reconnect (not the first
	// connect).
	OnReconnect func()
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}
