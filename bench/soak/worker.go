package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
)

// Payload is a soak task's payload; Pad brings it to -payload bytes.
type Payload struct {
	N   int    `json:"n"`
	Pad string `json:"pad"`
}

// soakTask is the one task the soak runs.
var soakTask = task.Define[Payload]("soak_task")

// runWorker is the child: the worker binary's runner on the soak queue,
// quiet below warnings, until SIGTERM.
func runWorker(ctx context.Context, c config) int {
	reg := task.NewRegistry()
	reg.MustRegister(soakTask.Handler(func(ctx context.Context, _ Payload) error {
		if c.Work > 0 {
			select {
			case <-time.After(c.Work):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}))
	// The broker URL comes from the environment, not the command line,
	// where ps would show its password.
	return runner.Run(ctx, []string{
		"-queues", c.Queue,
		"-metrics-addr", c.MetricsAddr,
		"-concurrency", fmt.Sprint(c.Concurrency),
		"-prefetch", fmt.Sprint(c.Prefetch),
		"-shutdown-timeout", "10s",
		"-log-level", "warn",
	}, os.Stderr, reg, routing.Topology{})
}

// startWorker starts the child worker process.
func startWorker(c config) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-child-worker",
		"-metrics-addr", c.MetricsAddr,
		"-queue", c.Queue,
		"-concurrency", fmt.Sprint(c.Concurrency),
		"-prefetch", fmt.Sprint(c.Prefetch),
		"-work", c.Work.String())
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, runner.EnvBrokerURL+"=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, runner.EnvBrokerURL+"="+c.Broker)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd, cmd.Start()
}
