// Command warren is the operator's tool for warren task queues on
// RabbitMQ: enqueue tasks by name, see queues, their next messages and
// their dead letters, replay, delete or purge dead letters, purge a work
// queue, delete one no program uses any more, list the workers alive, see
// periodic tasks' last and next fires; or serve the web UI that does the
// same in a browser.
//
//	warren enqueue process_media -queue video -json '{"name":"/tmp/a.avi","size":1}'
//	warren queues
//	warren peek video -n 5
//	warren dead list video
//	warren dead replay video -task process_media
//	warren dead delete video -id 01966f2e-7c1b-7a3e-8f00-3b9d2c4e5a61
//	warren purge video -yes
//	warren workers -queue video
//	warren schedules schedules.yaml
//	warren ui -addr 127.0.0.1:8080
//
// Every subcommand takes -broker (env WARREN_BROKER_URL, as the worker;
// amqps:// reads the worker's WARREN_TLS_CA, WARREN_TLS_CERT and
// WARREN_TLS_KEY too), -timeout and -json (enqueue: -output json, since its
// -json is the payload). Exit codes: 0 ok, 1 the operation failed, 2 usage
// error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/runner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// defaultTimeout bounds each broker call unless -timeout says otherwise.
const defaultTimeout = 10 * time.Second

// env is what a subcommand runs with: its streams and the global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	broker         string        // -broker before the subcommand, or the env default
	timeout        time.Duration // -timeout before the subcommand
}

// command is one subcommand.
type command struct {
	synopsis string // arguments, after "warren <name>"
	summary  string
	run      func(ctx context.Context, e *env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"enqueue": {
			synopsis: "TASK (-queue Q | -exchange E -key K) [-delay D | -eta T] [-json PAYLOAD | -file F | -stdin] [-id ID]",
			summary:  "enqueue a task by name with a JSON payload; one per stdin line for bulk",
			run:      runEnqueue,
		},
		"queues": {
			synopsis: "[-json] [-all] [-management URL] [QUEUE...]",
			summary:  "ready, unacked, consumers, dead letters and rates of warren's queues",
			run:      runQueues,
		},
		"dead": {
			synopsis: deadSynopsis,
			summary:  "list, replay, delete or purge the dead letters of a work queue",
			run:      runDead,
		},
		"peek": {
			synopsis: peekSynopsis,
			summary:  "the next ready messages of a work queue, left in place (marked redelivered)",
			run:      runPeek,
		},
		"purge": {
			synopsis: "QUEUE [-yes]",
			summary:  "delete every ready message of a work queue (not its dead letters)",
			run:      runPurge,
		},
		"delete": {
			synopsis: deleteSynopsis,
			summary:  "remove a work queue and its dead-letter queue, messages and all",
			run:      runDelete,
		},
		"workers": {
			synopsis: workersSynopsis,
			summary:  "the workers alive: what each consumes and runs now, and its counts",
			run:      runWorkers,
		},
		"ui": {
			synopsis: uiSynopsis,
			summary:  "serve the web UI: queues, dead letters (replay, delete), workers, tasks by id",
			run:      runUI,
		},
		"schedules": {
			synopsis: schedulesSynopsis,
			summary:  "a schedule file's periodic tasks: last and next fire, the elected worker",
			run:      runSchedules,
		},
	}
}

// run is main with its inputs explicit, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, broker: defaultBroker(), timeout: defaultTimeout}
	cmds := commands()
	top := flag.NewFlagSet("warren", flag.ContinueOnError)
	top.SetOutput(stderr)
	top.Var((*conn.URLFlag)(&e.broker), "broker", "broker `URL` (env "+runner.EnvBrokerURL+")")
	top.DurationVar(&e.timeout, "timeout", e.timeout, "bound on each broker call")
	top.Usage = func() { usage(stderr, cmds) }
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := top.Args()
	if len(rest) == 0 {
		usage(stderr, cmds)
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			if c, ok := cmds[rest[1]]; ok {
				fmt.Fprintf(stdout, "usage: warren %s %s\n  %s\n", rest[1], c.synopsis, c.summary)
				return exitOK
			}
		}
		usage(stdout, cmds)
		return exitOK
	}
	c, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "warren: unknown command %q\n", name)
		usage(stderr, cmds)
		return exitUsage
	}
	err := c.run(ctx, e, rest[1:])
	var ne *namedError
	if errors.As(err, &ne) {
		name = ne.cmd
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errFlags):
		// The flag package has said what was wrong.
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "warren %s: %v\n", ue.cmd, err)
		fmt.Fprintf(stderr, "usage: warren %s %s\n", ue.cmd, ue.synopsis)
		return exitUsage
	case errors.Is(err, errReported):
		return exitFailed
	default:
		fmt.Fprintf(stderr, "warren %s: %v\n", name, err)
		return exitFailed
	}
}

func defaultBroker() string {
	if u := os.Getenv(runner.EnvBrokerURL); u != "" {
		return u
	}
	return conn.DefaultURL
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: warren [-broker URL] [-timeout D] COMMAND [ARGS]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-8s %s\n", n, cmds[n].summary)
	}
	b.WriteString("\nEvery command takes -broker (env " + runner.EnvBrokerURL + ", default " + conn.Redact(conn.DefaultURL) + "),\n" +
		"-timeout (default 10s) and -json for scripts (enqueue: -output json, as its -json is\n" +
		"the payload). 'warren COMMAND -h' shows its flags. With amqps://, the worker's\n" +
		runner.EnvTLSCA + ", " + runner.EnvTLSCert + " and " + runner.EnvTLSKey + " apply too.\n" +
		"Exit codes: 0 ok, 1 the operation failed, 2 usage error.\n")
	_, _ = io.WriteString(w, b.String())
}
