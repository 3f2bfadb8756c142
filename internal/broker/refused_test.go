package broker_test

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/brokertest"
)

// A refused login, a refused vhost and an unreachable broker are told
// apart through Session's error, also when the dial timeout is shorter
// than the few seconds RabbitMQ takes to answer a wrong password.
func TestSessionErrorSaysWhyTheDialFailed(t *testing.T) {
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
		name         string
		url          string
		dialTimeout  time.Duration
		wait         time.Duration // for Session: past the first dial's end
		login, vhost bool
	}{
		// RabbitMQ answers a wrong password after about 3s.
		{"wrong password", badPass.String(), 10 * time.Second, 4500 * time.Millisecond, true, false},
		{"wrong password, dial cut before the answer", badPass.String(), 500 * time.Millisecond, 2 * time.Second, true, false},
		{"unknown vhost", badVhost.String(), 10 * time.Second, 2 * time.Second, false, true},
		{"nothing listening", closed, 500 * time.Millisecond, 2 * time.Second, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sup, err := broker.New(broker.Config{URL: tc.url, Role: "test", DialTimeout: tc.dialTimeout})
			if err != nil {
				t.Fatal(err)
			}
			defer sup.Close()
			ctx, cancel := context.WithTimeout(context.Background(), tc.wait)
			defer cancel()
			_, err = sup.Session(ctx)
			if err == nil {
				t.Fatal("connected")
			}
			if got := broker.LoginRefused(err); got != tc.login {
				t.Errorf("LoginRefused = %v, want %v: %v", got, tc.login, err)
			}
			if got := broker.VhostRefused(err); got != tc.vhost {
				t.Errorf("VhostRefused = %v, want %v: %v", got, tc.vhost, err)
			}
			if strings.Contains(err.Error(), "wr0ng-pa55") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
