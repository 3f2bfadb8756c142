package task

import (
	"encoding/json"
	"fmt"
	"mime"
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

// Unmarshal decodes data with encoding/json.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

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
