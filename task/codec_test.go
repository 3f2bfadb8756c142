package task

import (
	"errors"
	"strings"
	"testing"
)

// textCodec is a custom codec for tests: it carries a string payload as the
// raw body under text/plain.
type textCodec struct{}

func (textCodec) ContentType() string { return "text/plain" }

func (textCodec) Marshal(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, errors.New("textCodec: payload is not a string")
	}
	return []byte(s), nil
}

func (textCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return errors.New("textCodec: target is not a *string")
	}
	*p = string(data)
	return nil
}

// strictJSON stands in for a user's own JSON codec that replaces the default
// one under application/json.
type strictJSON struct{ JSON }

// failCodec fails every call, to test error paths.
type failCodec struct{}

var errCodec = errors.New("failCodec: always fails")

func (failCodec) ContentType() string                { return "application/x-fail" }
func (failCodec) Marshal(any) ([]byte, error)        { return nil, errCodec }
func (failCodec) Unmarshal(data []byte, v any) error { return errCodec }

func TestCodecsLookup(t *testing.T) {
	withText := func() *Codecs { var cs Codecs; cs.Add(textCodec{}); return &cs }
	withStrictJSON := func() *Codecs { var cs Codecs; cs.Add(strictJSON{}); return &cs }

	tests := []struct {
		name        string
		codecs      func() *Codecs
		contentType string
		want        Codec // nil: want ErrUnknownContentType
	}{
		{name: "empty means JSON", codecs: func() *Codecs { return &Codecs{} }, contentType: "", want: JSON{}},
		{name: "application/json", codecs: func() *Codecs { return &Codecs{} }, contentType: "application/json", want: JSON{}},
		{name: "case and parameters ignored", codecs: func() *Codecs { return &Codecs{} }, contentType: "Application/JSON; charset=utf-8", want: JSON{}},
		{name: "space before parameters", codecs: func() *Codecs { return &Codecs{} }, contentType: "application/json ; charset=utf-8", want: JSON{}},
		{name: "unknown type", codecs: func() *Codecs { return &Codecs{} }, contentType: "application/x-msgpack"},
		{name: "custom type unknown until added", codecs: func() *Codecs { return &Codecs{} }, contentType: "text/plain"},
		{name: "custom codec", codecs: withText, contentType: "text/plain", want: textCodec{}},
		{name: "custom codec with parameters", codecs: withText, contentType: "Text/Plain; charset=utf-8", want: textCodec{}},
		{name: "JSON still known beside a custom codec", codecs: withText, contentType: "application/json", want: JSON{}},
		{name: "custom codec replaces JSON", codecs: withStrictJSON, contentType: "application/json", want: strictJSON{}},
		{
			name: "empty content type follows a replaced JSON codec", codecs: withStrictJSON, contentType: "", want: strictJSON{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.codecs().Lookup(tc.contentType)
			if tc.want == nil {
				if !errors.Is(err, ErrUnknownContentType) {
					t.Fatalf("Lookup(%q) error = %v, want ErrUnknownContentType", tc.contentType, err)
				}
				if !strings.Contains(err.Error(), tc.contentType) {
					t.Errorf("error %q does not name the content type %q", err, tc.contentType)
				}
				if got != nil {
					t.Errorf("Lookup(%q) codec = %T, want nil with the error", tc.contentType, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup(%q) error = %v", tc.contentType, err)
			}
			if got != tc.want {
				t.Errorf("Lookup(%q) = %T, want %T", tc.contentType, got, tc.want)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	type payload struct {
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	c := JSON{}
	if c.ContentType() != ContentTypeJSON {
		t.Fatalf("ContentType() = %q, want %q", c.ContentType(), ContentTypeJSON)
	}
	body, err := c.Marshal(payload{Name: "/tmp/lolcat1.avi", Size: 1301013})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"/tmp/lolcat1.avi","size":1301013}`; string(body) != want {
		t.Errorf("Marshal = %s, want %s", body, want)
	}
	var got payload
	if err := c.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got != (payload{Name: "/tmp/lolcat1.avi", Size: 1301013}) {
		t.Errorf("Unmarshal = %+v", got)
	}
}
