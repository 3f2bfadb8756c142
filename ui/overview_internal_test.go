package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// With no queue to show (no management API, none named, no live worker)
// the overview says how to get some, and offers to open one by name,
// rather than show an error. Rendered directly: on a shared broker another
// test's live workers would give the handler queues to show.
func TestOverviewWithoutQueuesSaysWhatToDo(t *testing.T) {
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cfg: Config{}, pages: p}
	for _, d := range []*overviewData{
		{NoQueues: true},
		{NoQueues: true, ManagementErr: "dial tcp 127.0.0.1:15672: connect: connection refused"},
	} {
		w := httptest.NewRecorder()
		s.render(w, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusOK, "overview", &view{Title: "Overview", Data: d})
		body := w.Body.String()
		for _, want := range []string{
			`id="no-queues"`, "warren ui -queues video,audio", "rabbitmq-plugins enable rabbitmq_management",
			`<form method="get" action="/queue" class="open-queue"`, `name="q"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("ManagementErr %q: the page has no %q:\n%s", d.ManagementErr, want, body)
			}
		}
		if strings.Contains(body, `role="alert"`) || strings.Contains(body, `<table class="queues">`) {
			t.Errorf("the empty state shows an error or an empty table:\n%s", body)
		}
		if d.ManagementErr != "" && !strings.Contains(body, "did not answer (dial tcp") {
			t.Errorf("the page does not say why the management API is not used")
		}
	}
}
