package task

import (
	"fmt"
	"reflect"
	"time"
)

// HeaderDroppedHeaders is added to a dead letter whose headers were over the
// worker's limit: the number of entries left out of the copy, which keeps
// only the protocol headers and warren's bookkeeping (SummarizeHeaders).
const HeaderDroppedHeaders = HeaderPrefix + "dropped-headers"

// HeaderPublishSeq is written on every publish by warren's broker layer (its
// sequence number on the channel, to match a basic.return to its publish);
// named here so that UserHeaderSize does not count it.
const HeaderPublishSeq = HeaderPrefix + "publish-seq"

// Limits caps the size of a message a worker takes. A zero or negative
// field means no limit.
type Limits struct {
	// MaxBody caps the body, in bytes.
	MaxBody int
	// MaxHeaders caps the producer's headers, in bytes as encoded on the
	// wire (UserHeaderSize).
	MaxHeaders int
}

// Check returns a *TooLargeError when body or headers are over l; the
// headers are checked first, because their dead letter must be summarised.
func (l Limits) Check(body []byte, headers map[string]any) error {
	if l.HeadersOver(headers) {
		n, entries := UserHeaderSize(headers)
		return &TooLargeError{Part: PartHeaders, Size: n, Limit: l.MaxHeaders, Entries: entries}
	}
	if l.MaxBody > 0 && len(body) > l.MaxBody {
		return &TooLargeError{Part: PartBody, Size: len(body), Limit: l.MaxBody}
	}
	return nil
}

// HeadersOver reports whether h is over MaxHeaders.
func (l Limits) HeadersOver(h map[string]any) bool {
	if l.MaxHeaders <= 0 {
		return false
	}
	n, _ := UserHeaderSize(h)
	return n > l.MaxHeaders
}

// Parts of a message that a TooLargeError names.
const (
	PartBody    = "body"
	PartHeaders = "headers"
)

// TooLargeError reports a message whose body or header table is over a
// worker's Limits. The worker dead-letters it unrun with reason "too_large":
// the same message would be over the limit on every delivery.
type TooLargeError struct {
	Task    string // task name, if known
	Part    string // PartBody or PartHeaders
	Size    int    // bytes; for headers, as encoded on the wire (UserHeaderSize)
	Limit   int    // the limit it is over, bytes
	Entries int    // header entries counted, for PartHeaders
}

// Error says which part is over which limit, with both sizes.
func (e *TooLargeError) Error() string {
	what := "task: message too large"
	if e.Task != "" {
		what = "task: message for " + clip(e.Task) + " too large"
	}
	if e.Part == PartHeaders {
		return fmt.Sprintf("%s: headers are %d bytes in %d entries, over the limit of %d bytes", what, e.Size, e.Entries, e.Limit)
	}
	return fmt.Sprintf("%s: %s is %d bytes, over the limit of %d bytes", what, e.Part, e.Size, e.Limit)
}

// HeaderTableSize returns the size of h encoded as an AMQP 0-9-1 field
// table, as amqp091-go writes it: what the header table costs in the one
// frame that carries a message's properties. Nested tables and arrays
// count in full; types amqp091-go cannot write count as 9 bytes, as much as
// its largest scalar.
func HeaderTableSize(h map[string]any) int {
	n := 4 // the table's length prefix
	for k, v := range h {
		n += entrySize(k, v)
	}
	return n
}

// UserHeaderSize returns the encoded size of the headers of h that
// Limits.MaxHeaders caps, as a table of their own, and their number: every
// entry but RabbitMQ's dead-lettering headers (x-death...), which copies
// drop, and the protocol's and warren's own headers of at most
// MaxOwnHeaderEntry bytes each,
// which copies keep or replace but never add to. So a message under the
// limit stays under it through its retries, and any copy of it carries at
// most the limit plus about 23 KiB of headers.
func UserHeaderSize(h map[string]any) (size, entries int) {
	size = 4
	for k, v := range h {
		if IsBrokerHeader(k) {
			continue
		}
		n := entrySize(k, v)
		if isSummaryHeader(k) && n <= MaxOwnHeaderEntry {
			continue
		}
		size += n
		entries++
	}
	return size, entries
}

// entrySize is one table entry: the key as a short string, then the value.
func entrySize(k string, v any) int { return 1 + len(k) + fieldSize(v) }

// fieldSize is the size of one field value, its type octet included.
func fieldSize(v any) int {
	switch x := v.(type) {
	case nil:
		return 1
	case bool, int8, uint8:
		return 2
	case int16, uint16:
		return 3
	case int, int32, uint32, float32:
		return 5
	case int64, float64, time.Time:
		return 9
	case string:
		return 5 + len(x)
	case []byte:
		return 5 + len(x)
	case []any:
		n := 5
		for _, e := range x {
			n += fieldSize(e)
		}
		return n
	case map[string]any:
		return 1 + HeaderTableSize(x)
	}
	// Named types of an AMQP client (amqp091-go's Table and Decimal), which
	// this package does not import.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		n := 5
		for it := rv.MapRange(); it.Next(); {
			n += 1 + len(fmt.Sprint(it.Key().Interface())) + fieldSize(it.Value().Interface())
		}
		return n
	case reflect.Slice, reflect.Array:
		n := 5
		for i := range rv.Len() {
			n += fieldSize(rv.Index(i).Interface())
		}
		return n
	case reflect.Struct:
		if rv.NumField() == 2 { // Decimal{Scale uint8, Value int32}
			return 6
		}
	}
	return 9
}

// MaxOwnHeaderEntry bounds each entry of the protocol's and warren's own
// headers that SummarizeHeaders keeps and UserHeaderSize does not count
// (key and value, encoded), so that together they stay small whatever the
// values: warren's longest, an error text cut at 1 KiB, fits.
const MaxOwnHeaderEntry = 1536

// SummarizeHeaders returns what a dead letter keeps of headers over the
// limit: the protocol headers and warren's own bookkeeping, each only if its
// entry is at most MaxOwnHeaderEntry (the entries UserHeaderSize does not
// count), and how many it left out. The summary is at most about 23 KiB,
// so the dead letter, with the headers the worker adds, always fits in one
// AMQP frame and its publish cannot fail for size; a copy with the full
// table might not, and a dead letter that cannot be published would
// requeue the message forever.
func SummarizeHeaders(h map[string]any) (kept map[string]any, dropped int) {
	kept = make(map[string]any, 16)
	for k, v := range h {
		if isSummaryHeader(k) && entrySize(k, v) <= MaxOwnHeaderEntry {
			kept[k] = v
		} else {
			dropped++
		}
	}
	return kept, dropped
}

// isSummaryHeader reports whether SummarizeHeaders may keep a header: a
// fixed set of names, so a summary's size is bounded by their number.
func isSummaryHeader(k string) bool {
	switch k {
	case HeaderFirstError, HeaderError, HeaderReason, HeaderAttempts, HeaderQueue, HeaderDiedAt, HeaderDroppedHeaders, HeaderPublishSeq:
		return true
	}
	return isProtocolHeader(k)
}
