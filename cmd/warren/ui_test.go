package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/testenv"
)

func TestUIFlags(t *testing.T) {
	url := brokertest.URL(t)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envUIPassword, "")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"user without password", []string{"-user", "ops"}, "-user needs a password"},
		{"empty password file", []string{"-user", "ops", "-password-file", empty}, "the first line is empty"},
		{"missing password file", []string{"-user", "ops", "-password-file", empty + ".no"}, "-password-file"},
		{"argument", []string{"video"}, `unexpected argument "video"`},
		{"bad address", []string{"-addr", "127.0.0.1:99999"}, "invalid port"},
	} {
		r := cli(t, nil, append([]string{"-broker", url, "ui"}, c.args...)...).want(t, exitUsage)
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: stderr %q, want it to say %q", c.name, r.stderr, c.want)
		}
	}
	t.Setenv(envUIPassword, "pw")
	if r := cli(t, nil, "-broker", url, "ui").want(t, exitUsage); !strings.Contains(r.stderr, "no -user") {
		t.Errorf("password without user: stderr %q", r.stderr)
	}
}

// warren ui serves the overview with the queues it is given, behind basic
// auth with the password from the environment, and stops on cancel.
func TestUIServes(t *testing.T) {
	b := brokertest.New(t)
	q := workQueue(t, b, "shown")
	publishN(b, q, 3)
	t.Setenv(envUIPassword, "s3cret")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-broker", b.URL, "ui", "-addr", "127.0.0.1:0", "-management", "none", "-user", "ops", "-queues", q},
			strings.NewReader(""), &out, &errb)
	}()
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`)
	testenv.Eventually(t, 15*time.Second, func() bool { return addr.MatchString(out.String()) }, "warren ui printed no address; stderr:\n%s", errb.String())
	base := addr.FindString(out.String())

	get := func(user, pass string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		req.SetBasicAuth(user, pass)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	if code, _ := get("ops", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", code)
	}
	code, body := get("ops", "s3cret")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	row := regexp.MustCompile(`data-queue="` + regexp.QuoteMeta(q) + `">\s*<td><a [^>]*>[^<]*</a></td>\s*<td class="n ready">3</td>`)
	if !row.MatchString(body) {
		t.Errorf("the overview does not show queue %s with 3 ready:\n%s", q, body)
	}
	cancel()
	select {
	case c := <-done:
		if c != exitOK {
			t.Errorf("exit code %d after cancel, want 0; stderr:\n%s", c, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("warren ui did not stop after its context ended")
	}
}

// Off loopback and without -user, warren ui warns (before it listens:
// 192.0.2.1 is a documentation address, so the listen fails and the test
// exposes nothing).
func TestUIWarnsOffLoopbackWithoutAUser(t *testing.T) {
	url := brokertest.URL(t)
	t.Setenv(envUIPassword, "")
	r := cli(t, nil, "-broker", url, "ui", "-management", "none", "-addr", "192.0.2.1:0")
	for _, want := range []string{"warning", "no -user", "TLS"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q, want it to say %q", r.stderr, want)
		}
	}
	r = cli(t, nil, "-broker", url, "ui", "-management", "none", "-addr", "127.0.0.1:99999")
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("a loopback address warned: %q", r.stderr)
	}
}

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.2": true, "::1": true, "localhost": true, "LOCALHOST": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "warren.internal": false,
	} {
		if got := loopback(host); got != want {
			t.Errorf("loopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// Without -user, warren ui answers IP addresses, localhost, the -addr
// host and the -hosts names, and refuses any other Host (DNS rebinding).
func TestUIHosts(t *testing.T) {
	b := brokertest.New(t)
	q := workQueue(t, b, "shown")
	t.Setenv(envUIPassword, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-broker", b.URL, "ui", "-addr", "localhost:0", "-management", "none", "-hosts", "warren.test", "-queues", q},
			strings.NewReader(""), &out, &errb)
	}()
	addr := regexp.MustCompile(`http://(127\.0\.0\.1|\[::1\]):\d+/`)
	testenv.Eventually(t, 15*time.Second, func() bool { return addr.MatchString(out.String()) }, "warren ui printed no address; stderr:\n%s", errb.String())
	base := addr.FindString(out.String())
	for host, want := range map[string]int{"": http.StatusOK, "localhost:1": http.StatusOK, "warren.test": http.StatusOK, "evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodGet, base+"workers", nil)
		if host != "" {
			req.Host = host
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", host, res.StatusCode, want)
		}
	}
	if strings.Contains(errb.String(), "warning") {
		t.Errorf("localhost warned: %s", errb.String())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("warren ui did not stop after its context ended")
	}
}
