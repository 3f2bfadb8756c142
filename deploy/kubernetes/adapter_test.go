package kubernetes_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// adapterValues are the Helm values of prometheus-adapter that
// prometheus-adapter-values.yaml sets (chart prometheus-community/
// prometheus-adapter; rule fields from its docs/config.md).
type adapterValues struct {
	Prometheus struct {
		URL  string `json:"url"`
		Port int    `json:"port"`
		Path string `json:"path,omitempty"`
	} `json:"prometheus"`
	Rules struct {
		Default  *bool         `json:"default,omitempty"`
		External []adapterRule `json:"external"`
	} `json:"rules"`
}

type adapterRule struct {
	SeriesQuery   string           `json:"seriesQuery"`
	SeriesFilters []map[string]any `json:"seriesFilters,omitempty"`
	Resources     struct {
		Overrides map[string]struct {
			Resource string `json:"resource"`
		} `json:"overrides,omitempty"`
		Template string `json:"template,omitempty"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

// TestPrometheusAdapterRules checks the prometheus-adapter values against
// package metrics and the HPA, and their queries with promtool when it is
// installed.
func TestPrometheusAdapterRules(t *testing.T) {
	t.Parallel()
	const valuesFile = "overlays/hpa/prometheus-adapter-values.yaml"
	data, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var values adapterValues
	if err := yaml.UnmarshalStrict(data, &values); err != nil {
		t.Fatalf("%s: %v", valuesFile, err)
	}
	if len(values.Rules.External) == 0 {
		t.Fatalf("%s: no rules.external", valuesFile)
	}
	f := loadFacts(t)
	served := map[string]bool{}
	var queries []string
	var demandQuery string
	for i, r := range values.Rules.External {
		where := fmt.Sprintf("%s rule %d", valuesFile, i)
		m := regexp.MustCompile(`^(\w+)\{`).FindStringSubmatch(r.SeriesQuery)
		if m == nil {
			t.Errorf("%s: seriesQuery %q: want name{labels}", where, r.SeriesQuery)
			continue
		}
		if !f.queueMetrics[m[1]] {
			t.Errorf("%s: seriesQuery on %s, no metric of package metrics labelled by queue alone", where, m[1])
		}
		if re, err := regexp.Compile(r.Name.Matches); err != nil || !re.MatchString(m[1]) {
			t.Errorf("%s: name.matches %q does not match %s", where, r.Name.Matches, m[1])
		}
		if r.Resources.Overrides["namespace"].Resource != "namespace" {
			t.Errorf("%s: want resources.overrides.namespace.resource: namespace, so an HPA sees its own namespace's workers only", where)
		}
		q := strings.Join(strings.Fields(r.MetricsQuery), " ")
		for _, s := range regexp.MustCompile(`(\w+)\{<<\.LabelMatchers>>\}`).FindAllStringSubmatch(q, -1) {
			if !f.queueMetrics[s[1]] {
				t.Errorf("%s: metricsQuery reads %s, no metric of package metrics labelled by queue alone", where, s[1])
			}
		}
		served[r.Name.As] = true
		if r.Name.As == demandMetric {
			demandQuery = q
			// Every worker reports the same broker-side ready count: max
			// over pods. Each counts its own running handlers: sum.
			for _, want := range []string{
				"max by (queue) (" + backlogMetric + "{<<.LabelMatchers>>})",
				"sum by (queue) (" + inFlightMetric + "{<<.LabelMatchers>>})",
			} {
				if !strings.Contains(q, want) {
					t.Errorf("%s: metricsQuery %q: want %s in it", where, q, want)
				}
			}
			for _, wrong := range []string{"sum by (queue) (" + backlogMetric, "max by (queue) (" + inFlightMetric} {
				if strings.Contains(q, wrong) {
					t.Errorf("%s: metricsQuery %q: %s aggregates the wrong way (max of the broker's count, sum of the pods' handlers)", where, q, wrong)
				}
			}
		}
		queries = append(queries, strings.ReplaceAll(q, "<<.LabelMatchers>>", `namespace="warren",queue="video"`), r.SeriesQuery)
	}
	if !served[demandMetric] {
		t.Errorf("%s: no rule serves %s", valuesFile, demandMetric)
	}
	hpa := render(t, "overlays/hpa")
	if len(hpa.hpas) == 0 {
		t.Fatal("overlays/hpa has no HorizontalPodAutoscaler")
	}
	for _, h := range hpa.hpas {
		for _, m := range h.Spec.Metrics {
			if m.External != nil && !served[m.External.Metric.Name] {
				t.Errorf("HorizontalPodAutoscaler %s uses %s, which %s does not serve", h.Name, m.External.Metric.Name, valuesFile)
			}
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		// In CI scripts/test.sh installs it: there a check that cannot run
		// must not pass.
		msg := "promtool not on PATH: the adapter's PromQL is not parsed (Debian: apt-get install --no-install-recommends prometheus)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: prometheus_adapter\n    rules:\n")
	for i, q := range queries {
		fmt.Fprintf(&b, "      - record: adapter:query_%d\n        expr: %s\n", i, strconv.Quote(q))
	}
	p := filepath.Join(t.TempDir(), "adapter-queries.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, promtool, "check", "rules", p).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, b.String())
	}
	if demandQuery == "" {
		return
	}

	// Evaluate the demand query on made-up series: two pods report the same
	// ready count and their own running handlers; a queue whose workers
	// have run nothing yet has no in-flight series.
	q := strings.ReplaceAll(demandQuery, "<<.LabelMatchers>>", `namespace="warren",queue=~"video|audio"`)
	test := fmt.Sprintf(`rule_files: []
tests:
  - interval: 1m
    input_series:
      - {series: 'warren_queue_messages{namespace="warren",queue="video",pod="a"}', values: '5 5'}
      - {series: 'warren_queue_messages{namespace="warren",queue="video",pod="b"}', values: '5 5'}
      - {series: 'warren_tasks_in_flight{namespace="warren",queue="video",pod="a"}', values: '8 8'}
      - {series: 'warren_tasks_in_flight{namespace="warren",queue="video",pod="b"}', values: '3 3'}
      - {series: 'warren_queue_messages{namespace="warren",queue="audio",pod="c"}', values: '7 7'}
      - {series: 'warren_tasks_in_flight{namespace="other",queue="video",pod="x"}', values: '100 100'}
    promql_expr_test:
      - expr: %s
        eval_time: 1m
        exp_samples:
          - {labels: '{queue="video"}', value: 16}
          - {labels: '{queue="audio"}', value: 7}
`, strconv.Quote(q))
	tp := filepath.Join(t.TempDir(), "demand_test.yaml")
	if err := os.WriteFile(tp, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, promtool, "test", "rules", tp).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %s does not add the ready count (max over pods) to the running handlers (sum over pods): %v\n%s", demandMetric, err, out)
	}
}
