package ui

import (
	"bytes"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
)

//go:embed assets
var assets embed.FS

//go:embed templates
var templateFS embed.FS

// pages holds one template set per page, each the layout plus the page's
// "content".
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"count": count,
	"ago":   ago,
	"since": since,
	"short": short,
	"opt": func(p *int) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprint(*p)
	},
	"rate": func(p *float64) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f/s", *p)
	},
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"join":  strings.Join,
	"minus": func(a, b int) int { return a - b },
	"deref": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
}

func parsePages() (*pages, error) {
	names, err := templateFS.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimSuffix(n.Name(), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n.Name())
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is what the layout needs of every page, and the page's own data.
type view struct {
	Title    string
	Nav      string // which tab is current: overview, workers, task
	Base     string // the path prefix the handler is mounted under
	Broker   string // redacted
	ReadOnly bool
	Refresh  int    // seconds between reloads of the content; 0: none
	Flash    string // what the last action did
	Err      string // why the page is incomplete
	Data     any
}

// render writes page name with v, completing v's common fields.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	v.Base = base(r)
	v.ReadOnly = s.cfg.ReadOnly
	if s.cfg.Broker != "" {
		v.Broker = conn.Redact(s.cfg.Broker)
	}
	t := s.pages.byName[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("ui: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page for a request that could not be served.
func (s *server) fail(w http.ResponseWriter, r *http.Request, status int, title string, err error) {
	s.log.Warn("ui: "+title, zap.String("path", r.URL.Path), zap.Error(err))
	s.render(w, r, status, "error", &view{Title: title, Err: s.scrub(err)})
}

// shownBody shows a message body safely: as text when it is text (JSON
// indented), else as a hex dump marked binary; cut at maxText bytes
// either way. The template escapes it.
type shownBody struct {
	Text   string // what to show in a <pre>
	Short  string // one line for a table cell
	Binary bool
	Size   int
	Cut    bool // Text shows only the start
}

// Bounds on a body as shown.
const (
	maxText   = 4096 // bytes of text shown
	maxBinary = 512  // bytes of a binary body dumped in hex
	maxShort  = 80   // runes in a table cell
)

func showBody(b []byte) shownBody {
	out := shownBody{Size: len(b)}
	if !isText(b) {
		out.Binary = true
		dump := b
		if len(dump) > maxBinary {
			dump, out.Cut = dump[:maxBinary], true
		}
		out.Text = hex.Dump(dump)
		out.Short = fmt.Sprintf("binary, %d bytes", len(b))
		return out
	}
	text := string(b)
	var ind bytes.Buffer
	if json.Valid(b) && json.Indent(&ind, b, "", "  ") == nil {
		text = unescapeHTML(ind.String())
	}
	if len(text) > maxText {
		cut := maxText
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text, out.Cut = text[:cut], true
	}
	out.Text = text
	out.Short = oneLine(string(b), maxShort)
	return out
}

// unescapeHTML turns the escapes Go's JSON encoder writes for <, > and &
// back into the characters, so that a payload reads as it was meant; the
// template escapes them for the page. A backslash pair is copied as it is,
// so "\\u003c" (a backslash, then "u003c") stays.
func unescapeHTML(s string) string {
	if !strings.Contains(s, `\u00`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch rest := s[i:]; {
		case strings.HasPrefix(rest, `\u003c`):
			b.WriteByte('<')
		case strings.HasPrefix(rest, `\u003e`):
			b.WriteByte('>')
		case strings.HasPrefix(rest, `\u0026`):
			b.WriteByte('&')
		default:
			b.WriteString(s[i : i+2])
			i++
			continue
		}
		i += 5
	}
	return b.String()
}

// isText reports whether b is UTF-8 without control characters other
// than white space: what a <pre> can show as it is.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// oneLine cuts s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// ago says how long ago t was, briefly.
func ago(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return short(time.Since(t)) + " ago"
}

// since says how long since t, briefly: a running task's age.
func since(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return short(time.Since(t))
}

func short(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// count is "1 thing" or "n things", for a page that says how many.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
