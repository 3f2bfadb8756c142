package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/ui"
)

const uiSynopsis = "[-addr 127.0.0.1:8080] [-read-only] [-user U (password: env " + envUIPassword + " or -password-file F)] [-hosts NAME,...] [-queues Q,...] [-management URL|none]"

// envUIPassword names the variable holding the UI's basic-auth password:
// a flag's value would show in ps.
const envUIPassword = "WARREN_UI_PASSWORD"

// runUI serves the web UI until ctx is done.
func runUI(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("ui", uiSynopsis, false)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on; 127.0.0.1 keeps the UI to this machine")
	readOnly := fs.Bool("read-only", false, "show only: no purge, replay or delete")
	user := fs.String("user", "", "require basic authentication as this user; the password comes from env "+envUIPassword+" or -password-file")
	pwFile := fs.String("password-file", "", "read the basic-auth password from this file (its first line)")
	hosts := fs.String("hosts", "", "without -user: comma-separated names, besides IP addresses, localhost and the -addr host, the UI answers to (others are refused, against DNS rebinding)")
	queues := fs.String("queues", "", "comma-separated work queues to show besides those live workers consume (without the management API, the only way to list others)")
	mgmtURL := fs.String("management", "", "management API URL (default: http://BROKER-HOST:15672, with the broker's credentials); none: AMQP only")
	refresh := fs.Duration("refresh", ui.DefaultRefresh, "how often the overview and workers pages reload; 0: never")
	if pos, err := o.parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return o.usagef("unexpected argument %q", pos[0])
	}
	password, err := uiPassword(*pwFile)
	if err != nil {
		return o.usagef("%v", err)
	}
	switch {
	case *user == "" && password != "":
		return o.usagef("a password is set (%s or -password-file) but no -user", envUIPassword)
	case *user != "" && password == "":
		return o.usagef("-user needs a password: set %s or pass -password-file", envUIPassword)
	}
	cfg := inspect.Config{Management: *mgmtURL}
	if *mgmtURL == "none" {
		cfg = inspect.Config{NoManagement: true}
	}
	insp, err := o.dialWith(ctx, cfg)
	if err != nil {
		return err
	}
	defer insp.Close()
	dl, err := deadletter.New(deadletter.Config{Conn: conn.Config{URL: o.broker, TLS: o.tls}})
	if err != nil {
		return o.usagef("%v (check -broker or %s)", err, runner.EnvBrokerURL)
	}
	defer dl.Close()
	log, err := runner.NewLogger("info", "console", e.stderr)
	if err != nil {
		return err
	}
	if *refresh == 0 {
		*refresh = -1 // ui.Config: negative is never, zero the default
	}
	host, _, _ := net.SplitHostPort(*addr)
	names := splitList(*hosts)
	if host != "" {
		names = append(names, host) // IP addresses pass anyway; a name must be listed
	}
	if *user == "" && !loopback(host) {
		fmt.Fprintf(e.stderr, "warren ui: warning: %s is not a loopback address and there is no -user: "+
			"anyone who reaches it can purge, replay and delete. Set -user and %s, and put TLS in front: "+
			"basic auth over plain HTTP sends the password in the clear\n", *addr, envUIPassword)
	}
	h, err := ui.New(ui.Config{
		Inspector: insp, DeadLetters: dl, Queues: splitList(*queues), ReadOnly: *readOnly,
		User: *user, Password: password, Hosts: names, Broker: o.broker, Logger: log, Refresh: *refresh, Timeout: o.timeout,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return o.usagef("%v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	mode := ""
	if *readOnly {
		mode = ", read-only"
	}
	fmt.Fprintf(e.stdout, "warren ui: http://%s/ (broker %s%s); Ctrl-C stops it\n", l.Addr(), conn.Redact(o.broker), mode)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopback reports whether host, of a listen address, keeps the UI to
// this machine: a loopback IP or localhost. "" listens everywhere.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// uiPassword reads the basic-auth password from file, else from the
// environment.
func uiPassword(file string) (string, error) {
	if file == "" {
		return os.Getenv(envUIPassword), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("-password-file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("-password-file %s: the first line is empty", file)
	}
	return pw, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
