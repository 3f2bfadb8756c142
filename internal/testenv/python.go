package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Python is Debian's interpreter, which sees Debian's python3-kombu and
// python3-celery; a pyenv or venv python3 earlier on PATH would not.
const Python = "/usr/bin/python3"

// ScriptTimeout bounds a Python script that a test runs.
const ScriptTimeout = 60 * time.Second

var versions sync.Map // module -> func() (string, error)

// RequirePython returns the version of a Python module that Python
// imports. Missing, it skips the test locally and fails it in CI, where
// interoperability tests must never pass by skipping; flag is the option
// of scripts/ensure-rabbitmq.sh that installs it.
func RequirePython(t testing.TB, module, flag string) string {
	t.Helper()
	f, _ := versions.LoadOrStore(module, sync.OnceValues(func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), ScriptTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, Python, "-c", "import "+module+"; print("+module+".__version__)").CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}))
	v, err := f.(func() (string, error))()
	if err == nil {
		return v
	}
	msg := fmt.Sprintf("%s cannot import %s (%v: %s); install it with scripts/ensure-rabbitmq.sh %s", Python, module, err, v, flag)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// KombuURL turns an amqp091-go broker URL into the URL Kombu (and so
// Celery) reads as the same broker. They differ on the vhost: amqp091-go
// reads an empty path or "/" as vhost "/" and otherwise the path after its
// first slash, while Kombu reads the (unescaped) path after the first
// slash and an empty one as its default, "/". So vhost "/" is written
// "//" for Kombu, as its docs do, and any other vhost is path-escaped
// ("a/b" becomes "a%2Fb").
func KombuURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	vhost := "/"
	if len(u.Path) > 1 {
		vhost = u.Path[1:]
	}
	base := (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}).String()
	if vhost == "/" {
		return base + "//", nil
	}
	return base + "/" + url.PathEscape(vhost), nil
}

// RunPython runs testdata/script with args (and env added to the test's
// environment) and returns its stdout; it fails the test if the script
// fails or runs past ScriptTimeout.
func RunPython(t testing.TB, env []string, script string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Python, append([]string{"testdata/" + script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (killed after %v)", err, ScriptTimeout)
		}
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", script, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}
