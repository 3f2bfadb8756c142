package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"go.uber.org/zap"

	"github.com/warrenq/warren/deadletter"
)

// errReadOnly answers an action in read-only mode.
var errReadOnly = errors.New("this UI is read-only: purge, replay, delete and peeks at ready messages are turned off")

// refuseReadOnly answers 403 in read-only mode, and says whether it did.
// Every POST asks it: actions change queues, and peeks deliver messages.
func (s *server) refuseReadOnly(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.ReadOnly {
		s.fail(w, r, http.StatusForbidden, "Read-only", errReadOnly)
	}
	return s.cfg.ReadOnly
}

// form is an action's fields.
type form struct {
	queue   string
	ids     []string // chosen dead letters, by task id
	all     bool     // every dead letter, up to n
	n       int      // with all: how many the confirmation page counted
	confirm bool     // the confirmation page was answered
}

// confirmData is the confirmation page: the question, and the same form
// again with confirm=yes.
type confirmData struct {
	Question string
	Detail   string
	Action   string // path under the base
	Button   string
	Fields   []field
	Back     string // path and query under the base
}

type field struct{ Name, Value string }

// action wraps a POST handler: refused in read-only mode, the form
// parsed, bounded by ActionTimeout.
func (s *server) action(fn func(ctx context.Context, w http.ResponseWriter, r *http.Request, f form)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.refuseReadOnly(w, r) {
			return
		}
		if err := r.ParseForm(); err != nil {
			s.fail(w, r, http.StatusBadRequest, "Bad request", err)
			return
		}
		f := form{queue: r.PostForm.Get("q"), ids: distinct(r.PostForm["id"]), all: r.PostForm.Get("all") == "1", confirm: r.PostForm.Get("confirm") == "yes"}
		if f.queue == "" {
			s.fail(w, r, http.StatusBadRequest, "Bad request", errors.New("no queue named (field q)"))
			return
		}
		if v := r.PostForm.Get("n"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				s.fail(w, r, http.StatusBadRequest, "Bad request", fmt.Errorf("field n: %q is not a count", v))
				return
			}
			f.n = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ActionTimeout)
		defer cancel()
		fn(ctx, w, r, f)
	}
}

// done redirects to page (a path and query under the base) after an
// action, saying what it did; a reload then does not repeat it.
func done(w http.ResponseWriter, r *http.Request, page, what string, n int) {
	http.Redirect(w, r, fmt.Sprintf("%s%s&done=%s&n=%d", base(r), page, what, n), http.StatusSeeOther)
}

// flash says what the action that redirected here did. Only known
// actions are shown, so a crafted link cannot put words on the page.
func flash(r *http.Request) string {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil {
		return ""
	}
	switch r.URL.Query().Get("done") {
	case "purged":
		return fmt.Sprintf("Purged %s.", count(n, "ready message"))
	case "replayed":
		if n == 0 {
			return "Nothing replayed: no dead letter matched (another operator or a replay may have moved it)."
		}
		return fmt.Sprintf("Replayed %s: back in the work queue.", count(n, "dead letter"))
	case "deleted":
		if n == 0 {
			return "Nothing deleted: no dead letter matched."
		}
		return fmt.Sprintf("Deleted %s.", count(n, "dead letter"))
	}
	return ""
}

// distinct returns ids without repeats, in order.
func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func queuePage(q string) string { return "/queue?q=" + url.QueryEscape(q) }
func deadPage(q string) string  { return "/dead?q=" + url.QueryEscape(q) }

// fields returns f as the confirmation form's hidden fields.
func (f form) fields() []field {
	fs := []field{{"q", f.queue}}
	for _, id := range f.ids {
		fs = append(fs, field{"id", id})
	}
	if f.all {
		fs = append(fs, field{"all", "1"}, field{"n", strconv.Itoa(f.n)})
	}
	return fs
}

func (s *server) purge(ctx context.Context, w http.ResponseWriter, r *http.Request, f form) {
	if !f.confirm {
		q, err := s.cfg.Inspector.Queue(ctx, f.queue)
		detail := "Its ready messages are deleted for good. Messages workers are running stay, and so do its dead letters."
		if err == nil {
			detail = fmt.Sprintf("Its %d ready messages are deleted for good. Messages workers are running stay, and so do its dead letters.", q.Ready)
		}
		s.confirmPage(w, r, &confirmData{
			Question: fmt.Sprintf("Purge queue %s?", f.queue), Detail: detail,
			Action: "/queue/purge", Button: "Purge " + f.queue, Fields: f.fields(), Back: queuePage(f.queue),
		})
		return
	}
	n, err := s.cfg.Inspector.Purge(ctx, f.queue)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "Purge failed", err)
		return
	}
	s.log.Info("ui: purged queue", zap.String("queue", f.queue), zap.Int("messages", n))
	done(w, r, queuePage(f.queue), "purged", n)
}

// chosen returns the dead letters an action is about: how many at most,
// and which (nil: the oldest n).
func (f form) chosen() (n int, keep func(deadletter.Letter) bool) {
	if f.all {
		return f.n, nil
	}
	// want holds the ids not yet matched. Each is removed once matched, so
	// that a letter duplicated in .dead (an interrupted replay leaves a
	// copy; quorum queues dead-letter at least once) is acted on once per
	// choice, and the other chosen letters are still reached.
	want := make(map[string]bool, len(f.ids))
	for _, id := range f.ids {
		want[id] = true
	}
	return len(want), func(l deadletter.Letter) bool {
		if !want[l.ID] {
			return false
		}
		delete(want, l.ID)
		return true
	}
}

// what names the dead letters f chooses, for a confirmation question.
func (f form) what() string {
	switch {
	case f.all:
		return fmt.Sprintf("all %d dead letters", f.n)
	case len(f.ids) == 1:
		return "dead letter " + f.ids[0]
	}
	return fmt.Sprintf("%d dead letters", len(f.ids))
}

// needsLetters checks that f chooses some letters, and for "all" counts
// them when the form did not.
func (s *server) needsLetters(ctx context.Context, w http.ResponseWriter, r *http.Request, f *form) bool {
	if !f.all && len(f.ids) == 0 {
		s.fail(w, r, http.StatusBadRequest, "Nothing chosen", errors.New("choose dead letters (field id) or all of them (all=1)"))
		return false
	}
	if f.all && f.n == 0 {
		n, err := s.cfg.DeadLetters.Count(ctx, f.queue)
		if err != nil {
			s.fail(w, r, http.StatusBadGateway, "Counting dead letters failed", err)
			return false
		}
		f.n = n
	}
	return true
}

// letterAction is what replay and delete differ in; onLetters does the
// rest.
type letterAction struct {
	verb, past, path, detail string
	ask                      func(form) bool // whether to ask first
	do                       func(ctx context.Context, queue string, n int, keep func(deadletter.Letter) bool) (int, error)
}

// onLetters asks for a confirmation when act says to, then acts on the
// chosen letters and redirects to the dead-letter page.
func (s *server) onLetters(ctx context.Context, w http.ResponseWriter, r *http.Request, f form, act letterAction) {
	if !s.needsLetters(ctx, w, r, &f) {
		return
	}
	if !f.confirm && act.ask(f) {
		s.confirmPage(w, r, &confirmData{
			Question: fmt.Sprintf("%s %s of %s?", act.verb, f.what(), f.queue),
			Detail:   act.detail,
			Action:   act.path, Button: act.verb, Fields: f.fields(), Back: deadPage(f.queue),
		})
		return
	}
	n, keep := f.chosen()
	got, err := act.do(ctx, f.queue, n, keep)
	s.log.Info("ui: "+act.past+" dead letters", zap.String("queue", f.queue), zap.Int("letters", got), zap.Error(err))
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, act.verb+" failed", fmt.Errorf("%d %s, then: %w", got, act.past, err))
		return
	}
	done(w, r, deadPage(f.queue), act.past, got)
}

// replay moves dead letters back to their work queue. One letter goes at
// once: nothing is lost by it. More ask first, and "all" moves at most as
// many as the confirmation counted, so that letters that die again while
// it runs are not replayed in a loop.
func (s *server) replay(ctx context.Context, w http.ResponseWriter, r *http.Request, f form) {
	s.onLetters(ctx, w, r, f, letterAction{
		verb: "Replay", past: "replayed", path: "/dead/replay",
		detail: "Each goes back to the work queue it died in as a fresh task, attempts reset, and runs again.",
		ask:    func(f form) bool { return f.all || len(f.ids) > 1 },
		do:     s.cfg.DeadLetters.Replay,
	})
}

func (s *server) confirmPage(w http.ResponseWriter, r *http.Request, c *confirmData) {
	s.render(w, r, http.StatusOK, "confirm", &view{Title: "Confirm", Data: c})
}

// deleteDead removes dead letters for good, after a confirmation, one or
// many.
func (s *server) deleteDead(ctx context.Context, w http.ResponseWriter, r *http.Request, f form) {
	s.onLetters(ctx, w, r, f, letterAction{
		verb: "Delete", past: "deleted", path: "/dead/delete",
		detail: "They are removed for good: their tasks will not run. Replay them instead to run them again.",
		ask:    func(form) bool { return true },
		do:     s.cfg.DeadLetters.Delete,
	})
}
