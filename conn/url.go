package conn

import (
	"net/url"
	"strings"
)

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
