package conn

import (
	"net/url"
	"strings"
)

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
