package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
)

// row splits the table row of queue in out into its columns.
func row(t *testing.T, out, queue string) []string {
	t.Helper()
	for _, l := range lines(out) {
		if f := strings.Fields(l); len(f) > 0 && f[0] == queue {
			return f
		}
	}
	t.Fatalf("no row for %s in:\n%s", queue, out)
	return nil
}

func TestQueuesPassive(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	video := workQueue(t, b, "video")
	plain := b.Queue("plain") // a queue without dead letters, with a consumer
	b.DeclareQueue(plain)
	publishN(b, video, 3)
	publishN(b, video+".dead", 2)
	ch := b.Channel()
	if _, err := ch.Consume(plain, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	missing := b.Queue("nosuch")

	r := cli(t, nil, "queues", video, plain, "-management", "none", "-broker", b.URL).want(t, exitOK)
	if !strings.HasPrefix(r.stdout, "source: AMQP passive declares, ready and consumers only\n") {
		t.Errorf("no source line:\n%s", r.stdout)
	}
	if got := strings.Join(row(t, r.stdout, video), " "); got != video+" 3 - 0 2 - -" {
		t.Errorf("video row %q", got)
	}
	if got := strings.Join(row(t, r.stdout, plain), " "); got != plain+" 0 - 1 - - -" {
		t.Errorf("plain row %q", got)
	}

	// JSON, and a missing queue among them: reported, exit 1.
	r = cli(t, nil, "queues", "-json", video, missing, "-management", "none", "-broker", b.URL).want(t, exitFailed)
	var rep queuesReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if rep.Source != "amqp" || len(rep.Queues) != 2 {
		t.Fatalf("report %+v", rep)
	}
	v := rep.Queues[0]
	if v.Name != video || v.Ready != 3 || v.Dead == nil || *v.Dead != 2 || v.Unacked != nil || v.PublishRate != nil {
		t.Errorf("video %+v", v)
	}
	if m := rep.Queues[1]; m.Name != missing || !strings.Contains(m.Error, "does not exist") {
		t.Errorf("missing %+v", m)
	}
	if !strings.Contains(r.stderr, missing) || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if n := b.Ready(missing); n != -1 {
		t.Error("inspecting a missing queue created it")
	}
	if n := b.Ready(video); n != 3 {
		t.Errorf("video holds %d after inspection, want 3", n)
	}
}

// A management API that does not answer: AMQP, and the header says why.
func TestQueuesFallBackToAMQP(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	video := workQueue(t, b, "video")
	closed := "http://" + closedPort(t)
	r := cli(t, nil, "queues", video, "-management", closed, "-broker", b.URL).want(t, exitOK)
	first := lines(r.stdout)[0]
	if !strings.HasPrefix(first, "source: AMQP passive declares") || !strings.Contains(first, closed) || !strings.Contains(first, "refused") {
		t.Errorf("source line %q", first)
	}
	row(t, r.stdout, video)

	// Without names there is nothing AMQP can show.
	r = cli(t, nil, "queues", "-management", closed, "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, "did not answer") || !strings.Contains(r.stderr, "rabbitmq-plugins enable rabbitmq_management") ||
		!strings.Contains(r.stderr, "warren queues video audio") || r.stdout != "" {
		t.Errorf("stdout %q stderr:\n%s", r.stdout, r.stderr)
	}
	// -management none and no names cannot work anywhere: a usage error.
	r = cli(t, nil, "queues", "-management", "none", "-broker", b.URL).want(t, exitUsage)
	if !strings.Contains(r.stderr, "name the queues") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// Without -management the API is looked for on the broker's host. Where
// the plugin is off (the default here) the passive declares answer; where
// it is on, the API does. Either way the output says which, and the counts
// are the broker's.
func TestQueuesDefaultSource(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	video := workQueue(t, b, "video")
	publishN(b, video, 3)
	publishN(b, video+".dead", 1)
	var rep queuesReport
	brokertest.Eventually(t, 20*time.Second, func() bool {
		r := cli(t, nil, "queues", "-json", video, "-broker", b.URL).want(t, exitOK)
		rep = queuesReport{}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		// The management API's counts lag by up to its statistics interval.
		if len(rep.Queues) == 1 && rep.Queues[0].Ready == 3 {
			return true
		}
		time.Sleep(250 * time.Millisecond)
		return false
	}, "queue %s never showed 3 ready", video)
	q := rep.Queues[0]
	if q.Name != video || q.Dead == nil || *q.Dead != 1 || q.Consumers != 0 {
		t.Errorf("row %+v", q)
	}
	bu, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	wantMgmt := "http://" + bu.Hostname() + ":15672"
	switch rep.Source {
	case sourceAMQP:
		if rep.Management != wantMgmt || rep.ManagementError == "" || q.Unacked != nil || q.PublishRate != nil {
			t.Errorf("report %+v, management URL want %s", rep, wantMgmt)
		}
		r := cli(t, nil, "queues", video, "-broker", b.URL).want(t, exitOK)
		if first := lines(r.stdout)[0]; !strings.HasPrefix(first, "source: AMQP passive declares, ready and consumers only; unacked counts and rates come from the management plugin, not reachable at "+wantMgmt+" (") {
			t.Errorf("source line %q", first)
		}
	case sourceManagement:
		if rep.Management != wantMgmt || q.Unacked == nil || q.PublishRate == nil {
			t.Errorf("report %+v", rep)
		}
	default:
		t.Errorf("source %q", rep.Source)
	}
	if n := b.Ready(video); n != 3 {
		t.Errorf("%s holds %d after inspection, want 3", video, n)
	}
}

// A queue the management API lists before it has its first statistics
// comes without counts, which are not zeros: they are read with a passive
// declare, and the output says so.
func TestQueuesManagementWithoutStatisticsYet(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	fresh, gone := workQueue(t, b, "fresh"), b.Queue("gone")
	publishN(b, fresh, 2)
	publishN(b, fresh+".dead", 5)
	body := `[{"name":"` + fresh + `"},{"name":"` + fresh + `.dead"},` +
		`{"name":"` + gone + `"},{"name":"` + gone + `.dead"}]`
	srv, _ := fakeManagement(t, "guest", "guest", "%2F", http.StatusOK, body)

	r := cli(t, nil, "queues", "-json", "-management", srv.URL, "-broker", b.URL).want(t, exitFailed)
	var rep queuesReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if rep.Source != sourceManagement || len(rep.Queues) != 2 {
		t.Fatalf("report %+v", rep)
	}
	f, g := rep.Queues[0], rep.Queues[1]
	if f.Name != fresh || f.Ready != 2 || f.Dead == nil || *f.Dead != 5 || f.CountsFrom != sourceAMQP || f.Unacked != nil || f.PublishRate != nil {
		t.Errorf("fresh %+v", f)
	}
	// Listed by the API, deleted before the passive declare.
	if g.Name != gone || !strings.Contains(g.Error, "does not exist") || !strings.Contains(r.stderr, gone) {
		t.Errorf("gone %+v, stderr:\n%s", g, r.stderr)
	}

	r = cli(t, nil, "queues", fresh, "-management", srv.URL, "-broker", b.URL).want(t, exitOK)
	if got := strings.Join(row(t, r.stdout, fresh), " "); got != fresh+" 2 - 0 5 - -" {
		t.Errorf("row %q", got)
	}
	if !strings.Contains(r.stdout, "ready and consumers of "+fresh+" from passive declares") {
		t.Errorf("output does not say where the counts come from:\n%s", r.stdout)
	}
	if b.Ready(gone) != -1 {
		t.Error("inspection created a queue")
	}
}

// fakeManagement mimics GET /api/queues/{vhost} of the management plugin.
func fakeManagement(t *testing.T, user, pass, vhostPath string, status int, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		u, p, ok := r.BasicAuth()
		if r.Method != http.MethodGet || r.URL.EscapedPath() != "/api/queues/"+vhostPath {
			http.NotFound(w, r)
			return
		}
		if !ok || u != user || p != pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !strings.Contains(r.URL.Query().Get("columns"), "messages_unacknowledged") {
			t.Errorf("columns %q", r.URL.Query().Get("columns"))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

const mgmtQueues = `[
 {"name":"video","messages_ready":5,"messages_unacknowledged":2,"consumers":3,
  "message_stats":{"publish_details":{"rate":4.25},"deliver_get_details":{"rate":3.5}}},
 {"name":"video.dead","messages_ready":4,"messages_unacknowledged":0,"consumers":0},
 {"name":"audio","messages_ready":1,"messages_unacknowledged":0,"consumers":0},
 {"name":"billing","messages_ready":0,"messages_unacknowledged":0,"consumers":1,"message_stats":{}},
 {"name":"billing.dead","messages_ready":0,"messages_unacknowledged":0,"consumers":0},
 {"name":"warren.delay.3","messages_ready":7,"messages_unacknowledged":0,"consumers":0},
 {"name":"warren.delay.3.dead","messages_ready":0,"messages_unacknowledged":0,"consumers":0},
 {"name":"orphan.dead","messages_ready":9,"messages_unacknowledged":0,"consumers":0}
]`

func TestQueuesManagement(t *testing.T) {
	t.Parallel()
	const password = "mgmt-pa55-x"
	srv, _ := fakeManagement(t, "ops", password, "%2F", http.StatusOK, mgmtQueues)
	// The broker itself is never dialled: everything comes from the API.
	brokerURL := "amqp://ops:" + password + "@" + closedPort(t) + "/"

	r := cli(t, nil, "queues", "-management", srv.URL, "-broker", brokerURL).want(t, exitOK)
	if l := lines(r.stdout); l[0] != "source: management API at "+srv.URL+" (vhost /)" || len(l) != 4 {
		t.Fatalf("output:\n%s", r.stdout)
	}
	if got := strings.Join(row(t, r.stdout, "video"), " "); got != "video 5 2 3 4 4.2 3.5" {
		t.Errorf("video row %q", got)
	}
	if got := strings.Join(row(t, r.stdout, "billing"), " "); got != "billing 0 0 1 0 0.0 0.0" {
		t.Errorf("billing row %q", got)
	}
	for _, not := range []string{"audio", "warren.delay.3", "orphan.dead", "video.dead"} {
		for _, l := range lines(r.stdout) {
			if strings.HasPrefix(l, not+" ") {
				t.Errorf("%s listed without -all", not)
			}
		}
	}
	if strings.Contains(r.stdout+r.stderr, password) {
		t.Error("the password is in the output")
	}

	// -all: every queue, sorted.
	r = cli(t, nil, "queues", "-all", "-management", srv.URL, "-broker", brokerURL).want(t, exitOK)
	var names []string
	for _, l := range lines(r.stdout)[2:] {
		names = append(names, strings.Fields(l)[0])
	}
	if got := strings.Join(names, " "); got != "audio billing billing.dead orphan.dead video video.dead warren.delay.3 warren.delay.3.dead" {
		t.Errorf("-all lists %s", got)
	}

	// Named queues, JSON, one of them missing.
	r = cli(t, nil, "queues", "-json", "audio", "video", "gone", "-management", srv.URL, "-broker", brokerURL).want(t, exitFailed)
	var rep queuesReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if rep.Source != "management" || rep.Management != srv.URL || rep.Vhost != "/" || len(rep.Queues) != 3 {
		t.Fatalf("report %+v", rep)
	}
	a, v, g := rep.Queues[0], rep.Queues[1], rep.Queues[2]
	if a.Name != "audio" || a.Ready != 1 || a.Dead != nil || a.Unacked == nil || *a.Unacked != 0 {
		t.Errorf("audio %+v", a)
	}
	if v.Unacked == nil || *v.Unacked != 2 || v.Dead == nil || *v.Dead != 4 || v.PublishRate == nil || *v.PublishRate != 4.25 || *v.DeliverRate != 3.5 {
		t.Errorf("video %+v", v)
	}
	if g.Name != "gone" || !strings.Contains(g.Error, "does not exist") || !strings.Contains(r.stderr, `"gone" does not exist`) {
		t.Errorf("gone %+v, stderr %s", g, r.stderr)
	}
}

func TestQueuesManagementVhostAndEmpty(t *testing.T) {
	t.Parallel()
	srv, calls := fakeManagement(t, "guest", "guest", "prod", http.StatusOK, `[]`)
	r := cli(t, nil, "queues", "-json", "-management", srv.URL, "-broker", "amqp://127.0.0.1:1/prod").want(t, exitOK)
	var rep queuesReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Source != "management" || rep.Vhost != "prod" || rep.Queues == nil || len(rep.Queues) != 0 || calls.Load() != 1 {
		t.Errorf("report %+v, %d calls", rep, calls.Load())
	}
	r = cli(t, nil, "queues", "-management", srv.URL, "-broker", "amqp://127.0.0.1:1/prod").want(t, exitOK)
	if !strings.Contains(r.stdout, "no warren work queues") {
		t.Errorf("output:\n%s", r.stdout)
	}
}

// A management API that answers with an error (here: credentials it does
// not take) is not used: passive declares on the real broker are.
func TestQueuesManagementRefusesFallsBack(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	video := workQueue(t, b, "video")
	publishN(b, video, 1)
	srv, _ := fakeManagement(t, "someone", "else", "%2F", http.StatusOK, `[]`)
	r := cli(t, nil, "queues", "-json", video, "-management", srv.URL, "-broker", b.URL).want(t, exitOK)
	var rep queuesReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Source != "amqp" || !strings.Contains(rep.ManagementError, "401") || len(rep.Queues) != 1 || rep.Queues[0].Ready != 1 {
		t.Errorf("report %+v", rep)
	}
}
