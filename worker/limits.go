package worker

import (
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/task"
)

// Size limits on what a worker takes (Config.MaxBodyBytes, MaxHeaderBytes).
const (
	// DefaultMaxBodyBytes is 16 MiB, RabbitMQ 4's own default
	// max_message_size: any body a current broker takes by default runs.
	// A larger one (RabbitMQ 3.x accepts up to 128 MiB) is bulk data that
	// belongs in object storage with its reference in the task; decoding
	// it would hold a handler slot and several times its size in memory.
	DefaultMaxBodyBytes = task.MaxMessageBytes
	// DefaultMaxHeaderBytes is 64 KiB, half of the 128 KiB AMQP frame that
	// RabbitMQ and warren's AMQP client use by default. A message's properties must
	// fit in one frame, and every copy warren republishes (retry, ETA
	// deferral, dead letter) carries the producer's headers (what the
	// limit counts, userHeaderSize) plus the protocol's and warren's
	// own, at most about 23 KiB. Celery and warren producers send well
	// under 1 KiB.
	DefaultMaxHeaderBytes = 64 << 10
	// MaxHeaderBytesCeiling is the highest MaxHeaderBytes honoured: with
	// warren's headers and every other property at their largest, a copy
	// still fits in a 128 KiB frame. Past it the broker would close the
	// connection on the copy's publish and the message would come back
	// forever. With a broker whose frame_max is lowered, set
	// MaxHeaderBytes to at most frame_max - 32 KiB.
	MaxHeaderBytesCeiling = 96 << 10
	// DefaultMaxResultBytes is 16 MiB, RabbitMQ 4's default
	// max_message_size: a result update larger than that would be refused
	// by the broker, and the caller would wait for ever.
	DefaultMaxResultBytes = task.MaxMessageBytes
)

// limits returns the size limits of cfg with defaults applied.
func (w *Worker) limits() limits {
	l := limits{MaxBody: w.cfg.MaxBodyBytes, MaxHeaders: w.cfg.MaxHeaderBytes}
	if l.MaxBody == 0 {
		l.MaxBody = DefaultMaxBodyBytes
	}
	switch {
	case l.MaxHeaders == 0:
		l.MaxHeaders = DefaultMaxHeaderBytes
	case l.MaxHeaders < 0, l.MaxHeaders > MaxHeaderBytesCeiling:
		l.MaxHeaders = MaxHeaderBytesCeiling
	}
	return l
}

// limits caps the size of a message a worker takes. A zero or negative
// field means no limit.
type limits struct {
	// MaxBody caps the body, in bytes.
	MaxBody int
	// MaxHeaders caps the producer's headers, in bytes as encoded on the
	// wire (userHeaderSize).
	MaxHeaders int
}

// check returns a *task.TooLargeError when body or headers are over l; the
// headers are checked first, because their dead letter must be summarised.
func (l limits) check(body []byte, headers map[string]any) error {
	if l.headersOver(headers) {
		n, entries := userHeaderSize(headers)
		return &task.TooLargeError{Part: task.PartHeaders, Size: n, Limit: l.MaxHeaders, Entries: entries}
	}
	if l.MaxBody > 0 && len(body) > l.MaxBody {
		return &task.TooLargeError{Part: task.PartBody, Size: len(body), Limit: l.MaxBody}
	}
	return nil
}

// headersOver reports whether h is over MaxHeaders.
func (l limits) headersOver(h map[string]any) bool {
	if l.MaxHeaders <= 0 {
		return false
	}
	n, _ := userHeaderSize(h)
	return n > l.MaxHeaders
}

// userHeaderSize returns the encoded size of the headers of h that
// limits.MaxHeaders caps, as a table of their own, and their number: every
// entry but RabbitMQ's dead-lettering headers (x-death...), which copies
// drop, and the protocol's and warren's own headers of at most
// maxOwnHeaderEntry bytes each,
// which copies keep or replace but never add to. So a message under the
// limit stays under it through its retries, and any copy of it carries at
// most the limit plus about 23 KiB of headers.
func userHeaderSize(h map[string]any) (size, entries int) {
	size = 4
	for k, v := range h {
		if task.IsBrokerHeader(k) {
			continue
		}
		n := broker.EntrySize(k, v)
		if isSummaryHeader(k) && n <= maxOwnHeaderEntry {
			continue
		}
		size += n
		entries++
	}
	return size, entries
}

// maxOwnHeaderEntry bounds each entry of the protocol's and warren's own
// headers that summarizeHeaders keeps and userHeaderSize does not count
// (key and value, encoded), so that together they stay small whatever the
// values: warren's longest, an error text cut at 1 KiB, fits.
const maxOwnHeaderEntry = 1536

// summarizeHeaders returns what a dead letter keeps of headers over the
// limit: the protocol headers and warren's own bookkeeping, each only if its
// entry is at most maxOwnHeaderEntry (the entries userHeaderSize does not
// count), and how many it left out. The summary is at most about 23 KiB,
// so the dead letter, with the headers the worker adds, always fits in one
// AMQP frame and its publish cannot fail for size; a copy with the full
// table might not, and a dead letter that cannot be published would
// requeue the message forever.
func summarizeHeaders(h map[string]any) (kept map[string]any, dropped int) {
	kept = make(map[string]any, 16)
	for k, v := range h {
		if isSummaryHeader(k) && broker.EntrySize(k, v) <= maxOwnHeaderEntry {
			kept[k] = v
		} else {
			dropped++
		}
	}
	return kept, dropped
}

// isSummaryHeader reports whether summarizeHeaders may keep a header: a
// fixed set of names, so a summary's size is bounded by their number.
func isSummaryHeader(k string) bool {
	switch k {
	case HeaderFirstError, HeaderError, HeaderReason, HeaderAttempts, HeaderQueue, HeaderDiedAt, HeaderDroppedHeaders, broker.HeaderPublishSeq:
		return true
	}
	return task.IsProtocolHeader(k)
}
