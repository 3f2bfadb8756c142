// Package media is warren's example: a process_media task on queue video of
// the direct exchange media. cmd/worker registers it and
// examples/media/enqueue produces it.
package media

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/task"
)

// Names of the example's topology.
const (
	Exchange = "media"
	Queue    = "video"
	Key      = "video"
)

// Media is the payload of process_media, as any producer sends it:
// {"name": "/tmp/lolcat1.avi", "size": 1301013}.
type Media struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// ProcessMedia is the task definition shared by producer and worker.
var ProcessMedia = task.Define[Media]("process_media")

// Topology declares exchange media and queue video bound with key video.
// The queue names process_media as its default task, so a plain AMQP client
// may publish the bare JSON payload without warren's headers.
var Topology = routing.Topology{
	Exchanges: []routing.Exchange{{Name: Exchange, Kind: routing.Direct}},
	Queues:    []routing.Queue{{Name: Queue, DefaultTask: ProcessMedia.Name()}},
	Bindings:  []routing.Binding{{Exchange: Exchange, Queue: Queue, Key: Key}},
}

// Routes sends process_media to exchange media with routing key video.
func Routes() *routing.Table {
	return routing.NewTable().Add(ProcessMedia.Name(), routing.Route{Exchange: Exchange, Key: Key})
}

// Process handles one media file. The file need not exist (the example
// enqueues made-up names); when it is a regular file, Process reads it
// through as a transcoder would, and honours ctx while it does.
//
// A negative size is a corrupt upload record: no retry can mend it, so
// Process fails permanently and the task goes to video.dead at once, with
// the reason permanent. scripts/demo.sh enqueues one such task, so that
// the demo leaves a dead letter to look at in warren ui.
func Process(ctx context.Context, m Media) error {
	if m.Name == "" {
		return errors.New("process_media: payload has no name")
	}
	if m.Size < 0 {
		return retry.Permanent(fmt.Errorf("process_media: %s: negative size %d: a corrupt upload record", m.Name, m.Size))
	}
	f, err := os.Open(m.Name)
	if err != nil {
		return nil // nothing to read: a made-up name, or one we may not read
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	buf := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("process_media: %s: %w", m.Name, err)
		}
		if _, err := f.Read(buf); err != nil {
			return nil // EOF, or a read error: the example has done its part
		}
	}
}
