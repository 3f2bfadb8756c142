// Command worker runs warren's example tasks (process_media on queue
// video). It is what a program's own worker looks like: register handlers,
// hand them to runner.Main. Flags: see runner.ParseFlags or -help.
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
