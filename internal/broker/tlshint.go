package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	amqp "github.com/rabbitmq/amqp091-go"
)

// explainDial adds a hint to a failed amqps:// dial that carries no client
// certificate when the broker cut the connection. Under TLS 1.3 the
// client's handshake ends before the broker checks for a certificate, so a
// broker that demands one (RabbitMQ's fail_if_no_peer_cert) refuses with
// an alert that, depending on timing, arrives as "certificate required" or
// is lost behind a bare connection reset or EOF: the hint makes the second
// form as clear as the first.
func explainDial(err error, rawURL string, cfg *tls.Config) error {
	if err == nil || !strings.EqualFold(scheme(rawURL), "amqps") || hasClientCert(cfg) || !cutOff(err) {
		return err
	}
	return fmt.Errorf("%w (the broker closed the TLS connection; no client certificate is configured, and a broker that requires one refuses this way)", err)
}

func scheme(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Scheme
}

func hasClientCert(cfg *tls.Config) bool {
	return cfg != nil && (len(cfg.Certificates) > 0 || cfg.GetClientCertificate != nil)
}

// cutOff reports whether err is the peer closing or resetting the
// connection, as a net error or as amqp091-go's text of one. A closed
// connection counts too: during the dial only amqp091-go closes it, when
// its reader fails on the broker's alert or reset, and its handshake may
// then return the write that found the socket closed instead of the
// reader's error (seen once in about ten runs of TestBrokerTLS), or its own
// "channel/connection is not open" when the reader's shutdown won the race
// (seen in CI on 2026-12-03).
func cutOff(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, amqp.ErrClosed) {
		return true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		r := ae.Reason
		return r == "EOF" || r == "unexpected EOF" || strings.Contains(r, "connection reset by peer") || strings.Contains(r, "broken pipe") ||
			strings.Contains(r, net.ErrClosed.Error())
	}
	return false
}
