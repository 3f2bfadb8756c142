package ui

import (
	"errors"
	"strings"
	"testing"
)

// scrub hides a broker password in an error's text however it was
// written: as in the URL (percent-encoded), decoded, or encoded again by
// another formatter.
func TestScrub(t *testing.T) {
	const raw = "p@ss w0rd/x"
	s := &server{secrets: passwords("amqp://ops:p%40ss%20w0rd%2Fx@rabbit-1:5672/, amqp://ops:plain-Secret@rabbit-2:5672/")}
	for _, msg := range []string{
		"dial amqp://ops:p%40ss%20w0rd%2Fx@rabbit-1:5672/: refused", // as given
		"dial amqp://ops:p@ss w0rd/x@rabbit-1:5672/: refused",       // decoded
		"dial amqp://ops:p%40ss+w0rd%2Fx@rabbit-1:5672/: refused",   // query-escaped
		"GET http://ops:p%40ss%20w0rd%2Fx@rabbit-1:15672/api: refused",
		"dial amqp://ops:plain-Secret@rabbit-2:5672/: refused", // the second URL's
	} {
		got := s.scrub(errors.New(msg))
		for _, secret := range []string{raw, "p%40ss", "p@ss", "w0rd", "plain-Secret"} {
			if strings.Contains(got, secret) {
				t.Errorf("scrub(%q) = %q: it holds %q", msg, got, secret)
			}
		}
		if !strings.Contains(got, "xxxxx") || !strings.Contains(got, "rabbit-") {
			t.Errorf("scrub(%q) = %q: want the password replaced, the rest kept", msg, got)
		}
	}
}
