package runner_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
)

// The broker URL usually comes from a Secret through WARREN_BROKER_URL, and
// stderr is the pod's log: no usage path may print its password.
func TestUsageRedactsBrokerPassword(t *testing.T) {
	const envURL = "amqp://user:s3cret-pass@127.0.0.1:5672/"
	t.Setenv(runner.EnvBrokerURL, envURL)
	for _, tc := range []struct {
		name   string
		args   []string
		secret string // must not be printed
		shown  string // must be printed ("": the flags' defaults are not printed)
		code   int
	}{
		{"-h", []string{"-h"}, "s3cret-pass", "amqp://user:xxxxx@127.0.0.1:5672/", 0},
		{"-help", []string{"-help"}, "s3cret-pass", "amqp://user:xxxxx@127.0.0.1:5672/", 0},
		{"unknown flag", []string{"-queues", "q", "-nope"}, "s3cret-pass", "amqp://user:xxxxx@127.0.0.1:5672/", 2},
		{"bad value", []string{"-queues", "q", "-concurrency", "x"}, "s3cret-pass", "amqp://user:xxxxx@127.0.0.1:5672/", 2},
		{"missing value", []string{"-queues", "q", "-prefetch"}, "s3cret-pass", "amqp://user:xxxxx@127.0.0.1:5672/", 2},
		{"missing queues", []string{"-concurrency", "2"}, "s3cret-pass", "", 2},
		{"-broker then -h", []string{"-broker", "amqp://op:flag-pass@h:5672/", "-h"}, "flag-pass", "amqp://user:xxxxx@127.0.0.1:5672/", 0},
		{"-broker after an argument", []string{"-queues", "q", "stray", "-broker", "amqp://op:flag-pass@h:5672/"}, "flag-pass", "amqp://op:xxxxx@h:5672/", 2},
		{"-broker= after an argument", []string{"-queues", "q", "stray", "-broker=amqp://op:flag-pass@h:5672/"}, "flag-pass", "amqp://op:xxxxx@h:5672/", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := runner.Run(context.Background(), tc.args, &stderr, task.NewRegistry(), routing.Topology{}); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			out := stderr.String()
			if strings.Contains(out, tc.secret) {
				t.Errorf("stderr shows the password %q:\n%s", tc.secret, out)
			}
			if tc.shown != "" && !strings.Contains(out, tc.shown) {
				t.Errorf("stderr lacks the redacted URL %q:\n%s", tc.shown, out)
			}
		})
	}
}

// Redacting what -h shows must not change what the worker dials.
func TestBrokerURLKeepsPassword(t *testing.T) {
	const envURL = "amqp://user:s3cret-pass@127.0.0.1:5672/"
	t.Setenv(runner.EnvBrokerURL, envURL)
	var stderr bytes.Buffer
	o, err := runner.ParseFlags([]string{"-queues", "q"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.Broker != envURL {
		t.Errorf("Broker = %q, want %s's %q", o.Broker, runner.EnvBrokerURL, envURL)
	}
	o, err = runner.ParseFlags([]string{"-queues", "q", "-broker", "amqp://op:flag-pass@h:5672/"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.Broker != "amqp://op:flag-pass@h:5672/" {
		t.Errorf("Broker = %q, want -broker's value", o.Broker)
	}

	t.Setenv(runner.EnvBrokerURL, "")
	o, err = runner.ParseFlags([]string{"-queues", "q"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.Broker != "amqp://guest:guest@127.0.0.1:5672/" {
		t.Errorf("Broker = %q without %s, want the default", o.Broker, runner.EnvBrokerURL)
	}
	if stderr.Len() != 0 {
		t.Errorf("a good parse printed %q", stderr.String())
	}
}
