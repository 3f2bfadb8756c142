package task

import (
	"errors"
	"strings"
	"testing"
)

func TestTooLargeErrorText(t *testing.T) {
	tests := []struct {
		err  *TooLargeError
		want string
	}{
		{&TooLargeError{Part: PartBody, Size: 20, Limit: 10}, "task: message too large: body is 20 bytes, over the limit of 10 bytes"},
		{&TooLargeError{Task: "resize", Part: PartHeaders, Size: 128004, Limit: 65536, Entries: 4000},
			"task: message for resize too large: headers are 128004 bytes in 4000 entries, over the limit of 65536 bytes"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// A producer's header value can be as long as a frame; the error quoting it
// must not be.
func TestHeaderErrorClipsLongValues(t *testing.T) {
	long := strings.Repeat("9", 100_000)
	for _, h := range []map[string]any{{HeaderRetries: long}, {HeaderETA: long}, {HeaderTask: []byte(long)}} {
		var m Message
		err := m.ParseHeaders(h)
		if err == nil {
			t.Fatalf("ParseHeaders(%d-byte value) succeeded", len(long))
		}
		if len(err.Error()) > 300 {
			t.Errorf("error is %d bytes: %.120s...", len(err.Error()), err)
		}
		if !strings.Contains(err.Error(), "bytes)") {
			t.Errorf("error %q does not say how long the value was", err)
		}
	}
	if got := clip("héllo"); got != "héllo" {
		t.Errorf("clip of a short string = %q", got)
	}
	// Cut on a rune boundary: 63 ASCII bytes then a 2-byte rune.
	if got := clip(strings.Repeat("a", 63) + "éééé"); !strings.HasPrefix(got, strings.Repeat("a", 63)+"…") {
		t.Errorf("clip split a rune: %q", got)
	}
}

// A task name is the producer's and may be as long as the frame; errors
// that name it stay short.
func TestErrorsClipTaskNames(t *testing.T) {
	long := strings.Repeat("t", 50_000)
	for _, err := range []error{
		&TooLargeError{Task: long, Part: PartBody, Size: 2, Limit: 1},
		&DecodeError{Task: long, Err: errors.New("bad")},
	} {
		if n := len(err.Error()); n > 300 {
			t.Errorf("%T error is %d bytes", err, n)
		}
		if !strings.Contains(err.Error(), "(50000 bytes)") {
			t.Errorf("%T error %q does not say how long the name was", err, err)
		}
	}
}
