// Command worker is warren's media example as a worker binary: it runs
// one task, process_media (package examples/media), on the queues it is
// given, usually video. It is not a generic worker: pointed at a queue of
// other tasks, it dead-letters each of them as unknown_task, since it has
// no handler for them. -h says which tasks it runs.
//
// Your own worker is the same few lines with your handlers and topology:
//
//	func main() {
//		reg := task.NewRegistry()
//		reg.MustRegister(emails.Send.Handler(emails.DoSend))
//		os.Exit(runner.Main(reg, emails.Topology))
//	}
//
// runner.Main gives it the flags, logging, /metrics, /healthz, /readyz and
// graceful shutdown of the worker binary contract (docs/architecture.md).
package main

import (
	"os"

	"github.com/warrenq/warren/examples/media"
	"github.com/warrenq/warren/runner"
	"github.com/warrenq/warren/task"
)

func main() {
	reg := task.NewRegistry()
	reg.MustRegister(media.ProcessMedia.Handler(media.Process))
	os.Exit(runner.Main(reg, media.Topology))
}
