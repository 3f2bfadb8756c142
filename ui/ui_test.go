package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/ui"
)

// fixture is a UI on the test broker with one work queue of its own.
type fixture struct {
	b     *brokertest.Broker
	queue string
	h     http.Handler
	insp  *inspect.Inspector
	dl    *deadletter.Client
}

// newFixture declares a work queue and its dead-letter queue and returns
// the UI's handler on them, with cfg's options.
func newFixture(t *testing.T, cfg ui.Config) *fixture {
	t.Helper()
	b := brokertest.New(t)
	q := b.Queue("jobs")
	b.DeclareQueue(q)
	b.DeclareQueue(q + ".dead")
	insp, err := inspect.New(inspect.Config{Conn: conn.Config{URL: b.URL}, NoManagement: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = insp.Close() })
	dl, err := deadletter.New(deadletter.Config{Conn: conn.Config{URL: b.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	cfg.Inspector, cfg.DeadLetters = insp, dl
	cfg.Queues = append(cfg.Queues, q)
	h, err := ui.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{b: b, queue: q, h: h, insp: insp, dl: dl}
}

// deadLetter puts a dead letter with body into the queue's .dead, as a
// worker would have.
func (f *fixture) deadLetter(id string, body []byte) {
	f.b.Publish("", f.queue+".dead", amqp.Publishing{
		MessageId: id, ContentType: "application/json", Body: body,
		Headers: amqp.Table{
			task.HeaderTask: "charge", task.HeaderReason: "permanent", task.HeaderError: "card declined <b>",
			task.HeaderAttempts: int64(1), task.HeaderQueue: f.queue, task.HeaderDiedAt: time.Now().UTC().Format(time.RFC3339),
		},
	})
}

// do serves one request and returns the status and body. A request made
// without a host (httptest's example.com) is sent to localhost, which a UI
// without a user answers.
func (f *fixture) do(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	if r.Host == "example.com" {
		r.Host = "localhost"
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return f.do(t, httptest.NewRequest(http.MethodGet, path, nil))
}

// post sends an action's form as a same-origin browser would.
func (f *fixture) post(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return f.do(t, r)
}

func TestPayloadIsShownAsEscapedText(t *testing.T) {
	f := newFixture(t, ui.Config{})
	f.deadLetter("t-1", []byte(`{"note":"<script>document.title='pwned'</script>"}`))
	f.deadLetter("t-2", []byte{0x00, 0xff, 0x10, '<', 's'})

	code, body := f.get(t, "/dead?q="+url.QueryEscape(f.queue))
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if strings.Contains(body, "<script>document") || strings.Contains(body, "<b>") {
		t.Errorf("the page holds the payload's or the error's markup unescaped:\n%s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;") {
		t.Errorf("the page does not show the payload as text:\n%s", body)
	}
	if !strings.Contains(body, "card declined &lt;b&gt;") {
		t.Errorf("the page does not show the error as text")
	}
	if !strings.Contains(body, `<span class="badge">binary</span> 5 bytes`) || !strings.Contains(body, "00 ff 10 3c 73") {
		t.Errorf("the binary body is not shown as a hex dump marked binary:\n%s", body)
	}
}

func TestReadOnlyHidesAndRefusesActions(t *testing.T) {
	f := newFixture(t, ui.Config{ReadOnly: true})
	f.deadLetter("t-1", []byte(`{}`))
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "r-1", Body: []byte(`{}`)})

	for _, page := range []string{"/dead?q=", "/queue?q="} {
		code, body := f.get(t, page+url.QueryEscape(f.queue))
		if code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", page, code, body)
		}
		if strings.Contains(body, `method="post"`) {
			t.Errorf("%s: read-only page has an action form:\n%s", page, body)
		}
	}
	for _, action := range []string{"/queue/purge", "/dead/replay", "/dead/delete"} {
		code, _ := f.post(t, action, url.Values{"q": {f.queue}, "all": {"1"}, "n": {"1"}, "confirm": {"yes"}})
		if code != http.StatusForbidden {
			t.Errorf("%s in read-only mode: status %d, want 403", action, code)
		}
	}
	if n := f.b.Ready(f.queue); n != 1 {
		t.Errorf("work queue holds %d, want its 1 message", n)
	}
	if n := f.b.Ready(f.queue + ".dead"); n != 1 {
		t.Errorf("dead-letter queue holds %d, want its 1 letter", n)
	}
}

func TestBasicAuth(t *testing.T) {
	f := newFixture(t, ui.Config{User: "ops", Password: "s3cret"})
	for _, c := range []struct {
		name       string
		user, pass string
		set        bool
		want       int
	}{
		{"none", "", "", false, http.StatusUnauthorized},
		{"wrong password", "ops", "s3cre", true, http.StatusUnauthorized},
		{"wrong user", "op", "s3cret", true, http.StatusUnauthorized},
		{"right", "ops", "s3cret", true, http.StatusOK},
	} {
		r := httptest.NewRequest(http.MethodGet, "/workers", nil)
		if c.set {
			r.SetBasicAuth(c.user, c.pass)
		}
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, w.Code, c.want)
		}
		if c.want == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: no basic challenge: %q", c.name, w.Header().Get("WWW-Authenticate"))
		}
	}
}

func TestCrossOriginActionsAreRefused(t *testing.T) {
	f := newFixture(t, ui.Config{})
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "r-1", Body: []byte(`{}`)})
	form := url.Values{"q": {f.queue}, "confirm": {"yes"}}
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/queue/purge", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			r.Header.Set(k, v)
		}
		if code, _ := f.do(t, r); code != http.StatusForbidden {
			t.Errorf("purge with %v: status %d, want 403", h, code)
		}
	}
	if n := f.b.Ready(f.queue); n != 1 {
		t.Errorf("work queue holds %d after refused purges, want 1", n)
	}
}

func TestDestructiveActionsAskFirst(t *testing.T) {
	f := newFixture(t, ui.Config{})
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "r-1", Body: []byte(`{}`)})
	f.deadLetter("d-1", []byte(`{}`))
	f.deadLetter("d-2", []byte(`{}`))

	for _, c := range []struct {
		action string
		form   url.Values
	}{
		{"/queue/purge", url.Values{"q": {f.queue}}},
		{"/dead/delete", url.Values{"q": {f.queue}, "id": {"d-1"}}},
		{"/dead/replay", url.Values{"q": {f.queue}, "all": {"1"}}},
		{"/dead/replay", url.Values{"q": {f.queue}, "id": {"d-1", "d-2"}}},
	} {
		code, body := f.post(t, c.action, c.form)
		if code != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) {
			t.Errorf("%s %v: status %d, want a confirmation page:\n%s", c.action, c.form, code, body)
		}
	}
	if f.b.Ready(f.queue) != 1 || f.b.Ready(f.queue+".dead") != 2 {
		t.Fatalf("unconfirmed actions changed the queues: %d ready, %d dead", f.b.Ready(f.queue), f.b.Ready(f.queue+".dead"))
	}

	// Confirmed, they act and say so.
	code, _ := f.post(t, "/dead/delete", url.Values{"q": {f.queue}, "id": {"d-1"}, "confirm": {"yes"}})
	if code != http.StatusSeeOther || f.b.Ready(f.queue+".dead") != 1 {
		t.Errorf("confirmed delete: status %d, %d dead letters left, want 303 and 1", code, f.b.Ready(f.queue+".dead"))
	}
	code, _ = f.post(t, "/dead/replay", url.Values{"q": {f.queue}, "id": {"d-2"}})
	if code != http.StatusSeeOther || f.b.Ready(f.queue+".dead") != 0 || f.b.Ready(f.queue) != 2 {
		t.Errorf("replay of one: status %d, %d dead, %d ready; want 303, 0, 2", code, f.b.Ready(f.queue+".dead"), f.b.Ready(f.queue))
	}
	code, _ = f.post(t, "/queue/purge", url.Values{"q": {f.queue}, "confirm": {"yes"}})
	if code != http.StatusSeeOther || f.b.Ready(f.queue) != 0 {
		t.Errorf("confirmed purge: status %d, %d ready; want 303 and 0", code, f.b.Ready(f.queue))
	}
}

func TestMountedUnderAPrefix(t *testing.T) {
	f := newFixture(t, ui.Config{})
	mux := http.NewServeMux()
	mux.Handle("/ops/warren/", http.StripPrefix("/ops/warren", f.h))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/ops/warren/", nil)
	r.Host = "localhost"
	mux.ServeHTTP(w, r)
	body := w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, body)
	}
	for _, want := range []string{`href="/ops/warren/static/style.css"`, `href="/ops/warren/queue?q=` + url.QueryEscape(f.queue)} {
		if !strings.Contains(body, want) {
			t.Errorf("the page has no %s:\n%s", want, body)
		}
	}
	w = httptest.NewRecorder()
	r = httptest.NewRequest(http.MethodGet, "/ops/warren/static/ui.js", nil)
	r.Host = "localhost"
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "data-select-all") {
		t.Errorf("static/ui.js under the prefix: status %d", w.Code)
	}
}

func TestBrokerPasswordIsNeverShown(t *testing.T) {
	const secret = "pa55-w0rd-xyz"
	f := newFixture(t, ui.Config{Broker: "amqp://ops:" + secret + "@127.0.0.1:5672/"})
	for _, page := range []string{"/", "/workers", "/queue?q=" + url.QueryEscape(f.queue), "/queue?q=no-such-queue", "/task?id=x"} {
		_, body := f.get(t, page)
		if strings.Contains(body, secret) {
			t.Errorf("%s shows the broker password", page)
		}
		if page == "/" && !strings.Contains(body, "amqp://ops:xxxxx@127.0.0.1:5672/") {
			t.Errorf("%s does not name the broker, redacted:\n%s", page, body)
		}
	}
}

// The same with a broker that does not answer: the pages' errors name its
// URL, which must come out without the password. (conn redacts its own
// URLs, and the UI scrubs every error it shows: TestScrub.)
func TestBrokerPasswordIsNeverShownInErrors(t *testing.T) {
	const secret = "pa55-w0rd-xyz"
	broker := "amqp://ops:" + secret + "@" + testenv.FreeAddr(t) + "/"
	c := conn.Config{URL: broker}
	insp, err := inspect.New(inspect.Config{Conn: c, NoManagement: true, Timeout: time.Second, PresenceWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = insp.Close() })
	dl, err := deadletter.New(deadletter.Config{Conn: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Close() })
	h, err := ui.New(ui.Config{Inspector: insp, DeadLetters: dl, Broker: broker, Queues: []string{"jobs"}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"/", "/workers", "/queue?q=jobs", "/dead?q=jobs", "/task?id=x"} {
		r := httptest.NewRequest(http.MethodGet, page, nil)
		r.Host = "localhost"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body := w.Body.String()
		if strings.Contains(body, secret) {
			t.Errorf("%s shows the broker password:\n%s", page, body)
		}
		if !strings.Contains(body, "ops:xxxxx@127.0.0.1:") {
			t.Errorf("%s shows no error naming the broker, so the test proves nothing:\n%s", page, body)
		}
	}
}

func TestNewChecksItsConfig(t *testing.T) {
	if _, err := ui.New(ui.Config{}); err == nil {
		t.Error("New without an Inspector and DeadLetters returned no error")
	}
}

// redelivered takes the next message of queue and puts it back as it was,
// and reports whether something had delivered it before (a peek, a read).
func (f *fixture) redelivered(t *testing.T, queue string) bool {
	t.Helper()
	d, ok := f.b.Get(queue)
	if !ok {
		t.Fatalf("%s is empty", queue)
	}
	f.b.Publish("", queue, amqp.Publishing{MessageId: d.MessageId, Body: d.Body, Headers: d.Headers})
	return d.Redelivered
}

// A peek is a delivery (redelivered flag; on a quorum queue one towards
// its delivery limit): a GET never does one, so that neither a reload nor
// another site's <img src=...> can. Only the POST does.
func TestQueuePagePeeksOnlyWhenAsked(t *testing.T) {
	f := newFixture(t, ui.Config{})
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "next-1", Body: []byte(`{"n":"<i>1</i>"}`),
		Headers: amqp.Table{task.HeaderTask: "charge"}})

	for _, page := range []string{"/queue?q=", "/queue?peek=1&q="} {
		_, body := f.get(t, page+url.QueryEscape(f.queue))
		if strings.Contains(body, "next-1") || !strings.Contains(body, `id="peek"`) {
			t.Errorf("GET %s peeked, or offers no peek:\n%s", page, body)
		}
		if f.redelivered(t, f.queue) {
			t.Fatalf("GET %s delivered the message", page)
		}
	}

	code, body := f.post(t, "/queue/peek", url.Values{"q": {f.queue}})
	if code != http.StatusOK || !strings.Contains(body, `data-id="next-1"`) || !strings.Contains(body, "&lt;i&gt;1&lt;/i&gt;") {
		t.Errorf("the peek does not show the next message, escaped (status %d):\n%s", code, body)
	}
	if n := f.b.Ready(f.queue); n != 1 {
		t.Errorf("after a peek the queue holds %d ready, want 1", n)
	}
}

// A lookup by GET searches running tasks and dead letters, never the ready
// messages: it offers that as a POST, which says what it costs.
func TestTaskLookup(t *testing.T) {
	f := newFixture(t, ui.Config{})
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "ready-7", Body: []byte(`{}`), Headers: amqp.Table{task.HeaderTask: "charge"}})
	f.deadLetter("dead-7", []byte(`{}`))

	for id, want := range map[string]string{"dead-7": `data-where="dead"`, "nowhere-7": `id="not-found"`, "ready-7": `id="not-found"`} {
		code, body := f.get(t, "/task?id="+id)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET lookup of %s: status %d, want %s in:\n%s", id, code, want, body)
		}
		if !strings.Contains(body, `<form method="post" action="/task" id="search-ready">`) || !strings.Contains(body, "delivery limit") {
			t.Errorf("GET lookup of %s offers no search of the ready messages, or does not say its cost:\n%s", id, body)
		}
	}
	if f.redelivered(t, f.queue) {
		t.Fatal("a GET lookup delivered a ready message")
	}

	code, body := f.post(t, "/task", url.Values{"id": {"ready-7"}, "ready": {"1"}})
	if code != http.StatusOK || !strings.Contains(body, `data-where="ready"`) {
		t.Errorf("POST lookup of ready-7: status %d, want it found ready:\n%s", code, body)
	}
	if n := f.b.Ready(f.queue); n != 1 {
		t.Errorf("after the search the queue holds %d ready, want 1", n)
	}
}

// The searches that deliver ready messages are actions: refused in
// read-only mode and from another site, as purge is.
func TestPeeksAreGuardedAsActions(t *testing.T) {
	f := newFixture(t, ui.Config{ReadOnly: true})
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "ready-7", Body: []byte(`{}`)})
	peeks := map[string]url.Values{"/queue/peek": {"q": {f.queue}}, "/task": {"id": {"ready-7"}, "ready": {"1"}}}
	for path, form := range peeks {
		if code, _ := f.post(t, path, form); code != http.StatusForbidden {
			t.Errorf("POST %s in read-only mode: status %d, want 403", path, code)
		}
	}
	_, body := f.get(t, "/task?id=ready-7")
	if strings.Contains(body, `method="post"`) || !strings.Contains(body, "read-only") {
		t.Errorf("the read-only lookup offers a search of the ready messages, or does not say why not:\n%s", body)
	}

	f = newFixture(t, ui.Config{})
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "ready-7", Body: []byte(`{}`)})
	for path, form := range peeks {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		if code, _ := f.do(t, r); code != http.StatusForbidden {
			t.Errorf("cross-site POST %s: status %d, want 403", path, code)
		}
	}
	if f.redelivered(t, f.queue) {
		t.Error("a refused peek delivered the message")
	}
}

// The overview counts the failures of the last hour by reading each
// queue's dead letters, which delivers them (redelivered; on RabbitMQ 4 a
// quorum .dead queue counts each return toward its delivery limit). An
// auto-refreshing tab must not do that every few seconds: a queue's
// letters are read at most once a minute, and letters that died since
// count without a read.
func TestOverviewReadsDeadLettersAtMostOnceAMinute(t *testing.T) {
	f := newFixture(t, ui.Config{})
	dq := f.queue + ".dead"
	f.deadLetter("d-1", []byte(`{}`))
	failures := func(want string) {
		t.Helper()
		_, body := f.get(t, "/")
		if !strings.Contains(body, `<span class="num" id="failures">`+want+`</span>`) || !strings.Contains(body, "as of ") {
			t.Errorf("the overview does not count %s failures, as of some time:\n%s", want, body)
		}
	}
	failures("1")
	if !f.redelivered(t, dq) {
		t.Fatal("the first overview did not read the dead letters: the test cannot tell a second read")
	}
	failures("1")
	if f.redelivered(t, dq) {
		t.Error("a second overview within the minute read the dead letters again")
	}
	f.deadLetter("d-2", []byte(`{}`))
	failures("2")
	for range 2 {
		if f.redelivered(t, dq) {
			t.Error("a new dead letter made the overview read the dead letters again")
		}
	}
}

// A UI without a user answers only requests whose Host is an IP address,
// localhost or a listed name: a page of another site whose name was
// rebound to the UI's address (DNS rebinding) is same-origin to the
// cross-origin protection, and could otherwise purge. With a user, basic
// authentication guards it, since the browser sends no credentials to the
// other site's name.
func TestHostsWithoutAUser(t *testing.T) {
	f := newFixture(t, ui.Config{Hosts: []string{"warren.internal"}})
	f.b.Publish("", f.queue, amqp.Publishing{MessageId: "r-1", Body: []byte(`{}`)})
	for host, want := range map[string]int{
		"127.0.0.1:8080": http.StatusOK, "[::1]:8080": http.StatusOK, "10.1.2.3": http.StatusOK,
		"localhost:8080": http.StatusOK, "LocalHost.": http.StatusOK,
		"warren.internal:8080": http.StatusOK, "Warren.Internal": http.StatusOK,
		"evil.example:8080": http.StatusForbidden, "localhost.evil.example": http.StatusForbidden, "": http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodGet, "/workers", nil)
		r.Host = host
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: status %d, want %d", host, w.Code, want)
		}
		if want == http.StatusForbidden && (!strings.Contains(w.Body.String(), "user") || !strings.Contains(w.Body.String(), "Hosts")) {
			t.Errorf("Host %q: the refusal does not say what to do: %s", host, w.Body.String())
		}
	}
	form := url.Values{"q": {f.queue}, "confirm": {"yes"}}
	r := httptest.NewRequest(http.MethodPost, "http://evil.example/queue/purge", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || f.b.Ready(f.queue) != 1 {
		t.Errorf("a rebound same-origin purge: status %d, %d ready; want 403 and 1", w.Code, f.b.Ready(f.queue))
	}

	f = newFixture(t, ui.Config{User: "ops", Password: "s3cret"})
	r = httptest.NewRequest(http.MethodGet, "http://evil.example/workers", nil)
	r.SetBasicAuth("ops", "s3cret")
	w = httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("with a user, any host authenticated: status %d, want 200", w.Code)
	}
}
