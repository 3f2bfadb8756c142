package task

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warrenq/warren/outcome"
)

// Header names of the wire protocol (docs/protocol.md). They match Celery's
// protocol v2 so that interop with Celery stays possible.
const (
	HeaderTask    = "task"    // task name
	HeaderID      = "id"      // task id, equal to message_id
	HeaderRetries = "retries" // attempts made so far; absent means 0
	HeaderETA     = "eta"     // RFC 3339 time before which the task must not run
	HeaderExpires = "expires" // RFC 3339 time after which the task must not run
	// HeaderTimeLimit bounds one run, in seconds, as Celery sends it: a
	// list [hard, soft], either null. The run's context ends at the lower
	// of the two set; it overrides the task's own timeout.
	HeaderTimeLimit = "timelimit"

	// HeaderPrefix starts every header warren writes for its own
	// bookkeeping (dead-letter reason, original queue...).
	HeaderPrefix = "x-warren-"
	// HeaderMaxAttempts overrides the task's MaxAttempts for one enqueue.
	HeaderMaxAttempts = HeaderPrefix + "max-attempts"
	// HeaderEnqueuedAt is the enqueue time in Unix microseconds: the AMQP
	// timestamp has whole seconds only, too coarse for wait latency. Sent
	// only when the task id (see NewID) does not carry the time already.
	HeaderEnqueuedAt = HeaderPrefix + "enqueued-at"
	// HeaderUnique names the lock queue a unique task holds while it is
	// queued, delayed or running (docs/protocol.md, "Unique tasks"): the
	// worker releases it when the task ends.
	HeaderUnique = HeaderPrefix + "unique"
	// HeaderUniqueHold is how long, in milliseconds, the lock stays held
	// after the task ended; absent means not at all.
	HeaderUniqueHold = HeaderPrefix + "unique-hold"

	// Headers the worker adds to the copies it republishes.
	HeaderReason     = HeaderPrefix + "reason"      // why it died: unknown_task, undecodable, too_large, exhausted, permanent, expired
	HeaderError      = HeaderPrefix + "error"       // the last error's text
	HeaderFirstError = HeaderPrefix + "first-error" // the first failure's text, kept across retries
	HeaderAttempts   = HeaderPrefix + "attempts"    // runs made, including the last
	HeaderQueue      = HeaderPrefix + "queue"       // the queue it was consumed from
	HeaderDiedAt     = HeaderPrefix + "died-at"     // RFC 3339 time it was dead-lettered
)

// Message is the envelope of one task as it travels: what the producer
// publishes and what the worker hands to Registry.Dispatch.
type Message struct {
	ID          string         // task id (message_id); a stable key for idempotent handlers
	Task        string         // task name
	ContentType string         // names the codec of Body
	Body        []byte         // the encoded payload
	Headers     map[string]any // every AMQP header, including the ones parsed below
	Timestamp   time.Time      // enqueue time
	Retries     int            // attempts made before this one
	ETA         time.Time      // zero: run now
	Expires     time.Time      // zero: never expires
	Priority    uint8
	MaxAttempts int           // per-enqueue override of the task's MaxAttempts; 0: none
	TimeLimit   time.Duration // per-message override of the task's Timeout (the timelimit header); 0: none
	EnqueuedAt  time.Time     // from x-warren-enqueued-at, else the id (NewID) within Timestamp's second, else Timestamp; zero if none
	Queue       string        // the queue it was consumed from; empty on the producer side
	ReplyTo     string        // where the caller awaits updates (reply_to); empty if nobody awaits
	Redelivered bool          // the broker delivered it before (a crash or a requeue)
	Unique      string        // the lock queue of a unique task (x-warren-unique); empty if none
	UniqueHold  time.Duration // how long the lock stays held after the task ended
}

// ParseHeaders reads the protocol headers from an AMQP header table into m.
// Headers of the wrong type or with malformed values are a *DecodeError:
// such a message can never run correctly, so it must not loop. A missing
// task name is left empty for the caller to fill from the queue's default.
func (m *Message) ParseHeaders(h map[string]any) error {
	m.Headers = h
	if v, ok := h[HeaderTask]; ok {
		s, ok := v.(string)
		if !ok {
			return m.headerErr(HeaderTask, v, "a string")
		}
		m.Task = s
	}
	if v, ok := h[HeaderID]; ok && m.ID == "" {
		s, ok := v.(string)
		if !ok {
			return m.headerErr(HeaderID, v, "a string")
		}
		m.ID = s
	}
	if v, ok := h[HeaderRetries]; ok && v != nil {
		n, ok := toInt(v)
		if !ok || n < 0 {
			return m.headerErr(HeaderRetries, v, "a non-negative integer")
		}
		m.Retries = n
	}
	if v, ok := h[HeaderMaxAttempts]; ok && v != nil {
		n, ok := toInt(v)
		if !ok || n < 1 {
			return m.headerErr(HeaderMaxAttempts, v, "a positive integer")
		}
		m.MaxAttempts = n
	}
	// Only metrics read the enqueue time, so a bad value is ignored rather
	// than making the task undecodable.
	us, _ := toInt64(h[HeaderEnqueuedAt])
	m.EnqueuedAt = enqueuedAt(us, m.ID, m.Timestamp)
	var err error
	// A malformed lock header is ignored rather than making the task
	// undecodable: the lock then frees itself after its time.
	if v, ok := h[HeaderUnique]; ok {
		m.Unique, _ = v.(string)
		if ms, ok := toInt64(h[HeaderUniqueHold]); ok && ms > 0 {
			m.UniqueHold = time.Duration(ms) * time.Millisecond
		}
	}
	if v, ok := h[HeaderTimeLimit]; ok && v != nil {
		d, ok := parseTimeLimit(v)
		if !ok {
			return m.headerErr(HeaderTimeLimit, v, "a list [hard, soft] of seconds or nulls")
		}
		m.TimeLimit = d
	}
	if m.ETA, err = parseTimeHeader(h, HeaderETA); err != nil {
		return &DecodeError{Task: m.Task, Err: err}
	}
	if m.Expires, err = parseTimeHeader(h, HeaderExpires); err != nil {
		return &DecodeError{Task: m.Task, Err: err}
	}
	return nil
}

func (m *Message) headerErr(name string, v any, want string) error {
	return &DecodeError{Task: m.Task, Err: fmt.Errorf("header %q is %T %s, want %s", name, v, clip(fmt.Sprint(v)), want)}
}

// maxQuoted bounds a header value quoted in an error: the error goes to
// logs and to the dead letter's x-warren-error, and a producer's value may
// be as long as the frame.
const maxQuoted = 64

// clip cuts s to maxQuoted bytes, saying how long it was.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:n], len(s))
}

// BuildHeaders returns the header table for m: the protocol headers from its
// fields plus extra. Extra never sets a protocol header, even one m leaves
// out: a caller's "retries" or "eta" would change how the task runs. Zero
// fields are left out, as the protocol says absent means the default, and
// so is EnqueuedAt when m.ID carries it (NewID).
func (m *Message) BuildHeaders(extra map[string]any) map[string]any {
	h := make(map[string]any, 3+len(extra))
	for k, v := range extra {
		if !IsProtocolHeader(k) {
			h[k] = v
		}
	}
	if m.Task != "" {
		h[HeaderTask] = m.Task
	}
	if m.ID != "" {
		h[HeaderID] = m.ID
	}
	if m.Retries > 0 {
		h[HeaderRetries] = int64(m.Retries)
	}
	if m.MaxAttempts > 0 {
		h[HeaderMaxAttempts] = int64(m.MaxAttempts)
	}
	if !m.EnqueuedAt.IsZero() && !idCarriesTime(m.ID, m.EnqueuedAt) {
		h[HeaderEnqueuedAt] = m.EnqueuedAt.UnixMicro()
	}
	if m.Unique != "" {
		h[HeaderUnique] = m.Unique
		if m.UniqueHold > 0 {
			h[HeaderUniqueHold] = m.UniqueHold.Milliseconds()
		}
	}
	if !m.ETA.IsZero() {
		h[HeaderETA] = m.ETA.UTC().Format(time.RFC3339Nano)
	}
	if !m.Expires.IsZero() {
		h[HeaderExpires] = m.Expires.UTC().Format(time.RFC3339Nano)
	}
	return h
}

// IsProtocolHeader reports whether k is one of the protocol's own headers
// (task, id, retries, eta, expires...), which a message's builder sets and
// a caller's extra headers never override.
func IsProtocolHeader(k string) bool {
	switch k {
	case HeaderTask, HeaderID, HeaderRetries, HeaderETA, HeaderExpires, HeaderTimeLimit, HeaderMaxAttempts, HeaderEnqueuedAt, HeaderUnique, HeaderUniqueHold:
		return true
	}
	return false
}

// IsBrokerHeader reports whether a header was added by RabbitMQ's own
// dead-lettering (x-death, x-first-death-*, x-last-death-*). Copies that
// warren republishes drop them: the broker's cycle detection would
// otherwise silently drop a copy that comes back to a queue it died in.
func IsBrokerHeader(name string) bool {
	return name == "x-death" || strings.HasPrefix(name, "x-first-death-") || strings.HasPrefix(name, "x-last-death-")
}

func parseTimeHeader(h map[string]any, name string) (time.Time, error) {
	v, ok := h[name]
	if !ok || v == nil {
		return time.Time{}, nil
	}
	switch t := v.(type) {
	case string:
		if t == "" {
			return time.Time{}, nil
		}
		ts, err := ParseTime(t)
		if err != nil {
			return time.Time{}, fmt.Errorf("header %q: %q is not an RFC 3339 time", name, clip(t))
		}
		return ts, nil
	case time.Time:
		return t, nil
	}
	return time.Time{}, fmt.Errorf("header %q is %T, want an RFC 3339 string", name, v)
}

// naiveISO is an ISO 8601 date and time without an offset, as Python's
// datetime.isoformat() writes a naive datetime.
const naiveISO = "2006-01-02T15:04:05.999999999"

// ParseTime reads a time as the eta and expires headers carry it: RFC
// 3339, or an ISO 8601 date and time without an offset, which Python's
// isoformat() writes for a naive datetime and which Celery, by default
// (enable_utc), and warren read as UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if t, nerr := time.Parse(naiveISO, s); nerr == nil {
			return t, nil
		}
	}
	return t, err
}

// parseTimeLimit reads Celery's timelimit, [hard, soft] in seconds, each
// a number or null, into the lower of the two that are set (0: none). A
// Go handler cannot be killed as a Celery worker kills a process at the
// hard limit, so both end the run's context.
func parseTimeLimit(v any) (time.Duration, bool) {
	list, ok := v.([]any)
	if !ok || len(list) > 2 {
		return 0, false
	}
	var limit time.Duration
	for _, x := range list {
		if x == nil {
			continue
		}
		secs, ok := toSeconds(x)
		if !ok || secs < 0 || secs > maxTimeLimit.Seconds() {
			return 0, false
		}
		d := time.Duration(secs * float64(time.Second))
		if d > 0 && (limit == 0 || d < limit) {
			limit = d
		}
	}
	return limit, true
}

// maxTimeLimit bounds a timelimit so that it fits a time.Duration.
const maxTimeLimit = 100 * 365 * 24 * time.Hour

// toSeconds reads a number of seconds of any AMQP numeric type.
func toSeconds(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n)
	case float32:
		return float64(n), !math.IsNaN(float64(n))
	}
	if n, ok := toInt64(v); ok {
		return float64(n), true
	}
	if n, ok := toInt(v); ok {
		return float64(n), true
	}
	return 0, false
}

// toInt accepts every integer type an AMQP client may put in a header
// table, and floats that hold a whole number (some JSON-minded clients
// send those).
func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		if n > math.MaxInt32 || n < math.MinInt32 {
			return 0, false
		}
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case uint64:
		if n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case float32:
		return floatToInt(float64(n))
	case float64:
		return floatToInt(n)
	}
	return 0, false
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	}
	return 0, false
}

func floatToInt(f float64) (int, bool) {
	if f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return 0, false
	}
	return int(f), true
}

func fmtAny(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return fmt.Sprint(v)
}

// Reason says why a message can never run, for the dead-letter header
// x-warren-reason: outcome.ReasonUnknownTask, ReasonUndecodable or
// ReasonTooLarge (a *TooLargeError). It returns "" for any other error (a
// handler's failure or panic), which the worker's retry policy judges
// instead.
func Reason(err error) outcome.Reason {
	var de *DecodeError
	var tl *TooLargeError
	switch {
	case errors.As(err, &tl):
		return outcome.ReasonTooLarge
	case errors.Is(err, ErrUnknownTask), errors.Is(err, ErrNoTaskName):
		return outcome.ReasonUnknownTask
	case errors.As(err, &de):
		return outcome.ReasonUndecodable
	}
	return ""
}
