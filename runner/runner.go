// Package runner is the worker binary as a library: flags, logging, the
// HTTP endpoints and signal handling around a worker.Worker, so that a
// program's own worker main is a few lines:
//
//	func main() {
//		reg := task.NewRegistry()
//		reg.MustRegister(mytasks.Resize.Handler(mytasks.DoResize))
//		os.Exit(runner.Main(reg, mytasks.Topology))
//	}
//
// The flags are the worker binary contract of docs/architecture.md.
package runner

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/worker"
)

// EnvBrokerURL names the environment variable read when -broker is not
// given.
const EnvBrokerURL = "WARREN_BROKER_URL"

// Main runs a worker with the process's arguments until SIGTERM or SIGINT
// and returns the exit code: 0 after a graceful stop or -h, 1 on failure, 2
// on a usage error.
func Main(reg *task.Registry, topo routing.Topology) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return Run(ctx, os.Args[1:], os.Stderr, reg, topo)
}

// Options are the parsed worker flags.
type Options struct {
	Queues          []string
	Concurrency     int
	Prefetch        int
	Broker          string
	MetricsAddr     string
	ShutdownTimeout time.Duration
	// ConsumerTimeout is the broker's consumer_timeout (worker.Config).
	ConsumerTimeout time.Duration
	LogLevel        string
	LogFormat       string
	// Quorum declares the queues of Queues that the program's topology
	// does not name as quorum queues (routing.Queue{Quorum: true}):
	// replicated over a cluster, with routing.DefaultDeliveryLimit and
	// dead-lettering into <queue>.dead. A queue the topology names keeps
	// the topology's declaration, which its producers share.
	Quorum bool
	// Schedules is a schedule file (package schedule) whose periodic tasks
	// this worker offers to fire; empty: none.
	Schedules string
	// SchedulerGroup names the election of workers with schedules
	// (worker.Config.SchedulerGroup).
	SchedulerGroup string
	// PresenceInterval is the worker's heartbeat interval
	// (worker.Config.PresenceInterval); negative turns presence off.
	PresenceInterval time.Duration
	// Limits hold back some queues' tasks (worker.Config.Limits), from
	// -limit QUEUE:per-worker=N.
	Limits []worker.Limit
}

// ParseFlags parses the worker contract's flags from args. On -h it
// prints the usage to output and returns flag.ErrHelp.
func ParseFlags(args []string, output io.Writer) (Options, error) {
	return parseFlags(args, output, nil)
}

// usageLine is the first line of the worker's -h.
const usageLine = "usage: worker -queues Q[,Q...] [-concurrency N] [-prefetch N] [-broker URL] [flags]"

// parseFlags is ParseFlags; tasks, when known, are named in the usage.
func parseFlags(args []string, output io.Writer, tasks []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintln(output, usageLine)
		if len(tasks) > 0 {
			// A worker pointed at another program's queue dead-letters
			// every task there: say which tasks this binary runs.
			fmt.Fprintf(output, "\nRuns the tasks its main registers: %s.\n"+
				"A task of any other name is dead-lettered as unknown_task, so point it only at their queues.\n",
				strings.Join(tasks, ", "))
		}
		fmt.Fprintln(output, "\nflags:")
		fs.PrintDefaults()
	}
	queues := fs.String("queues", "", "comma-separated queues to consume (required)")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "handlers running at once")
	fs.IntVar(&o.Prefetch, "prefetch", 32, "unacked messages per queue consumer")
	o.Broker = os.Getenv(EnvBrokerURL)
	if o.Broker == "" {
		o.Broker = conn.DefaultURL
	}
	fs.Var((*conn.URLFlag)(&o.Broker), "broker", "broker `URL` (env "+EnvBrokerURL+")")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":9090", "HTTP address for /metrics, /healthz, /readyz; empty disables")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight tasks may finish after SIGTERM")
	fs.DurationVar(&o.ConsumerTimeout, "consumer-timeout", 0, "the broker's consumer_timeout: runs are cut before it; 0 = unknown (warn against RabbitMQ's 30m default, learn it from the broker), negative = none")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "json", "json or console")
	fs.BoolVar(&o.Quorum, "quorum", false, "declare the queues of -queues that the program's topology does not name as quorum queues (delivery limit 20, dead letters to <queue>.dead): the production setting on a cluster")
	fs.StringVar(&o.Schedules, "schedules", "", "a schedule `file` (YAML) of periodic tasks to fire: one worker at a time, elected through the broker, fires them")
	fs.StringVar(&o.SchedulerGroup, "scheduler-group", "", "the election among workers with -schedules (empty: the default); workers of one group need the same file")
	fs.Func("limit", "`QUEUE:per-worker=N,concurrency=M,rate=R/s,burst=B` (any of them): at most N of QUEUE's tasks run at once in this worker, at most M over all workers with the same limit, at most R start per second (or /m, /h) over them, B at once after a quiet spell (default 1); repeat for more queues; give a limited task a queue of its own", func(v string) error {
		l, err := parseLimit(v)
		if err == nil {
			o.Limits = append(o.Limits, l)
		}
		return err
	})
	fs.DurationVar(&o.PresenceInterval, "presence-interval", 2*time.Second, "how often the worker announces itself (warren workers, warren ui); a dead worker drops off after about three; negative: off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, &flagError{err} // the flag package has printed it, with the usage
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", redactArgs(fs.Args()))
	}
	for _, q := range strings.Split(*queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			o.Queues = append(o.Queues, q)
		}
	}
	if len(o.Queues) == 0 {
		return o, errors.New("-queues is required, e.g. -queues video,audio")
	}
	if o.Concurrency < 1 || o.Prefetch < 1 {
		return o, errors.New("-concurrency and -prefetch must be at least 1")
	}
	if o.LogFormat != "json" && o.LogFormat != "console" {
		return o, fmt.Errorf("-log-format %q: want json or console", o.LogFormat)
	}
	if _, err := zapcore.ParseLevel(o.LogLevel); err != nil {
		return o, fmt.Errorf("-log-level: %w", err)
	}
	return o, nil
}

// parseLimit reads -limit's QUEUE:key=value[,key=value...].
func parseLimit(v string) (worker.Limit, error) {
	q, spec, ok := strings.Cut(v, ":")
	q = strings.TrimSpace(q)
	if !ok || q == "" || spec == "" {
		return worker.Limit{}, fmt.Errorf("want QUEUE:KEY=VALUE[,KEY=VALUE...] with per-worker=N, concurrency=N, rate=N/s, burst=N; e.g. video:concurrency=5,rate=20/s")
	}
	l := worker.Limit{Queue: q}
	for _, kv := range strings.Split(spec, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k == "rate" {
			// N/s, N/m, N/h, or N/DURATION (20/1500ms).
			num, per, ok := strings.Cut(val, "/")
			n, err := strconv.Atoi(num)
			if !ok || err != nil || n < 1 {
				return l, fmt.Errorf("rate=%q: want N/s, N/m, N/h or N/DURATION, e.g. rate=20/s", val)
			}
			switch per {
			case "s":
				l.Per = time.Second
			case "m":
				l.Per = time.Minute
			case "h":
				l.Per = time.Hour
			default:
				d, err := time.ParseDuration(per)
				if err != nil || d <= 0 {
					return l, fmt.Errorf("rate=%q: want N/s, N/m, N/h or N/DURATION, e.g. rate=20/s", val)
				}
				l.Per = d
			}
			l.Rate = n
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return l, fmt.Errorf("%s=%q: want a whole number of at least 1", k, val)
		}
		switch k {
		case "per-worker":
			l.PerWorker = n
		case "concurrency":
			l.Concurrency = n
		case "burst":
			l.Burst = n
		default:
			return l, fmt.Errorf("unknown limit %q: want per-worker=N, concurrency=N, rate=N/s or burst=N", k)
		}
	}
	return l, nil
}

// flagError is a flag the flag package rejected and has already reported.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// redactArgs returns args with any URL password hidden. Flags after the
// first argument are not parsed, so "-broker URL" may be among them.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if !strings.Contains(a, "@") {
			continue
		}
		if name, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(name, "-") {
			out[i] = name + "=" + conn.Redact(val)
		} else {
			out[i] = conn.Redact(a)
		}
	}
	return out
}

// Run is Main with its inputs explicit, for tests: it returns when ctx is
// cancelled and the worker has stopped.
func Run(ctx context.Context, args []string, stderr io.Writer, reg *task.Registry, topo routing.Topology) int {
	o, err := parseFlags(args, stderr, reg.Names())
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var fe *flagError
	if errors.As(err, &fe) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		fmt.Fprintln(stderr, usageLine+" (-h for more)")
		return 2
	}
	log, err := NewLogger(o.LogLevel, o.LogFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()

	if o.Quorum {
		var kept []string
		topo, kept = withQuorum(topo, o.Queues)
		for _, q := range kept {
			spec, _ := topo.Queue(q)
			log.Warn(quorumWarning(spec), zap.String("queue", q))
		}
	}

	var schedules []*schedule.Schedule
	if o.Schedules != "" {
		if schedules, err = schedule.ParseFile(o.Schedules); err != nil {
			log.Error("cannot read the schedules", zap.Error(err))
			return 2
		}
		for _, s := range schedules {
			if !reg.Has(s.Task.Name) && (s.Queue == "" || slices.Contains(o.Queues, s.Queue)) {
				// Its fires would come back to this worker and die as
				// unknown_task.
				log.Error("a schedule fires a task this worker does not run, into a queue it consumes", zap.String("schedule", s.Name), zap.String("task", s.Task.Name))
				return 2
			}
		}
	}

	tlsCfg, err := tlsFromEnv(o.Broker)
	if err != nil {
		log.Error("cannot load TLS settings", zap.Error(err))
		return 1
	}

	// Its own registry, not the global one, with the Go and process
	// collectors beside warren's.
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w, err := worker.New(worker.Config{
		Conn:            conn.Config{URL: o.Broker, Logger: log, Metrics: promReg, TLS: tlsCfg},
		Queues:          o.Queues,
		Registry:        reg,
		Topology:        topo,
		Concurrency:     o.Concurrency,
		Prefetch:        o.Prefetch,
		ShutdownTimeout: o.ShutdownTimeout,
		ConsumerTimeout: o.ConsumerTimeout,
		Schedules:       schedules,
		SchedulerGroup:  o.SchedulerGroup,

		PresenceInterval: o.PresenceInterval,
		Limits:           o.Limits,
	})
	if err != nil {
		log.Error("cannot start worker", zap.Error(err))
		return 1
	}

	if o.MetricsAddr != "" {
		srv, err := serveHTTP(o.MetricsAddr, w, promReg, log)
		if err != nil {
			log.Error("cannot listen for metrics", zap.String("addr", o.MetricsAddr), zap.Error(err))
			return 1
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	log.Info("worker starting", zap.String("broker", conn.Redact(o.Broker)), zap.Strings("tasks", reg.Names()))
	if err := w.Run(ctx); err != nil {
		log.Error("worker failed", zap.Error(err))
		return 1
	}
	return 0
}

// NewLogger builds the zap logger the flags ask for, writing to w.
// Durations print with their unit ("delay":"1.5s"), not as zap's
// production default of bare seconds; no line carries a stack trace, since
// warren's errors say what happened and where.
func NewLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if format == "console" {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}

func serveHTTP(addr string, w *worker.Worker, reg *prometheus.Registry, log *zap.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(rw, "ok\n")
	})
	mux.HandleFunc("/readyz", readyz(w))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", zap.Error(err))
		}
	}()
	log.Info("serving /metrics, /healthz, /readyz", zap.String("addr", ln.Addr().String()))
	return srv, nil
}

// readyz answers the readiness probe: 200 when the worker consumes every
// queue, 503 otherwise. The body is for people: it names the node the
// worker is on (redacted), e.g. "ready node=amqp://u:xxxxx@rmq-2:5672/".
func readyz(w *worker.Worker) http.HandlerFunc {
	return func(rw http.ResponseWriter, _ *http.Request) {
		ready, node := w.Ready(), w.Node()
		if node == "" {
			// The connection went between the two reads, or was never there.
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(rw, "not ready: no broker connection\n")
			return
		}
		if !ready {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(rw, "not ready node="+node+"\n")
			return
		}
		_, _ = io.WriteString(rw, "ready node="+node+"\n")
	}
}
