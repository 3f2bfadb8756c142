package broker

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
