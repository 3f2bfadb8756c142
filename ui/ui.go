package ui

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/inspect"
)

// Defaults of Config.
const (
	// DefaultRefresh is Config.Refresh when it is zero.
	DefaultRefresh = 5 * time.Second
	// DefaultTimeout is Config.Timeout when it is zero.
	DefaultTimeout = 15 * time.Second
	// DefaultActionTimeout is Config.ActionTimeout when it is zero.
	DefaultActionTimeout = 2 * time.Minute
)

// Bounds on what one page reads, so that a queue of a million messages
// costs no more than one of a hundred.
const (
	// PeekLimit is how many of a queue's next messages its page shows.
	PeekLimit = 20
	// DeadLimit is how many dead letters a queue's dead-letter page lists.
	DeadLimit = 100
	// ScanLimit is how many dead letters of each queue a task lookup
	// reads, and how many the overview reads to count the failures of
	// the last hour. A lookup reads inspect.MaxPeek ready messages only
	// when asked, by a POST.
	ScanLimit = 200
)

// Config configures the UI's handler.
type Config struct {
	// Inspector reads queues and workers, peeks at messages and purges.
	// Required; the handler does not close it.
	Inspector *inspect.Inspector
	// DeadLetters lists, replays and deletes dead letters. Required; the
	// handler does not close it.
	DeadLetters *deadletter.Client
	// Queues are work queues to show even when no live worker consumes
	// them. Without the management API the UI cannot list queues, and
	// shows these and the queues of the live workers; with it, it shows
	// every work queue of the vhost and these.
	Queues []string
	// ReadOnly hides purge, replay, delete and the peeks at ready
	// messages (a peek is a delivery), and refuses them (403). What it
	// allows: every page, which reads counts, live workers and dead
	// letters (each read given back, in order, marked redelivered).
	ReadOnly bool
	// User and Password, when User is not empty, require HTTP basic
	// authentication for every page. Over plain HTTP the password travels
	// in the clear: put TLS in front of a UI reached over a network.
	User, Password string
	// Hosts are the names, besides IP addresses and "localhost", that a UI
	// without a User answers to (the request's Host, without the port,
	// case-insensitive). Any other name is refused (403): a page of
	// another site whose name is rebound to the UI's address (DNS
	// rebinding) is same-origin to the cross-origin protection, and could
	// otherwise purge, replay and delete. List the names the UI is reached
	// by, or set a User. Ignored when User is set.
	Hosts []string
	// Broker is the broker URL, shown in the page header with its password
	// hidden, and scrubbed from any error text shown. Optional.
	Broker string
	// Logger logs actions (purge, replay, delete) and failed pages.
	// Defaults to zap.NewNop().
	Logger *zap.Logger
	// Refresh is how often the overview and workers pages reload their
	// content in the browser. Defaults to DefaultRefresh; negative: never.
	Refresh time.Duration
	// Timeout bounds the broker calls of one page. Defaults to
	// DefaultTimeout.
	Timeout time.Duration
	// ActionTimeout bounds one action; a bulk replay stopped by it says
	// how many letters it moved. Defaults to DefaultActionTimeout.
	ActionTimeout time.Duration
}

// server is the handler New returns.
type server struct {
	cfg      Config
	log      *zap.Logger
	pages    *pages
	secrets  []string // the broker passwords, scrubbed from error texts
	failures failureCache
}

// New returns the UI as an http.Handler. Mounted at the root of a server
// it serves its pages under "/"; to mount it under a path, strip the
// prefix: mux.Handle("/warren/", http.StripPrefix("/warren", h)). Links
// follow the prefix that was stripped.
func New(cfg Config) (http.Handler, error) {
	if cfg.Inspector == nil || cfg.DeadLetters == nil {
		return nil, errors.New("ui: Config.Inspector and Config.DeadLetters are required")
	}
	if cfg.User == "" && cfg.Password != "" {
		return nil, errors.New("ui: Config.Password is set without Config.User")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = DefaultActionTimeout
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, log: cfg.Logger, pages: p, secrets: passwords(cfg.Broker)}

	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /queue", s.queue)
	mux.HandleFunc("GET /dead", s.dead)
	mux.HandleFunc("GET /workers", s.workers)
	mux.HandleFunc("GET /task", s.task)
	mux.HandleFunc("POST /task", s.searchReady)
	mux.HandleFunc("POST /queue/peek", s.peekQueue)
	mux.HandleFunc("POST /queue/purge", s.action(s.purge))
	mux.HandleFunc("POST /dead/replay", s.action(s.replay))
	mux.HandleFunc("POST /dead/delete", s.action(s.deleteDead))

	// Outermost first: who you are (or, with no user, by which name you
	// came), then where the request comes from.
	var h http.Handler = mux
	h = http.NewCrossOriginProtection().Handler(h)
	h = s.hosts(h)
	h = s.auth(h)
	return headers(h), nil
}

// headers sets what every answer carries: no script or style but ours
// (so that a payload that slipped through escaping still could not run),
// no framing, no sniffing.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// auth requires basic authentication when a user is configured. Both
// sides are hashed before a constant-time comparison, so that neither the
// time taken nor the lengths tell how much of a guess was right.
func (s *server) auth(next http.Handler) http.Handler {
	if s.cfg.User == "" {
		return next
	}
	wantUser := sha256.Sum256([]byte(s.cfg.User))
	wantPass := sha256.Sum256([]byte(s.cfg.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(user))
		gotPass := sha256.Sum256([]byte(pass))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="warren", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hosts, when no user is configured, answers only requests whose Host is
// an IP address, localhost or a name in Config.Hosts. DNS rebinding needs
// a name of the attacker's, which the attacker points at the UI's
// address; the browser then sends that name as the Host. With a user,
// basic authentication stops it: the browser has no credentials for that
// name.
func (s *server) hosts(next http.Handler) http.Handler {
	if s.cfg.User != "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !knownHost(r.Host, s.cfg.Hosts) {
			http.Error(w, fmt.Sprintf("warren ui: refused: %q is not an IP address, localhost or a listed name. "+
				"A UI without a password answers only those, so that another site's page whose name was rebound "+
				"to this address (DNS rebinding) cannot use it. Set a user and password (ui.Config.User, warren ui -user), "+
				"or list the name in ui.Config.Hosts (warren ui -hosts).", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// knownHost reports whether host (a Host header: a name or address and
// perhaps a port) is an IP address, localhost or one of names.
func knownHost(host string, names []string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	for _, n := range names {
		if n != "" && strings.EqualFold(host, strings.TrimSuffix(n, ".")) {
			return true
		}
	}
	return false
}

// base returns the path prefix the handler is mounted under: what
// http.StripPrefix took off the request's path, "" at the root.
func base(r *http.Request) string {
	full := r.RequestURI
	if i := strings.IndexByte(full, '?'); i >= 0 {
		full = full[:i]
	}
	if strings.HasPrefix(full, "http://") || strings.HasPrefix(full, "https://") {
		return "" // a proxy's absolute form: no prefix known
	}
	if p, ok := strings.CutSuffix(full, r.URL.EscapedPath()); ok {
		return strings.TrimSuffix(p, "/")
	}
	return ""
}

// passwords returns the passwords in a broker URL or list of URLs, each
// as written there, decoded, and encoded again as a formatter might
// (userinfo, path or query escaping), longest first, so that a longer form
// is hidden before a shorter one inside it.
func passwords(broker string) []string {
	var pws []string
	add := func(pw string) {
		if pw != "" && !slices.Contains(pws, pw) {
			pws = append(pws, pw)
		}
	}
	for _, u := range conn.SplitURLs(broker) {
		if i := strings.Index(u, "://"); i >= 0 {
			u = u[i+3:]
		}
		at := strings.LastIndexByte(u, '@')
		if at < 0 {
			continue
		}
		if _, pw, ok := strings.Cut(u[:at], ":"); ok && pw != "" {
			add(pw)
			if unesc, err := url.PathUnescape(pw); err == nil {
				add(unesc)
				add(url.QueryEscape(unesc))
				add(url.PathEscape(unesc))
				_, enc, _ := strings.Cut(url.UserPassword("", unesc).String(), ":")
				add(enc)
			}
		}
	}
	slices.SortStableFunc(pws, func(a, b string) int { return len(b) - len(a) })
	return pws
}

// scrub returns an error's text for a page, with the broker password, if
// any slipped into it, hidden.
func (s *server) scrub(err error) string {
	msg := err.Error()
	for _, pw := range s.secrets {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}
