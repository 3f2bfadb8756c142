package schedule_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/schedule"
)

const goodFile = `# two schedules
schedules:
  - name: nightly-report
    task: reports.nightly
    cron: "30 2 * * *"
    timezone: Europe/Paris
    payload: {kind: daily, n: 3, tags: [a, b]}
    queue: reports
    expires: 1h
    max_attempts: 3
  - name: heartbeat
    task: ops.heartbeat
    every: 10s
    missed: skip
`

func TestParseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(path, []byte(goodFile), 0o644); err != nil {
		t.Fatal(err)
	}
	ss, err := schedule.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 {
		t.Fatalf("got %d schedules, want 2", len(ss))
	}
	r := ss[0]
	if r.Name != "nightly-report" || r.Task.Name != "reports.nightly" || r.Cron != "30 2 * * *" ||
		r.Location.String() != "Europe/Paris" || r.Queue != "reports" || r.Expiry != time.Hour ||
		r.MaxAttempts != 3 || r.Missed != schedule.RunLate {
		t.Errorf("first schedule read as %+v", r.Entry)
	}
	body, err := json.Marshal(r.Task.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != `{"kind":"daily","n":3,"tags":["a","b"]}` {
		t.Errorf("payload encodes as %s", body)
	}
	h := ss[1]
	if h.Every != 10*time.Second || h.Missed != schedule.Skip || h.Cron != "" {
		t.Errorf("second schedule read as %+v", h.Entry)
	}
	if body, _ := json.Marshal(h.Task.Payload); string(body) != "null" {
		t.Errorf("a schedule without payload sends %s, want null", body)
	}
}

func TestParseRefuses(t *testing.T) {
	entry := func(fields string) string {
		return "schedules:\n  - name: a\n    task: t\n" + fields
	}
	cases := []struct {
		name, file, want string
	}{
		{"empty", "", "f.yaml: empty"},
		{"not a mapping", "- a\n", "f.yaml:1: want a mapping"},
		{"unknown top key", "jobs: []\n", `f.yaml:1: unknown key "jobs"`},
		{"not a list", "schedules: {}\n", "f.yaml:1: schedules must be a list"},
		{"unknown field", entry("    cron: '* * * * *'\n    queues: x\n"), `f.yaml:5: unknown field "queues"`},
		{"bad cron", entry("    cron: '0 25 * * *'\n"), `f.yaml:2: schedule "a": cron "0 25 * * *": end of range (25) above maximum (23)`},
		{"bad time zone", entry("    cron: '* * * * *'\n    timezone: Mars/Olympus\n"), `f.yaml:2: schedule "a": timezone: unknown time zone Mars/Olympus`},
		{"bad interval", entry("    every: often\n"), `schedule "a": every: time: invalid duration`},
		{"bad policy", entry("    every: 1m\n    missed: never\n"), `missed: "never" is not run-late or skip`},
		{"no task", "schedules:\n  - name: a\n    every: 1m\n", `f.yaml:2: schedule "a": no task name`},
		{"duplicate name", entry("    every: 1m\n") + "  - name: a\n    task: t\n    every: 2m\n", `f.yaml:5: schedule "a": the name is used already, on line 2`},
		{"syntax", "schedules:\n  - name: [\n", "f.yaml: yaml: line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := schedule.Parse(strings.NewReader(c.file), "f.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse = %v, want an error with %q", err, c.want)
			}
		})
	}
}
