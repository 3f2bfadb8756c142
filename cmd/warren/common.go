package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
)

// usageError is a command line that cannot work: exit code 2.
type usageError struct {
	cmd, synopsis string // "dead list", its arguments
	msg           string
}

func (e *usageError) Error() string { return e.msg }

var (
	// errFlags: the flag package has already printed what was wrong.
	errFlags = errors.New("bad flags")
	// errReported: the command has already printed its errors.
	errReported = errors.New("failed")
)

// opts are the flags every subcommand takes.
type opts struct {
	cmd, synopsis string
	broker        string
	timeout       time.Duration
	json          bool
	tls           *tls.Config // from the worker's WARREN_TLS_* variables; nil: the system's roots
}

// flagSet returns the flag set of subcommand cmd with the common flags,
// defaulting to the global ones. withJSON adds -json for the output.
func (e *env) flagSet(cmd, synopsis string, withJSON bool) (*flag.FlagSet, *opts) {
	o := &opts{cmd: cmd, synopsis: synopsis, broker: e.broker, timeout: e.timeout}
	fs := flag.NewFlagSet("warren "+cmd, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Var((*conn.URLFlag)(&o.broker), "broker", "broker `URL` (env WARREN_BROKER_URL)")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "bound on each broker call: connecting, and the operation")
	if withJSON {
		fs.BoolVar(&o.json, "json", false, "print JSON for scripts instead of a table")
	}
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: warren %s %s\n", cmd, synopsis)
		fs.PrintDefaults()
	}
	return fs, o
}

// parse parses args with flags anywhere among the positional arguments
// ("warren enqueue TASK -queue Q" and "warren enqueue -queue Q TASK" are
// the same) and returns the positional ones; "--" ends the flags.
func (o *opts) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlags
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if o.timeout <= 0 {
		return nil, o.usagef("-timeout must be positive")
	}
	// Before anything else reads it: a typo must not surface as an
	// unrelated error (a refused vhost, a management API not found).
	if err := conn.CheckURL(o.broker); err != nil {
		return nil, o.usagef("%v (check -broker or %s)", err, runner.EnvBrokerURL)
	}
	var err error
	if o.tls, err = tlsFromEnv(o.broker); err != nil {
		return nil, o.usagef("%v", err)
	}
	return pos, nil
}

// tlsFromEnv reads the worker's TLS variables, so that the operator's tool
// reaches an amqps:// broker wherever the worker does. A TLS setting with
// a plain amqp:// URL is refused: the client would ignore it and connect
// in the clear.
func tlsFromEnv(brokerURL string) (*tls.Config, error) {
	cfg, err := runner.LoadTLS(os.Getenv(runner.EnvTLSCA), os.Getenv(runner.EnvTLSCert), os.Getenv(runner.EnvTLSKey))
	if err != nil {
		return nil, fmt.Errorf("%s/%s/%s: %w", runner.EnvTLSCA, runner.EnvTLSCert, runner.EnvTLSKey, err)
	}
	if cfg != nil {
		if u, err := url.Parse(brokerURL); err == nil && u.Scheme != "amqps" {
			return nil, fmt.Errorf("%s/%s/%s are set but the broker URL is %s://, which does not use TLS: use amqps:// or unset them",
				runner.EnvTLSCA, runner.EnvTLSCert, runner.EnvTLSKey, u.Scheme)
		}
	}
	return cfg, nil
}

func (o *opts) usagef(format string, args ...any) error {
	return &usageError{cmd: o.cmd, synopsis: o.synopsis, msg: fmt.Sprintf(format, args...)}
}

// call returns the context for one broker call: bounded by -timeout.
func (o *opts) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, o.timeout)
}

// explain adds what to do to a broker error that says no more than that
// time ran out.
func (o *opts) explain(err error) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w\n%s", err, o.timeoutHint())
}

func (o *opts) timeoutHint() string {
	return fmt.Sprintf("no answer from the broker within %s: check that RabbitMQ is running at %s (-broker or WARREN_BROKER_URL), or raise -timeout",
		o.timeout, conn.Redact(o.broker))
}

// refusal says what to do when err shows that the broker answered and
// refused the login or the vhost, which no retry cures; "" otherwise. The
// reply text tells the user from the vhost (see internal/broker.isRefused).
func (o *opts) refusal(err error) string {
	if err == nil {
		return ""
	}
	user, vhost := "guest", "/"
	if u, perr := url.Parse(o.broker); perr == nil {
		if u.User != nil {
			user = u.User.Username()
		}
		if len(u.Path) > 1 {
			vhost, _ = url.PathUnescape(u.Path[1:])
		}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "username or password not allowed"), strings.Contains(msg, "ACCESS_REFUSED"):
		return fmt.Sprintf("the broker at %s refused the login of user %q: check the user and password in -broker or WARREN_BROKER_URL",
			conn.Redact(o.broker), user)
	case strings.Contains(msg, "no access to this vhost"), strings.Contains(msg, "NOT_ALLOWED - "):
		return fmt.Sprintf("the broker at %s refused vhost %q to user %q: check the vhost (the path of the broker URL), or grant access with rabbitmqctl set_permissions",
			conn.Redact(o.broker), vhost, user)
	}
	return ""
}

// inspector returns an inspector of the broker, with cfg's management
// settings; it connects when a call needs it, bounded by -timeout.
func (o *opts) inspector(cfg inspect.Config) (*inspect.Inspector, error) {
	cfg.Conn = conn.Config{URL: o.broker, DialTimeout: o.timeout, TLS: o.tls}
	cfg.Timeout = o.timeout
	insp, err := inspect.New(cfg)
	if err != nil {
		return nil, o.usagef("%v (check -broker or WARREN_BROKER_URL, and -management)", err)
	}
	return insp, nil
}

// dial returns an inspector connected to the broker, waiting at most
// -timeout, so that an unreachable broker fails fast with a clear
// message, and a refused login at once. The caller closes it.
func (o *opts) dial(ctx context.Context) (*inspect.Inspector, error) {
	return o.dialWith(ctx, inspect.Config{NoManagement: true})
}

// dialWith is dial with cfg's management settings.
func (o *opts) dialWith(ctx context.Context, cfg inspect.Config) (*inspect.Inspector, error) {
	insp, err := o.inspector(cfg)
	if err != nil {
		return nil, err
	}
	cctx, cancel := o.call(ctx)
	defer cancel()
	err = insp.Ping(cctx)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		// The dial in flight has the same deadline (-timeout bounds it too)
		// and ends a moment later with why it failed; a wrong password
		// shows only then, since RabbitMQ answers one after about 3s. Wait
		// that moment rather than call a refused login an unreachable
		// broker.
		gctx, gcancel := context.WithTimeout(ctx, 250*time.Millisecond)
		if gerr := insp.Ping(gctx); gerr == nil || errors.Is(gerr, conn.ErrRefused) {
			err = gerr
		}
		gcancel()
	}
	if err != nil {
		_ = insp.Close()
		if err := o.refused(err); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("cannot reach the broker: %w", o.explain(err))
	}
	return insp, nil
}

// refused returns what to do about err when it is the broker refusing the
// login or the vhost, and nil otherwise.
func (o *opts) refused(err error) error {
	if !errors.Is(err, conn.ErrRefused) {
		return nil
	}
	if hint := o.refusal(err); hint != "" {
		return fmt.Errorf("cannot connect: %s", hint)
	}
	return fmt.Errorf("cannot connect: %w", err)
}

// connErr says what to do about err, the failure of a call that
// connected on its own.
func (o *opts) connErr(err error) error {
	if r := o.refused(err); r != nil {
		return r
	}
	return o.explain(err)
}

// bounded runs fn and returns when it does or ctx is done: some broker
// calls (basic.get, queue.purge) take no context. On timeout abort is
// called, in the background, to unblock fn.
func bounded[T any](ctx context.Context, abort func(), fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
	}
	// fn has the same deadline when it waits for a connection, and then
	// returns at once with a better error (why the dial failed).
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(250 * time.Millisecond):
		go abort()
		var zero T
		return zero, fmt.Errorf("no answer from the broker: %w", ctx.Err())
	}
}

// namedError is the error of a subcommand's action ("dead list"), so
// that the message names it.
type namedError struct {
	cmd string
	err error
}

func (e *namedError) Error() string { return e.err.Error() }
func (e *namedError) Unwrap() error { return e.err }

// checkWorkQueue rejects names that are not work queues: dead-letter
// queues, which "warren dead" handles, and warren's own.
func (o *opts) checkWorkQueue(q string) error {
	switch {
	case q == "":
		return o.usagef("the queue name is empty")
	case strings.HasSuffix(q, routing.DeadSuffix):
		return o.usagef("%q is a dead-letter queue: name its work queue (%q); \"warren dead\" works on its dead letters",
			q, strings.TrimSuffix(q, routing.DeadSuffix))
	case strings.HasPrefix(q, "warren."):
		return o.usagef("%q is one of warren's own queues (warren.*), not a work queue", q)
	}
	return nil
}

// oneQueue takes the positional arguments of a command on one work
// queue, and parse's error.
func (o *opts) oneQueue(pos []string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", o.usagef("name one work queue, e.g. warren %s video", o.cmd)
	}
	return pos[0], o.checkWorkQueue(pos[0])
}

// notFound says what to do about a work queue or dead-letter queue that
// does not exist.
func notFound(queue string, err error) error {
	if !errors.Is(err, conn.ErrNotFound) {
		return err
	}
	return fmt.Errorf("queue %q does not exist: check the name (\"warren queues\" lists warren's work queues; a worker declares its queues when it starts)", queue)
}

// isTerminal reports whether r is an interactive terminal. A test may
// pass a reader with an IsTerminal method.
func isTerminal(r io.Reader) bool {
	if t, ok := r.(interface{ IsTerminal() bool }); ok {
		return t.IsTerminal()
	}
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	// /dev/null is a character device too, and not a person.
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// confirm asks before something that cannot be undone: on stderr, with
// the answer read from stdin. Without a terminal it refuses unless -yes was
// given (yes is true), so a script never hangs on a question or deletes by
// accident.
func (e *env) confirm(o *opts, yes bool, question string) error {
	if yes {
		return nil
	}
	if !isTerminal(e.stdin) {
		return o.usagef("%s: refusing without confirmation, and stdin is not a terminal to ask on: pass -yes", question)
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	answer, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && answer == "" {
		fmt.Fprintln(e.stderr)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errors.New("not confirmed: nothing was deleted")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isJSON reports whether a body of content type ct is JSON to show as is.
func isJSON(ct string, body []byte) bool {
	ct = strings.ToLower(ct)
	return (ct == "" || strings.HasPrefix(ct, "application/json")) && json.Valid(body)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// oneLine cuts s to its first line and at most n runes, for a table cell.
func oneLine(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + " …"
	}
	s = strings.ReplaceAll(s, "\t", " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}
