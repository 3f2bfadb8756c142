package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestExplainDial(t *testing.T) {
	reset := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	const tlsURL, plainURL = "amqps://u:p@broker:5671/", "amqp://u:p@broker:5672/"
	cases := []struct {
		name string
		err  error
		url  string
		cfg  *tls.Config
		hint bool
	}{
		{"reset, amqps, no certificate", reset, tlsURL, nil, true},
		{"EOF as amqp091's text", &amqp.Error{Code: amqp.FrameError, Reason: "EOF"}, tlsURL, &tls.Config{}, true},
		{"reset as amqp091's text", &amqp.Error{Code: amqp.FrameError, Reason: "read tcp 1->2: read: connection reset by peer"}, tlsURL, nil, true},
		{"bare EOF", io.EOF, tlsURL, nil, true},
		{"the socket amqp091-go closed after its reader failed", net.ErrClosed, tlsURL, nil, true},
		{"the same as amqp091's text", &amqp.Error{Code: amqp.FrameError, Reason: "read tcp 1->2: use of closed network connection"}, tlsURL, nil, true},
		{"amqp091's own closed connection", amqp.ErrClosed, tlsURL, nil, true},
		{"with a client certificate", reset, tlsURL, withCert, false},
		{"plain amqp://", reset, plainURL, nil, false},
		{"another error", errors.New("connection refused"), tlsURL, nil, false},
		{"the alert itself", &amqp.Error{Code: amqp.FrameError, Reason: "remote error: tls: certificate required"}, tlsURL, nil, false},
	}
	for _, c := range cases {
		got := explainDial(c.err, c.url, c.cfg)
		if !errors.Is(got, c.err) {
			t.Errorf("%s: %v does not wrap %v", c.name, got, c.err)
		}
		if hinted := strings.Contains(got.Error(), "no client certificate is configured"); hinted != c.hint {
			t.Errorf("%s: hint %v, want %v: %v", c.name, hinted, c.hint, got)
		}
	}
	if explainDial(nil, tlsURL, nil) != nil {
		t.Error("nil error got a hint")
	}
}
