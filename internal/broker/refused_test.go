package broker_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
)

// A refused login, a refused vhost and an unreachable broker are told
// apart through Wait's error (conn.ErrRefused, and the text the CLI reads
// for which), also when the dial timeout is shorter than the few seconds
// RabbitMQ takes to answer a wrong password.
func TestWaitSaysWhyTheDialFailed(t *testing.T) {
	t.Parallel()
	base, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	badPass := *base
	badPass.User = url.UserPassword(base.User.Username(), "wr0ng-pa55")
	badVhost := *base
	badVhost.Path = "/no-such-vhost-" + strings.ReplaceAll(t.Name(), "/", "-")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "amqp://guest:guest@" + l.Addr().String() + "/"
	_ = l.Close()

	for _, tc := range []struct {
		name        string
		url         string
		dialTimeout time.Duration
		wait        time.Duration // for Wait: past the first dial's end
		refused     bool
		says        string // in the error's text
		notSays     string // not in it: the other refusal's words
	}{
		// RabbitMQ answers a wrong password after about 3s.
		{"wrong password", badPass.String(), 10 * time.Second, 4500 * time.Millisecond, true, "username or password not allowed", "vhost"},
		{"wrong password, dial cut before the answer", badPass.String(), 500 * time.Millisecond, 2 * time.Second, true, "username or password not allowed", "vhost"},
		{"unknown vhost", badVhost.String(), 10 * time.Second, 2 * time.Second, true, "NOT_ALLOWED - vhost", "username or password"},
		{"nothing listening", closed, 500 * time.Millisecond, 2 * time.Second, false, "connection refused", "ACCESS_REFUSED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sup, err := broker.New(broker.Config{Conn: conn.Config{URL: tc.url, DialTimeout: tc.dialTimeout}, Role: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer sup.Close()
			ctx, cancel := context.WithTimeout(context.Background(), tc.wait)
			defer cancel()
			err = sup.Wait(ctx)
			if err == nil {
				t.Fatal("connected")
			}
			if got := errors.Is(err, conn.ErrRefused); got != tc.refused {
				t.Errorf("errors.Is(err, conn.ErrRefused) = %v, want %v: %v", got, tc.refused, err)
			}
			if !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), tc.notSays) {
				t.Errorf("the error does not say %q, or says %q: %v", tc.says, tc.notSays, err)
			}
			if strings.Contains(err.Error(), "wr0ng-pa55") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
