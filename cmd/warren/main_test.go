package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/routing"
)

// result is what one in-process run of the command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs warren with args and stdin (nil: an empty, non-terminal input).
func cli(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, stdin, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// want fails the test unless r exited with code.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// tty is an input that says it is a terminal, for the confirmation prompt.
type tty struct{ io.Reader }

func (tty) IsTerminal() bool { return true }

// declare applies topo on the test broker as a worker would: queues with
// their dead-letter queues, exchanges, bindings.
func declare(t *testing.T, b *brokertest.Broker, topo routing.Topology) {
	t.Helper()
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := broker.Declare(conn, topo); err != nil {
		t.Fatal(err)
	}
}

// workQueue declares a work queue and its dead-letter queue.
func workQueue(t *testing.T, b *brokertest.Broker, base string) string {
	t.Helper()
	q := b.Queue(base)
	declare(t, b, routing.Topology{Queues: []routing.Queue{{Name: q}}})
	return q
}

// exchangeExists checks with a passive declare.
func exchangeExists(t *testing.T, b *brokertest.Broker, name string) bool {
	t.Helper()
	ch := b.Channel()
	defer ch.Close()
	return ch.ExchangeDeclarePassive(name, "direct", true, false, false, false, nil) == nil
}

// publishN puts n JSON messages into queue through the default exchange.
func publishN(b *brokertest.Broker, queue string, n int) {
	for i := 0; i < n; i++ {
		b.Publish("", queue, amqp.Publishing{ContentType: "application/json", Body: []byte(`{"n":1}`)})
	}
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string { return testenv.FreeAddr(t) }

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int
		in   string // in stderr, or stdout for help
	}{
		{"no command", nil, exitUsage, "usage: warren"},
		{"unknown command", []string{"inspect"}, exitUsage, `unknown command "inspect"`},
		{"help", []string{"help"}, exitOK, "commands:"},
		{"help for a command", []string{"help", "enqueue"}, exitOK, "usage: warren enqueue TASK"},
		{"-h", []string{"-h"}, exitOK, "usage: warren"},
		{"bad global flag", []string{"-nope", "queues"}, exitUsage, "flag provided but not defined: -nope"},
		{"bad flag", []string{"queues", "-nope"}, exitUsage, "flag provided but not defined: -nope"},
		{"bad timeout", []string{"queues", "-timeout", "0s", "x"}, exitUsage, "-timeout must be positive"},
		{"subcommand -h", []string{"purge", "-h"}, exitOK, "-yes"},
		{"dead -h", []string{"dead", "-h"}, exitOK, "replay QUEUE [-n N] [-task T] [-json]"},
		{"dead without action", []string{"dead"}, exitUsage, "name an action"},
		{"dead unknown action", []string{"dead", "show", "q"}, exitUsage, `unknown action "show"`},
		{"dead list without queue", []string{"dead", "list"}, exitUsage, "name one work queue"},
		{"dead list two queues", []string{"dead", "list", "a", "b"}, exitUsage, "name one work queue"},
		{"dead list of a dead queue", []string{"dead", "list", "video.dead"}, exitUsage, `name its work queue ("video")`},
		{"dead list -n 0", []string{"dead", "list", "video", "-n", "0"}, exitUsage, "-n must be at least 1"},
		{"dead replay -n -1", []string{"dead", "replay", "video", "-n", "-1"}, exitUsage, "-n must be 0"},
		{"dead -h lists delete", []string{"dead", "-h"}, exitOK, "delete QUEUE [-id ID ...|-all] [-yes] [-json]"},
		{"dead delete without a choice", []string{"dead", "delete", "video", "-yes"}, exitUsage, "-id ID (repeat for more) or -all"},
		{"dead delete -id and -all", []string{"dead", "delete", "video", "-id", "a", "-all"}, exitUsage, "-id and -all exclude each other"},
		{"dead delete -id empty", []string{"dead", "delete", "video", "-id", ""}, exitUsage, "-id is empty"},
		{"peek without queue", []string{"peek"}, exitUsage, "name one work queue"},
		{"peek -n 0", []string{"peek", "video", "-n", "0"}, exitUsage, "-n must be 1 to 100"},
		{"peek -n over the cap", []string{"peek", "video", "-n", "101"}, exitUsage, "-n must be 1 to 100"},
		{"peek -h says the cost", []string{"peek", "-h"}, exitOK, "marked redelivered"},
		{"help lists peek", []string{"help"}, exitOK, "peek     the next ready messages"},
		{"purge without queue", []string{"purge"}, exitUsage, "name one work queue"},
		{"purge a dead queue", []string{"purge", "video.dead", "-yes"}, exitUsage, "warren dead"},
		{"purge warren's own", []string{"purge", "warren.delay.0", "-yes"}, exitUsage, "warren's own queues"},
		{"bad broker URL", []string{"purge", "video", "-broker", "amqp://u:p%zz@h/"}, exitUsage, "check -broker"},
		{"broker URL without ://", []string{"queues", "-broker", "amqp//guest:guest@127.0.0.1:5672/"}, exitUsage, "does not start with amqp:// or amqps://"},
		{"broker URL without a host", []string{"dead", "list", "video", "-broker", "amqp:/127.0.0.1"}, exitUsage, "has no host"},
		{"a cluster node without a host", []string{"queues", "-broker", "amqp://guest:guest@127.0.0.1:5672/,amqp://:5672/"}, exitUsage, "node 2 of 2: broker URL amqp://:5672/ has no host"},
		{"global broker URL of another scheme", []string{"-broker", "http://127.0.0.1:15672/", "enqueue", "t", "-queue", "q", "-json", "{}"}, exitUsage, `the scheme is "http"`},
		{"bad management URL", []string{"queues", "-management", "ftp://x"}, exitUsage, "want an http:// or https:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := cli(t, nil, tc.args...).want(t, tc.code)
			if !strings.Contains(r.stderr+r.stdout, tc.in) {
				t.Errorf("output does not say %q:\nstdout:\n%s\nstderr:\n%s", tc.in, r.stdout, r.stderr)
			}
		})
	}
}

// An unreachable broker fails every command in about -timeout, with a
// message that names the broker (without its password) and what to do.
func TestUnreachableBroker(t *testing.T) {
	t.Parallel()
	const password = "s3cr3t-hunter2"
	url := "amqp://ops:" + password + "@" + closedPort(t) + "/"
	for _, args := range [][]string{
		{"enqueue", "process_media", "-queue", "video", "-json", `{"name":"a"}`},
		{"enqueue", "process_media", "-exchange", "media", "-key", "video", "-stdin"},
		{"queues", "-management", "none", "video"},
		{"queues", "video"}, // the management API on the same host: none, or one refusing these credentials
		{"dead", "list", "video"},
		{"dead", "replay", "video"},
		{"dead", "purge", "video", "-yes"},
		{"purge", "video", "-yes"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := cli(t, strings.NewReader("{}\n"), append(args, "-broker", url, "-timeout", "1s")...).want(t, exitFailed)
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %v with -timeout 1s", el)
			}
			if !strings.Contains(r.stderr, "raise -timeout") || !strings.Contains(r.stderr, "ops:xxxxx@127.0.0.1") {
				t.Errorf("stderr does not say what to do:\n%s", r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, password) {
				t.Errorf("the password is in the output:\n%s\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// The default broker may come from the environment; -h and errors show it
// without its password.
func TestPasswordFromEnvNeverShown(t *testing.T) {
	const password = "env-pa55word-x"
	t.Setenv("WARREN_BROKER_URL", "amqp://ops:"+password+"@"+closedPort(t)+"/")
	for _, args := range [][]string{
		{"enqueue", "-h"},
		{"-h"},
		{"queues", "video", "-management", "none", "-timeout", "500ms"},
		{"queues", "video", "-timeout", "500ms"}, // management API derived from the URL
	} {
		r := cli(t, nil, args...)
		if strings.Contains(r.stdout+r.stderr, password) {
			t.Errorf("%v: the password is in the output:\n%s\n%s", args, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout+r.stderr, "ops:xxxxx@") && !strings.Contains(r.stdout+r.stderr, "warren [-broker URL]") {
			t.Errorf("%v: the redacted URL is not shown:\n%s\n%s", args, r.stdout, r.stderr)
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A broker that refuses the login or the vhost: no retry cures that, so
// every command fails at once, long before -timeout, and says what to fix
// without showing the password.
func TestRefusedLogin(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	publishN(b, q, 1)
	publishN(b, q+".dead", 1)
	pu, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	const password = "wr0ng-pa55word"
	badPass := *pu
	badPass.User = url.UserPassword(pu.User.Username(), password)
	badVhost := *pu
	badVhost.Path = "/no-such-vhost-" + strings.ReplaceAll(t.Name(), "/", "-")
	var wg sync.WaitGroup
	for _, tc := range []struct {
		url  string
		says string
	}{
		{badPass.String(), `refused the login of user "` + pu.User.Username() + `": check the user and password`},
		{badVhost.String(), `refused vhost "` + strings.TrimPrefix(badVhost.Path, "/") + `"`},
	} {
		for _, args := range [][]string{
			{"enqueue", "process_media", "-queue", q, "-json", `{}`},
			{"queues", "-management", "none", q},
			{"dead", "list", q},
			{"dead", "replay", q},
			{"dead", "purge", q, "-yes"},
			{"purge", q, "-yes"},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// RabbitMQ answers a bad password after about 3s.
				start := time.Now()
				r := cli(t, nil, append(args, "-broker", tc.url, "-timeout", "60s")...)
				if el := time.Since(start); el > 15*time.Second {
					t.Errorf("%v: took %v to give up on a refused login", args[:2], el)
				}
				if r.code != exitFailed || !strings.Contains(r.stderr, tc.says) || strings.Contains(r.stderr+r.stdout, password) {
					t.Errorf("%v: exit %d, stderr:\n%s", args[:2], r.code, r.stderr)
				}
			}()
		}
	}
	wg.Wait()
	if b.Ready(q) != 1 || b.Ready(q+".dead") != 1 {
		t.Errorf("work %d, dead %d after refused commands; want 1 and 1", b.Ready(q), b.Ready(q+".dead"))
	}
}

// RabbitMQ answers a wrong password only after about 3s: within a shorter
// -timeout the command still says the login was refused, not that the
// broker may be down.
func TestRefusedLoginWithinAShortTimeout(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := workQueue(t, b, "video")
	pu, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	pu.User = url.UserPassword(pu.User.Username(), "wr0ng-pa55word")
	for _, args := range [][]string{
		{"dead", "list", q},
		{"purge", q, "-yes"},
	} {
		r := cli(t, nil, append(args, "-broker", pu.String(), "-timeout", "1s")...).want(t, exitFailed)
		if !strings.Contains(r.stderr, "refused the login") || strings.Contains(r.stderr, "is running") {
			t.Errorf("%v: stderr does not say the login was refused:\n%s", args[:2], r.stderr)
		}
	}
}

// The worker's TLS variables apply here too; one set for a plain amqp://
// URL, or a file that is not there, is a usage error before any dial.
func TestTLSEnvironment(t *testing.T) {
	t.Setenv("WARREN_TLS_CA", filepath.Join(t.TempDir(), "missing-ca.pem"))
	r := cli(t, nil, "queues", "-management", "none", "video", "-broker", "amqps://127.0.0.1:1/").want(t, exitUsage)
	if !strings.Contains(r.stderr, "WARREN_TLS_CA") || !strings.Contains(r.stderr, "missing-ca.pem") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WARREN_TLS_CA", ca)
	r = cli(t, nil, "purge", "video", "-yes", "-broker", "amqp://127.0.0.1:1/").want(t, exitUsage)
	if !strings.Contains(r.stderr, "use amqps://") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// With amqps:// the setting is taken, and the dial is what fails.
	r = cli(t, nil, "purge", "video", "-yes", "-timeout", "500ms", "-broker", "amqps://"+closedPort(t)+"/").want(t, exitFailed)
	if !strings.Contains(r.stderr, "cannot reach the broker") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// selfSignedPEM returns a throwaway CA certificate in PEM.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warren test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
