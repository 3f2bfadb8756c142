package broker

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/routing"
)

// What a publish must keep to. amqp091-go checks none of it before it
// writes: a name over 255 bytes fails halfway through a frame and it closes
// the whole connection with a frame error, and properties larger than a
// frame make the broker close it. Every publish in flight on that
// connection then fails with ErrConnectionLost, and a caller that retries
// the bad one takes it down again. So Publish checks first.
const (
	// MaxShortString is the longest AMQP short string, in bytes: exchange
	// and queue names, routing keys, message and correlation ids, reply-to,
	// content type and encoding, and header keys at any depth.
	MaxShortString = routing.MaxName
	// FrameMax is the frame size publishes are checked against: the
	// default frame_max of amqp091-go and of RabbitMQ, 128 KiB, which the
	// supervisor's connections do not raise. A message's properties,
	// header table included, travel in one frame. A broker configured with
	// a smaller frame_max still closes the connection over what fits this.
	FrameMax = 128 << 10
	// MaxProperties is the most a message's encoded properties may take:
	// the frame less its 8 bytes of framing and the content header's 14.
	MaxProperties = FrameMax - 8 - 14
)

// publishSeqEntry is room for what send may add to a header table: the
// HeaderPublishSeq entry and, for a table that was empty, its length
// prefix. Counted always, it overcounts by up to 34 bytes.
const publishSeqEntry = 4 + 1 + len(HeaderPublishSeq) + 9

// check returns an error wrapping ErrInvalid if m cannot be published as it
// is, or has a body over maxBody (when positive).
func check(m *Publishing, maxBody int) error {
	for _, f := range []struct{ name, v string }{
		{"exchange", m.Exchange},
		{"routing key", m.Key},
		{"message id", m.MessageID},
		{"correlation id", m.CorrelationID},
		{"reply-to", m.ReplyTo},
		{"content type", m.ContentType},
		{"content encoding", m.Encoding},
	} {
		if err := checkShortString(f.name, f.v); err != nil {
			return err
		}
	}
	headers, bad := tableSize(m.Headers, false)
	if bad != nil {
		return bad.err()
	}
	if n := propertiesSize(m, headers); n > MaxProperties {
		return &InvalidError{Field: "header table (" + strconv.Itoa(headers) + " bytes) with the other properties", Size: n, Limit: MaxProperties,
			Rule: "the properties travel in one frame, and frame_max is " + strconv.Itoa(FrameMax)}
	}
	if maxBody > 0 && len(m.Body) > maxBody {
		return &InvalidError{Field: "body", Size: len(m.Body), Limit: maxBody, Rule: "MaxBodyBytes"}
	}
	return nil
}

// checkShortString refuses s, named field, if it is longer than an AMQP
// short string.
func checkShortString(field, s string) error {
	if len(s) <= MaxShortString {
		return nil
	}
	return &InvalidError{Field: field + " " + clipQuote(s), Size: len(s), Limit: MaxShortString, Rule: "an AMQP short string"}
}

// propertiesSize is the encoded size of m's properties as send writes
// them, given its header table's size.
func propertiesSize(m *Publishing, headers int) int {
	n := 1 + headers + publishSeqEntry // delivery mode, always set
	for _, s := range []string{m.ContentType, m.Encoding, m.CorrelationID, m.ReplyTo, m.MessageID} {
		if s != "" {
			n += 1 + len(s)
		}
	}
	if m.Priority > 0 {
		n++
	}
	if !m.Timestamp.IsZero() {
		n += 8
	}
	return n
}

// TableSize returns the encoded size of h as amqp091-go writes a field
// table, its 4-byte length included: what a header table costs in the one
// frame that carries a message's properties. It is for headers as
// delivered, every value one the client decoded and so can write; a value
// it cannot write counts as 9 bytes, as much as its largest scalar.
func TableSize(h map[string]any) int {
	n, _ := tableSize(h, true)
	return max(n, 4)
}

// EntrySize returns the encoded size of one entry of a header table, as
// TableSize counts it: the key as a short string, then the value.
func EntrySize(k string, v any) int {
	f, _ := fieldSize(v, true)
	return 1 + len(k) + f
}

// tableSize returns the encoded size of t as amqp091-go writes a field
// table (0 for an empty one, which is not written), or, unless lenient, a
// *headerError for the first key too long for AMQP or value amqp091-go
// cannot write, at any depth. It allocates nothing for a good table: the
// error's path is built only as a bad one unwinds.
func tableSize(t map[string]any, lenient bool) (int, *headerError) {
	if len(t) == 0 {
		return 0, nil
	}
	n := 4
	for k, v := range t {
		if len(k) > MaxShortString && !lenient {
			return 0, &headerError{path: []string{clipQuote(k)}, keyLen: len(k)}
		}
		f, err := fieldSize(v, lenient)
		if err != nil {
			err.path = append(err.path, clipQuote(k))
			return 0, err
		}
		n += 1 + len(k) + f
	}
	return n, nil
}

// fieldSize returns the encoded size of one field value, its type octet
// included, for exactly the types amqp091-go's writer knows; another is an
// error, or with lenient 9 bytes.
func fieldSize(v any, lenient bool) (int, *headerError) {
	switch x := v.(type) {
	case nil:
		return 1, nil
	case bool, byte, int8:
		return 2, nil
	case int16, uint16:
		return 3, nil
	case int, int32, uint32, float32:
		return 5, nil
	case amqp.Decimal:
		return 6, nil
	case int64, float64, time.Time:
		return 9, nil
	case string:
		return 5 + len(x), nil
	case []byte:
		return 5 + len(x), nil
	case []any:
		n := 5
		for i, e := range x {
			f, err := fieldSize(e, lenient)
			if err != nil {
				err.path = append(err.path, "["+strconv.Itoa(i)+"]")
				return 0, err
			}
			n += f
		}
		return n, nil
	case amqp.Table:
		n, err := tableSize(x, lenient)
		return 1 + max(n, 4), err
	}
	if lenient {
		return 9, nil
	}
	return 0, &headerError{value: v}
}

// headerError is a header key too long, or a value AMQP cannot carry,
// found by tableSize.
type headerError struct {
	path   []string // keys ("k") and array indexes ([i]) leading to it, innermost first
	keyLen int      // a key too long: its length
	value  any      // otherwise the value
}

// err says which header is wrong and how.
func (e *headerError) err() error {
	var at strings.Builder
	for i := len(e.path) - 1; i >= 0; i-- {
		if at.Len() > 0 && e.path[i][0] != '[' {
			at.WriteString(" > ")
		}
		at.WriteString(e.path[i])
	}
	if e.keyLen > 0 {
		return &InvalidError{Field: "header key " + at.String(), Size: e.keyLen, Limit: MaxShortString, Rule: "an AMQP short string"}
	}
	return fmt.Errorf("%w: header %s is a %T, which AMQP cannot carry (use a string, number, bool, time, []byte, []any or amqp.Table); not sent, and retrying will not help",
		ErrInvalid, at.String(), e.value)
}

// clipQuote quotes s for an error, cut to its first 32 bytes when longer.
func clipQuote(s string) string { return strconv.Quote(clip(s)) }

// clip cuts s to its first 32 bytes, on a rune boundary, marking the cut.
func clip(s string) string {
	const keep = 32
	if len(s) <= keep {
		return s
	}
	n := keep
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
