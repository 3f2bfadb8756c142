package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"
)

// ContentTypeJSON is the content type of the default codec.
const ContentTypeJSON = "application/json"

// Codec turns payloads into message bodies and back. A codec is chosen by
// the message's content_type, so producers in other languages can pick one.
type Codec interface {
	// ContentType is the MIME type written into the message's content_type.
	ContentType() string
	// Marshal encodes a payload.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes a body into the payload v points to.
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec, encoding/json under application/json.
type JSON struct{}

// ContentType returns application/json.
func (JSON) ContentType() string { return ContentTypeJSON }

// Marshal encodes v with encoding/json.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes data with encoding/json, strictly: a body that is not
// valid UTF-8 is an error wrapping ErrInvalidUTF8 (encoding/json would
// silently turn the bad bytes into U+FFFD, handing the handler data the
// producer never sent), nesting past encoding/json's limit wraps
// ErrNestingTooDeep, and other syntax errors say at which byte they are.
func (JSON) Unmarshal(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w at byte %d of %d", ErrInvalidUTF8, invalidUTF8At(data), len(data))
	}
	err := json.Unmarshal(data, v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if strings.Contains(se.Error(), "exceeded max depth") {
			return fmt.Errorf("%w (%d levels) at byte %d: %w", ErrNestingTooDeep, MaxJSONDepth, se.Offset, err)
		}
		return fmt.Errorf("invalid JSON at byte %d of %d: %w", se.Offset, len(data), err)
	}
	return err
}

// MaxJSONDepth is how deeply encoding/json lets arrays and objects nest
// before it gives up; a deeper body is an error, decoded in time linear in
// its size, so a hostile body cannot stall or crash a worker.
const MaxJSONDepth = 10000

// invalidUTF8At returns the offset of the first byte of data that does not
// start a valid UTF-8 sequence.
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// Codecs maps content types to codecs. The zero value knows JSON only; add
// others with Add. It is a value, not a global, so two workers in one
// process can differ.
type Codecs struct {
	byType map[string]Codec
}

// Add registers c under its content type, replacing any codec already there.
func (cs *Codecs) Add(c Codec) {
	if cs.byType == nil {
		cs.byType = make(map[string]Codec)
	}
	cs.byType[normalizeContentType(c.ContentType())] = c
}

// Lookup returns the codec for a content type. An empty content type means
// JSON, as it does for plain AMQP clients that set none.
func (cs *Codecs) Lookup(contentType string) (Codec, error) {
	ct := normalizeContentType(contentType)
	if ct == "" {
		ct = ContentTypeJSON
	}
	if c, ok := cs.byType[ct]; ok {
		return c, nil
	}
	if ct == ContentTypeJSON {
		return JSON{}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownContentType, contentType)
}

// normalizeContentType drops parameters such as "; charset=utf-8" and
// lower-cases the type, so "Application/JSON; charset=utf-8" finds JSON.
func normalizeContentType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if mt != "" {
		// Also on ErrInvalidMediaParameter: "application/json; charset" is
		// still JSON.
		return mt
	}
	if err != nil {
		return ct
	}
	return mt
}
