package broker

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// CheckURL says, in words a person can act on, why rawURL is not a broker
// URL, or returns nil. It is checked before any dial, so that a typo never
// surfaces as an unrelated error later (a refused vhost, a management API
// that cannot be found). The error shows the URL redacted, or not at all
// when it cannot be parsed far enough to hide its password.
func CheckURL(rawURL string) error {
	const example = "e.g. amqp://user:password@rabbit.example.com:5672/vhost"
	if rawURL == "" {
		return fmt.Errorf("the broker URL is empty: %s", example)
	}
	shown := Redact(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" || shown == "(unparsable broker URL)" {
		if s := strings.ToLower(rawURL); !strings.HasPrefix(s, "amqp://") && !strings.HasPrefix(s, "amqps://") {
			return fmt.Errorf("the broker URL does not start with amqp:// or amqps:// (not shown: it may hold a password): %s", example)
		}
		return errors.New("the broker URL is malformed (not shown: it may hold a password): " +
			"check the port, and escape @ / : # ? % and spaces in the user and password (%40 for @)")
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("broker URL %s: the scheme is %q; want amqp:// or amqps://, %s", shown, u.Scheme, example)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("broker URL %s has no host: %s", shown, example)
	}
	if _, err := amqp.ParseURI(rawURL); err != nil {
		// Not err itself: url.Error quotes the URL, password included.
		return fmt.Errorf("broker URL %s is not one amqp091-go accepts: check the port and the vhost", shown)
	}
	return nil
}

// Redact returns rawURL with any password replaced by "xxxxx", for logs and
// errors: passwords in broker URLs never appear in either.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	// An unparsable URL may still hold a password; so may one that parses
	// oddly ("guest:pw@host" reads as scheme "guest", and a "/" in a
	// password ends the host early). Show none of those.
	if err != nil || u.Opaque != "" || (u.User == nil && strings.Contains(rawURL, "@")) {
		return "(unparsable broker URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// URLFlag is a flag.Value holding a broker URL that shows itself without
// its password: the flag package prints a flag's default, often taken from
// WARREN_BROKER_URL (a Secret in a pod), on -h and after every flag error,
// to stderr, which is the pod's log.
type URLFlag string

// String returns the URL redacted.
func (u *URLFlag) String() string {
	if u == nil || *u == "" {
		return ""
	}
	return Redact(string(*u))
}

// Set stores the URL as given.
func (u *URLFlag) Set(s string) error { *u = URLFlag(s); return nil }
