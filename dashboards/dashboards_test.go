// Package dashboards_test checks the Grafana dashboard and the Prometheus
// alerting rules of this directory against what warren really exports: the
// metric names and labels they query must appear in a live worker's and
// producer's registries, every panel must follow the dashboard's variables,
// and every alert must have a summary and a runbook section in README.md.
package dashboards_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/internal/scheduler"
	"github.com/warrenq/warren/internal/tcpproxy"
	"github.com/warrenq/warren/metrics"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/producer"
	"github.com/warrenq/warren/retry"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
	"github.com/warrenq/warren/warrentest"
	"github.com/warrenq/warren/worker"
)

const (
	dashboardFile = "warren.json"
	alertsFile    = "alerts.yaml"
	alertTests    = "alerts_test.yml"
	readmeFile    = "README.md"
	runbookBase   = "https://github.com/warrenq/warren/blob/main/dashboards/README.md#"
	datasourceVar = "${datasource}"
)

// The alerts the issue asks for; more may be added.
var wantAlerts = []string{
	"WarrenTaskFailureRatioHigh",
	"WarrenDeadLettersGrowing",
	"WarrenBacklogGrowing",
	"WarrenQueueNoConsumer",
	"WarrenReconnectStorm",
	"WarrenSchedulerNoLeader",
}

// ---- the dashboard ----

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
		Expr       string         `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// query is the variable's query, written as a string or as Grafana 10's
// {"query": ...} object.
func (v variable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

// expr is one PromQL expression and where it comes from, for messages.
type expr struct {
	where string
	text  string
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// graphPanels returns every panel but rows, including those inside
// collapsed rows.
func graphPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, graphPanels(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// dashboardExprs returns the panels' expressions and the query variables'
// queries.
func dashboardExprs(d *dashboard) []expr {
	var out []expr
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, expr{where: "variable " + v.Name, text: v.query()})
		}
	}
	for _, p := range graphPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, expr{where: fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), text: tg.Expr})
		}
	}
	return out
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed for a stable import", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: Grafana 10 and 11 write 38 and up", d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || v.query() != "prometheus" {
		t.Errorf("variable datasource = %+v, want type datasource, query prometheus", v)
	}
	for _, name := range []string{"queue", "task"} {
		v, ok := vars[name]
		if !ok {
			t.Errorf("no variable %s", name)
			continue
		}
		if v.Type != "query" || !v.Multi || !v.IncludeAll {
			t.Errorf("variable %s: type %q multi %v includeAll %v, want a multi-value query variable with All", name, v.Type, v.Multi, v.IncludeAll)
		}
		if v.Datasource == nil || v.Datasource.UID != datasourceVar {
			t.Errorf("variable %s: datasource %+v, want uid %s", name, v.Datasource, datasourceVar)
		}
		q := v.query()
		if !strings.HasPrefix(q, "label_values(warren_tasks_received_total") || !strings.HasSuffix(q, ", "+name+")") {
			t.Errorf("variable %s: query %q, want label_values(warren_tasks_received_total..., %s)", name, q, name)
		}
	}

	ids := map[int]string{}
	var exprs []string
	for _, p := range graphPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Datasource == nil || p.Datasource.UID != datasourceVar || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want {prometheus %s}", p.Title, p.Datasource, datasourceVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && tg.Datasource.UID != datasourceVar {
				t.Errorf("panel %q target %s: datasource %+v, want %s", p.Title, tg.RefID, tg.Datasource, datasourceVar)
			}
			if len(metricNames(tg.Expr)) == 0 {
				t.Errorf("panel %q target %s: %q queries no warren metric", p.Title, tg.RefID, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}

	// p50, p95 and p99 of both histograms.
	for _, h := range []string{"warren_task_duration_seconds", "warren_task_wait_seconds"} {
		for _, q := range []string{"0.50", "0.95", "0.99"} {
			if !slices.ContainsFunc(exprs, func(e string) bool {
				return strings.Contains(e, "histogram_quantile("+q+",") && strings.Contains(e, h+"_bucket")
			}) {
				t.Errorf("no panel shows the %s quantile of %s", q, h)
			}
		}
	}
}

// ---- the alerting rules ----

// rule is one rule of alerts.yaml as the line reader below sees it.
type rule struct {
	line        int
	alert       string
	expr        string
	forDur      string
	labels      map[string]string
	annotations map[string]string
}

// parseRules reads a Prometheus rules file line by line, without a YAML
// library: it knows the shape of a rules file (rules are list items with
// alert, expr, for, labels and annotations keys) and block scalars
// (`expr: |`) by indentation, which is all alerts.yaml uses.
func parseRules(t *testing.T, path string) []*rule {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	indentOf := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	var rules []*rule
	var cur *rule
	section, sectionIndent := "", 0
	for i := 0; i < len(lines); i++ {
		raw := lines[i]
		text := strings.TrimSpace(raw)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		indent := indentOf(raw)
		if strings.HasPrefix(text, "- ") { // a list item: its key starts after the dash
			text = strings.TrimSpace(text[2:])
			indent += 2
		}
		key, val, ok := strings.Cut(text, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if section != "" && indent > sectionIndent {
			if cur != nil {
				m := cur.labels
				if section == "annotations" {
					m = cur.annotations
				}
				m[key] = unquoteYAML(t, val)
			}
			continue
		}
		section = ""
		switch key {
		case "alert", "record":
			cur = &rule{line: i + 1, labels: map[string]string{}, annotations: map[string]string{}}
			if key == "alert" {
				cur.alert = unquoteYAML(t, val)
				rules = append(rules, cur)
			}
		case "expr":
			if cur == nil {
				continue
			}
			if !strings.HasPrefix(val, "|") && !strings.HasPrefix(val, ">") {
				cur.expr = unquoteYAML(t, val)
				continue
			}
			// A block scalar: the lines indented deeper than the key.
			var block []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || indentOf(lines[i+1]) > indent) {
				i++
				block = append(block, strings.TrimSpace(lines[i]))
			}
			cur.expr = strings.TrimSpace(strings.Join(block, "\n"))
		case "for":
			if cur != nil {
				cur.forDur = unquoteYAML(t, val)
			}
		case "labels", "annotations":
			if val == "" {
				section, sectionIndent = key, indent
			}
		}
	}
	return rules
}

// unquoteYAML returns a plain, single- or double-quoted YAML scalar's value.
func unquoteYAML(t *testing.T, s string) string {
	t.Helper()
	switch {
	case len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"':
		u, err := strconv.Unquote(s)
		if err != nil {
			t.Errorf("%s: bad double-quoted string %s: %v", alertsFile, s, err)
		}
		return u
	case len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'':
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	}
	return s
}

// readmeAnchors returns the GitHub anchors of README.md's headings, outside
// code blocks.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		anchors[githubAnchor(heading)] = true
	}
	return anchors
}

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	rules := parseRules(t, alertsFile)
	anchors := readmeAnchors(t)
	seen := map[string]bool{}
	for _, r := range rules {
		at := fmt.Sprintf("%s:%d %s", alertsFile, r.line, r.alert)
		if seen[r.alert] {
			t.Errorf("%s: alert name used twice", at)
		}
		seen[r.alert] = true
		if len(metricNames(r.expr)) == 0 {
			t.Errorf("%s: expr %q queries no warren metric", at, r.expr)
		}
		if r.forDur == "" {
			t.Errorf("%s: no for:", at)
		}
		if s := r.labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", at, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.annotations[a] == "" {
				t.Errorf("%s: no %s annotation", at, a)
			}
		}
		anchor := strings.ToLower(r.alert)
		if got, want := r.annotations["runbook_url"], runbookBase+anchor; got != want {
			t.Errorf("%s: runbook_url %q, want %q", at, got, want)
		}
		if !anchors[anchor] {
			t.Errorf("%s: %s has no section headed %q (anchor #%s)", at, readmeFile, r.alert, anchor)
		}
	}
	for _, name := range wantAlerts {
		if !seen[name] {
			t.Errorf("%s: no alert %s", alertsFile, name)
		}
	}
}

func alertExprs(t *testing.T) []expr {
	t.Helper()
	var out []expr
	for _, r := range parseRules(t, alertsFile) {
		out = append(out, expr{where: "alert " + r.alert, text: r.expr})
	}
	return out
}

// ---- promtool ----

// grafanaVar matches the dashboard variables and Grafana's built-in ones.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// substitute replaces Grafana variables in a dashboard expression: built-in
// intervals by durations, $queue and $task by what the All option sends
// (or by queue for $queue when queue is not empty).
func substitute(t *testing.T, e expr, queue string) string {
	t.Helper()
	return substituteWith(t, e, queue, "5m", "1m")
}

// substituteWith is substitute with $__rate_interval and $__range given
// as rate, and $__interval as step.
func substituteWith(t *testing.T, e expr, queue, rate, step string) string {
	t.Helper()
	return grafanaVar.ReplaceAllStringFunc(e.text, func(m string) string {
		switch name := grafanaVar.FindStringSubmatch(m)[1]; name {
		case "__rate_interval", "__range":
			return rate
		case "__interval":
			return step
		case "queue":
			if queue != "" {
				// As Grafana writes one selected value into a regex
				// matcher: regex-escaped, then escaped for a PromQL string.
				return strings.ReplaceAll(regexp.QuoteMeta(queue), `\`, `\\`)
			}
			return ".*"
		case "task":
			return ".*"
		default:
			t.Errorf("%s: unknown variable %s in %q", e.where, m, e.text)
			return m
		}
	})
}

func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool")
	run := func(t *testing.T, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Run("check alerts", func(t *testing.T) {
		t.Parallel()
		run(t, "check", "rules", alertsFile)
	})
	t.Run("test alerts", func(t *testing.T) {
		t.Parallel()
		run(t, "test", "rules", alertTests)
	})
	t.Run("dashboard queries", func(t *testing.T) {
		t.Parallel()
		// promtool cannot parse a bare query offline, but it parses the
		// rules of a rules file: one recording rule per panel query.
		var b strings.Builder
		b.WriteString("groups:\n  - name: warren_dashboard\n    rules:\n")
		for i, e := range dashboardExprs(loadDashboard(t)) {
			if strings.HasPrefix(e.text, "label_values(") {
				continue // a Grafana function, not PromQL
			}
			fmt.Fprintf(&b, "      # %s\n      - record: warren_dashboard:query_%d\n        expr: |\n", e.where, i)
			for _, l := range strings.Split(substitute(t, e, ""), "\n") {
				b.WriteString("          " + l + "\n")
			}
		}
		path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "check", "rules", path)
	})
}

// ---- against a live worker and producer ----

// metricRef matches warren metric names; histogram series suffixes are
// mapped to their family by family.
var metricRef = regexp.MustCompile(`warren_[a-z_]+`)

func family(series string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(series, s); ok {
			return f
		}
	}
	return series
}

// metricNames returns the metric families e refers to.
func metricNames(e string) []string {
	var out []string
	for _, m := range metricRef.FindAllString(e, -1) {
		if f := family(m); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

var (
	selectorRE = regexp.MustCompile(`(warren_[a-z_]+)\s*\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
)

type matcher struct{ label, op, value string }

type selector struct {
	series   string // as written, e.g. warren_task_wait_seconds_bucket
	matchers []matcher
}

// selectors returns the label selectors of e's warren metrics; the values
// are PromQL-unquoted.
func selectors(t *testing.T, where, e string) []selector {
	t.Helper()
	var out []selector
	for _, s := range selectorRE.FindAllStringSubmatch(e, -1) {
		sel := selector{series: s[1]}
		for _, m := range matcherRE.FindAllStringSubmatch(s[2], -1) {
			v, err := strconv.Unquote(`"` + m[3] + `"`)
			if err != nil {
				t.Errorf("%s: bad string %q: %v", where, m[3], err)
			}
			sel.matchers = append(sel.matchers, matcher{label: m[1], op: m[2], value: v})
		}
		out = append(out, sel)
	}
	return out
}

type pay struct {
	N int `json:"n"`
}

// gather merges the families of regs by name.
func gather(t *testing.T, regs ...*prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	out := map[string]*dto.MetricFamily{}
	for _, r := range regs {
		fams, err := r.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if have, ok := out[f.GetName()]; ok {
				have.Metric = append(have.Metric, f.Metric...)
				continue
			}
			out[f.GetName()] = f
		}
	}
	return out
}

// value sums the counter or gauge values of family name over the series
// whose labels include want; -1 if there are none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	sum, found := 0.0, false
next:
	for _, m := range fams[name].GetMetric() {
		for k, v := range want {
			if !slices.ContainsFunc(m.Label, func(lp *dto.LabelPair) bool { return lp.GetName() == k && lp.GetValue() == v }) {
				continue next
			}
		}
		found = true
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	if !found {
		return -1
	}
	return sum
}

// labelNames returns the label names used by family f's series.
func labelNames(f *dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			out[lp.GetName()] = true
		}
	}
	return out
}

// TestReferencedMetricsAreExported runs a worker and a producer against
// the broker, drives every outcome the dashboard and rules look at (success,
// retry, dead letter, expiry, a failed publish, a reconnect, queue depth),
// then checks every metric, label and queue matcher they use against the
// live registries.
//
// Every family appears naturally: warren_stale_acks_total is a plain
// counter, exported at 0 from the start, so no family needs an allowlist.
func TestReferencedMetricsAreExported(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	q := b.Queue("dash")
	dead := routing.DeadQueue(q)

	px, err := tcpproxy.Start(brokertest.Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })

	okTask := task.Define[pay]("dash_ok")
	flaky := task.Define[pay]("dash_flaky", task.WithBackoff(time.Second, time.Second))
	bad := task.Define[pay]("dash_bad")
	var flakyFirstRuns atomic.Int32
	reg := task.NewRegistry()
	reg.MustRegister(
		okTask.Handler(func(context.Context, pay) error { return nil }),
		flaky.Handler(func(ctx context.Context, _ pay) error {
			if m, _ := task.FromContext(ctx); m.Retries == 0 {
				flakyFirstRuns.Add(1)
				return errors.New("first run fails")
			}
			return nil
		}),
		bad.Handler(func(context.Context, pay) error { return retry.Permanent(errors.New("never")) }),
	)

	// A periodic task, into a queue of its own, for the schedule metrics.
	tickQ, tick := b.Queue("dash-tick"), scheduled(t, b, "dash-tick")
	reg.MustRegister(task.Define[pay]("dash_tick").Handler(func(context.Context, pay) error { return nil }))
	tick.Queue = tickQ

	wreg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{
		Conn:               conn.Config{URL: brokertest.WithHost(b.URL, px.Addr()), Metrics: wreg},
		Queues:             []string{q, tickQ},
		Registry:           reg,
		QueueDepthInterval: 200 * time.Millisecond,
		ShutdownTimeout:    5 * time.Second,
		Schedules:          []*schedule.Schedule{tick},
		SchedulerGroup:     schedulerGroup(b, "group"),
	})
	if err != nil {
		t.Fatal(err)
	}
	warrentest.Run(t, w)

	// A reconnect: cut the worker's connection and wait until it consumes
	// again.
	px.Cut()
	brokertest.Eventually(t, 20*time.Second, func() bool {
		return value(gather(t, wreg), "warren_broker_reconnects_total", map[string]string{"role": "worker"}) >= 1 && w.Ready()
	}, "worker did not reconnect after a cut")

	preg := prometheus.NewRegistry()
	p := warrentest.NewProducer(t, producer.Config{Conn: conn.Config{URL: b.URL, Metrics: preg}, Routes: routing.NewTable().SetDefault(routing.ToQueue(q))})
	ectx, ecancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ecancel()
	if _, err := p.EnqueueBatch(ectx, []task.Task{okTask.New(pay{1}), flaky.New(pay{2}), bad.New(pay{3})}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(ectx, okTask.New(pay{4}), producer.WithDeadline(time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	// A publish error: no queue of that name, so the broker returns it.
	if _, err := p.Enqueue(ectx, okTask.New(pay{5}), producer.WithQueue(b.Queue("nowhere"))); !errors.Is(err, producer.ErrUnroutable) {
		t.Fatalf("enqueue to a missing queue: %v, want ErrUnroutable", err)
	}

	processed := func(fams map[string]*dto.MetricFamily, o outcome.Outcome) float64 {
		return value(fams, "warren_tasks_processed_total", map[string]string{"queue": q, "outcome": string(o)})
	}
	var fams map[string]*dto.MetricFamily
	brokertest.Eventually(t, 30*time.Second, func() bool {
		fams = gather(t, wreg, preg)
		return processed(fams, outcome.Success) == 2 && processed(fams, outcome.Retry) == 1 &&
			processed(fams, outcome.Dead) == 1 && processed(fams, outcome.Expired) == 1 &&
			// The dead letter and the expired task, in <queue>.dead as the
			// dashboard and the rules expect its label value.
			value(fams, "warren_queue_messages", map[string]string{"queue": dead}) == 2 &&
			value(fams, "warren_queue_messages", map[string]string{"queue": q}) >= 0 &&
			// The periodic task fired, from this worker, the leader.
			value(fams, "warren_schedule_fires_total", map[string]string{"schedule": tick.Name}) >= 1 &&
			value(fams, "warren_schedule_next_fire_timestamp_seconds", map[string]string{"schedule": tick.Name}) > 0 &&
			value(fams, "warren_scheduler_leader", nil) == 1
	}, "outcomes, queue depth and the schedule's fires never reached their expected values")
	if n := flakyFirstRuns.Load(); n != 1 {
		t.Errorf("flaky task failed %d first runs, want 1", n)
	}
	if n := value(fams, "warren_publish_errors_total", map[string]string{"reason": metrics.ErrUnroutable}); n != 1 {
		t.Errorf("warren_publish_errors_total{reason=unroutable} = %v, want 1", n)
	}

	d := loadDashboard(t)
	dash := dashboardExprs(d)
	all := append(slices.Clone(dash), alertExprs(t)...)
	outcomes := outcome.Outcomes()

	// Every metric referenced exists, with the labels the queries use.
	referenced := map[string]bool{}
	for i, e := range all {
		inDash := i < len(dash)
		for _, name := range metricNames(e.text) {
			if fams[name] == nil {
				t.Errorf("%s: %s is not exported by a worker or producer (families: %v)", e.where, name, familyNames(fams))
			}
			if inDash {
				referenced[name] = true
			}
		}
		known := map[string]bool{"le": true, "instance": true, "job": true}
		for _, name := range metricNames(e.text) {
			for l := range labelNames(fams[name]) {
				known[l] = true
			}
		}
		for _, g := range groupingRE.FindAllStringSubmatch(e.text, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !known[l] {
					t.Errorf("%s: groups by %q, a label none of its metrics has", e.where, l)
				}
			}
		}
		for _, sel := range selectors(t, e.where, e.text) {
			f := fams[family(sel.series)]
			if f == nil {
				continue
			}
			labels := labelNames(f)
			if strings.HasSuffix(sel.series, "_bucket") {
				labels["le"] = true
			}
			for _, m := range sel.matchers {
				if !labels[m.label] {
					t.Errorf("%s: %s has no label %q", e.where, sel.series, m.label)
				}
				if m.label == "outcome" {
					for _, o := range strings.Split(m.value, "|") {
						if !slices.Contains(outcomes, outcome.Outcome(o)) {
							t.Errorf("%s: outcome %q is not one of %v", e.where, o, outcomes)
						}
					}
				}
			}
			// Work queues and their dead-letter queues share this gauge:
			// each query must say which it means.
			if f.GetName() == "warren_queue_messages" && !slices.ContainsFunc(sel.matchers, func(m matcher) bool {
				return m.label == "queue" && strings.Contains(m.value, "dead")
			}) {
				t.Errorf("%s: %s mixes work queues and <queue>.dead queues: add a queue matcher on \\.dead", e.where, sel.series)
			}
			// Dashboard queries follow $queue and $task wherever the
			// metric has those labels.
			if inDash && !strings.HasPrefix(e.where, "variable ") {
				for _, l := range []string{"queue", "task"} {
					if labels[l] && !slices.ContainsFunc(sel.matchers, func(m matcher) bool { return m.label == l && strings.Contains(m.value, "$"+l) }) {
						t.Errorf("%s: %s is not filtered by $%s", e.where, sel.series, l)
					}
				}
			}
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "warren_") && !referenced[name] {
			t.Errorf("%s is exported but no dashboard panel shows it", name)
		}
	}

	// Queue matchers, against the live label values: those naming the
	// dead-letter queues select <queue>.dead and not <queue>; the others
	// select <queue>. Dashboard queries are checked with one queue selected
	// and with All.
	checkQueue := func(where, e string) {
		for _, sel := range selectors(t, where, e) {
			for _, m := range sel.matchers {
				if m.label != "queue" || (m.op != "=~" && m.op != "!~") {
					continue
				}
				re, err := regexp.Compile("^(?:" + m.value + ")$")
				if err != nil {
					t.Errorf("%s: queue regex %q: %v", where, m.value, err)
					continue
				}
				switch {
				case strings.Contains(m.value, "dead"):
					if !re.MatchString(dead) || re.MatchString(q) {
						t.Errorf("%s: queue%s%q should match %q and not %q", where, m.op, m.value, dead, q)
					}
				case m.op == "=~" && !re.MatchString(q):
					t.Errorf("%s: queue=~%q does not match %q", where, m.value, q)
				}
			}
		}
	}
	for _, e := range dash {
		checkQueue(e.where+" (one queue)", substitute(t, e, q))
		checkQueue(e.where+" (All)", substitute(t, e, ""))
	}
	for _, e := range all[len(dash):] {
		checkQueue(e.where, e.text)
	}
}

func familyNames(fams map[string]*dto.MetricFamily) []string {
	var out []string
	for name := range fams {
		if strings.HasPrefix(name, "warren_") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// scheduled returns a schedule firing task dash_tick every second, named
// for t, whose election and progress entities the broker's cleanup
// deletes; the caller sets its Queue.
func scheduled(t *testing.T, b *brokertest.Broker, base string) *schedule.Schedule {
	t.Helper()
	name := strings.TrimSuffix(b.Queue(base), ".")
	b.Track(scheduler.Name(name))
	t.Cleanup(func() { _ = b.Channel().ExchangeDelete(scheduler.Name(name), false, false) })
	s, err := schedule.New(schedule.Entry{Name: name, Task: task.Task{Name: "dash_tick", Payload: pay{}}, Every: time.Second, Queue: "set-by-caller"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// schedulerGroup returns a scheduler group named for the test from base,
// whose election queue the broker's cleanup deletes.
func schedulerGroup(b *brokertest.Broker, base string) string {
	g := strings.TrimSuffix(b.Queue(base), ".")
	b.Track(scheduler.ElectionQueue + "." + g)
	return g
}
