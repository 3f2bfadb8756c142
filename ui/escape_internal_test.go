package ui

import (
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/warrenq/warren/inspect"
)

// evil is a queue name and a task id that tries to leave an attribute
// ("), a single-quoted one ('), to open a tag (<) and, at the start of a
// URL, to run script (javascript:). Queue names and task ids are any
// strings a publisher chose.
const evil = `javascript:alert(1)//"'<b>`

// Every page puts names and ids in attributes (href, value, data-*, title,
// aria-label) as well as in text; html/template escapes each for its
// context. This pins that: none comes out raw, and no link starts with
// javascript:.
func TestNamesAreEscapedInAttributesAndURLs(t *testing.T) {
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	dead := 2
	q := inspect.Queue{Name: evil, Dead: &dead}
	worker := inspect.Worker{ID: evil, Queues: []string{evil}, Running: []inspect.RunningTask{{ID: evil, Queue: evil, Task: evil}}, RunningCount: 1}
	lv := letter{ID: evil, Queue: evil, Task: evil}
	msg := message{ID: evil, Task: evil}
	f := form{queue: evil, ids: []string{evil}}
	pages := map[string]any{
		"overview": &overviewData{Source: "amqp", Queues: []queueRow{{Queue: q, FailuresErr: evil}}, Workers: []inspect.Worker{worker}, FailuresAsOf: "as of 1s ago"},
		"queue":    &queueData{Queue: q, Peeked: true, Next: []message{msg}, Limit: PeekLimit},
		"dead":     &deadData{Queue: evil, Total: 1, Letters: []letter{lv}, Limit: DeadLimit},
		"workers":  &workersData{Workers: []inspect.Worker{worker}},
		"task": &taskData{ID: evil, Hits: []hit{
			{Where: "running", Queue: evil, Worker: &worker, Running: &worker.Running[0]},
			{Where: "ready", Queue: evil, Message: &msg, Pos: 1},
			{Where: "dead", Queue: evil, Letter: &lv},
		}},
		"confirm": &confirmData{Question: evil, Action: "/dead/delete", Button: evil, Fields: f.fields(), Back: deadPage(evil)},
	}
	// Each page must hold these escaped forms of evil: in an attribute
	// value, and in a link's query.
	const inAttr = `javascript:alert(1)//&#34;&#39;&lt;b&gt;`
	const inQuery = `javascript%3aalert%281%29%2f%2f%22%27%3cb%3e`
	want := map[string][]string{
		"overview": {`data-queue="` + inAttr + `"`, `href="/queue?q=` + inQuery + `"`, `href="/dead?q=` + inQuery + `"`, `title="` + inAttr + `"`},
		"queue":    {`name="q" value="` + inAttr + `"`, `href="/dead?q=` + inQuery + `"`, `data-id="` + inAttr + `"`},
		"dead":     {`name="q" value="` + inAttr + `"`, `name="id" value="` + inAttr + `"`, `data-id="` + inAttr + `"`, `aria-label="select ` + inAttr + `"`},
		"workers":  {`data-worker="` + inAttr + `"`, `data-task="` + inAttr + `"`, `href="/task?id=` + inQuery + `"`, `href="/queue?q=` + inQuery + `"`},
		"task":     {`name="id" value="` + inAttr + `"`, `href="/queue?q=` + inQuery + `"`, `href="/dead?q=` + inQuery + `"`},
		// Back is built in Go, already query-escaped (url.QueryEscape),
		// and the template leaves the escapes as they are.
		"confirm": {`name="q" value="` + inAttr + `"`, `name="id" value="` + inAttr + `"`, `href="/dead?q=javascript%3Aalert%281%29%2F%2F%22%27%3Cb%3E"`},
	}
	link := regexp.MustCompile(`(?i)\b(?:href|src|action|formaction)\s*=\s*"([^"]*)"`)
	s := &server{cfg: Config{}, pages: p}
	for name, data := range pages {
		w := httptest.NewRecorder()
		s.render(w, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusOK, name, &view{Title: evil, Data: data})
		body := w.Body.String()
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", name, w.Code, body)
		}
		if strings.Contains(body, evil) || strings.Contains(body, `"'<b>`) {
			t.Errorf("%s: the name comes out raw:\n%s", name, body)
		}
		for _, m := range link.FindAllStringSubmatch(body, -1) {
			if u := strings.ToLower(strings.TrimSpace(html.UnescapeString(m[1]))); strings.HasPrefix(u, "javascript:") {
				t.Errorf("%s: a link runs script: %s", name, m[0])
			}
		}
		for _, frag := range want[name] {
			if !strings.Contains(body, frag) {
				t.Errorf("%s: no %s in:\n%s", name, frag, body)
			}
		}
	}
}
