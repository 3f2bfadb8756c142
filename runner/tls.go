package runner

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
)

// Environment variables that configure amqps:// for the worker binary.
// They are environment variables rather than flags because the flags are
// the worker binary contract (docs/architecture.md); in Kubernetes they point at files mounted
// from a Secret. All are optional: with none set, an amqps:// broker is
// verified against the system's roots and no client certificate is sent.
const (
	// EnvTLSCA names a PEM file of CA certificates that the broker's
	// certificate must chain to, instead of the system's roots.
	EnvTLSCA = "WARREN_TLS_CA"
	// EnvTLSCert names the PEM client certificate presented to a broker
	// that asks for one (RabbitMQ's verify_peer). Needs EnvTLSKey.
	EnvTLSCert = "WARREN_TLS_CERT"
	// EnvTLSKey names the PEM private key of EnvTLSCert.
	EnvTLSKey = "WARREN_TLS_KEY"
)

// LoadTLS builds the client TLS configuration for an amqps:// broker from
// PEM files: caFile (may be empty: the system's roots) and a client
// certificate and key (both or neither). It returns nil, nil when all are
// empty, which leaves the client's defaults. Producers use it too:
// producer.Config{Conn: conn.Config{TLS: cfg}}.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a TLS client certificate and its key go together: give both or neither")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate %s, key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// tlsFromEnv is LoadTLS over the EnvTLS* variables, for brokerURL: a TLS
// setting with a plain amqp:// URL is refused, since the client would
// silently ignore it and connect in the clear.
func tlsFromEnv(brokerURL string) (*tls.Config, error) {
	ca, cert, key := os.Getenv(EnvTLSCA), os.Getenv(EnvTLSCert), os.Getenv(EnvTLSKey)
	cfg, err := LoadTLS(ca, cert, key)
	if err != nil {
		return nil, fmt.Errorf("%s/%s/%s: %w", EnvTLSCA, EnvTLSCert, EnvTLSKey, err)
	}
	if cfg != nil {
		if u, err := url.Parse(brokerURL); err == nil && u.Scheme != "amqps" {
			return nil, fmt.Errorf("%s/%s/%s are set but the broker URL is %s://, which does not use TLS: use amqps://", EnvTLSCA, EnvTLSCert, EnvTLSKey, u.Scheme)
		}
	}
	return cfg, nil
}
