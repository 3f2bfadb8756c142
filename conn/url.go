package conn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// CheckURL says, in words a person can act on, why list is not a broker
// URL or a list of them (SplitURLs), or returns nil. Check it before any
// dial, so that a typo never surfaces as an unrelated error later (a
// refused vhost, a management API that cannot be found). The error shows
// the URL redacted, or not at all when it cannot be parsed far enough to
// hide its password. Components run it in New, with the client library's
// own parse after it.
func CheckURL(list string) error {
	urls := SplitURLs(list)
	if len(urls) == 0 {
		return fmt.Errorf("the broker URL is empty: %s", exampleURL)
	}
	for i, u := range urls {
		if err := checkURL(u); err != nil {
			if len(urls) > 1 {
				return fmt.Errorf("node %d of %d: %w", i+1, len(urls), err)
			}
			return err
		}
	}
	return nil
}

const exampleURL = "e.g. amqp://user:password@rabbit.example.com:5672/vhost"

// checkURL is CheckURL for one URL.
func checkURL(rawURL string) error {
	shown := Redact(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" || shown == unparsable {
		if s := strings.ToLower(rawURL); !strings.HasPrefix(s, "amqp://") && !strings.HasPrefix(s, "amqps://") {
			return fmt.Errorf("the broker URL does not start with amqp:// or amqps:// (not shown: it may hold a password): %s", exampleURL)
		}
		return errors.New("the broker URL is malformed (not shown: it may hold a password): " +
			"check the port, and escape @ / : # ? % and spaces in the user and password (%40 for @)")
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("broker URL %s: the scheme is %q; want amqp:// or amqps://, %s", shown, u.Scheme, exampleURL)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("broker URL %s has no host: %s", shown, exampleURL)
	}
	return nil
}

// unparsable is what Redact shows for a URL it cannot parse.
const unparsable = "(unparsable broker URL)"

// Redact returns rawURL with any password replaced by "xxxxx", for logs and
// errors: passwords in broker URLs never appear in either.
func Redact(rawURL string) string {
	if urls := SplitURLs(rawURL); len(urls) > 1 {
		for i, u := range urls {
			urls[i] = Redact(u)
		}
		return strings.Join(urls, ",")
	}
	u, err := url.Parse(rawURL)
	// An unparsable URL may still hold a password; so may one that parses
	// oddly ("guest:pw@host" reads as scheme "guest", and a "/" in a
	// password ends the host early). Show none of those.
	if err != nil || u.Opaque != "" || (u.User == nil && strings.Contains(rawURL, "@")) {
		return unparsable
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

// SplitURLs splits a list of broker URLs, the nodes of one cluster,
// separated by commas. A comma starts the next URL only where amqp:// or
// amqps:// follows it, so that a password may hold one. Spaces and stray
// commas around each URL are dropped; a string with no URL gives none.
func SplitURLs(list string) []string {
	var urls []string
	rest := list
	for {
		i := nextURL(rest)
		if u := strings.Trim(rest[:i], " ,"); u != "" {
			urls = append(urls, u)
		}
		if i == len(rest) {
			return urls
		}
		rest = rest[i+1:]
	}
}

// nextURL is the index of the comma that ends the first URL in s, or len(s).
func nextURL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] != ',' {
			continue
		}
		next := strings.ToLower(strings.TrimLeft(s[i+1:], " "))
		if strings.HasPrefix(next, "amqp://") || strings.HasPrefix(next, "amqps://") {
			return i
		}
	}
	return len(s)
}
