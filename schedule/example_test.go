package schedule_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/warrenq/warren/schedule"
	"github.com/warrenq/warren/task"
)

type report struct {
	Kind string `json:"kind"`
}

var nightly = task.Define[report]("reports.nightly")

// A nightly report at 02:30 in Paris, and what a scheduler that was down
// from 01:00 to 09:00 UTC does about the missed fire.
func ExampleSchedule_Due() {
	paris, _ := time.LoadLocation("Europe/Paris")
	s, err := schedule.New(schedule.Entry{
		Name:     "nightly-report",
		Task:     nightly.New(report{Kind: "daily"}),
		Cron:     "30 2 * * *",
		Location: paris,
	})
	if err != nil {
		panic(err)
	}
	last := time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC) // 02:30 in Paris on 2 December
	fmt.Println("next:", s.Next(last).In(paris).Format(time.DateTime))

	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	at, ok, missed := s.Due(last, now, time.Minute)
	fmt.Println("due:", ok, at.In(paris).Format(time.DateTime), "missed:", missed)
	// Every scheduler gives this fire the same task id, which carries
	// the fire time as the task's enqueue time.
	id := s.FireID(at)
	enqueued, _ := task.IDTime(id)
	fmt.Println("same id:", id == s.FireID(at), "enqueued at:", enqueued.In(paris).Format(time.DateTime))
	// Output:
	// next: 2026-12-03 02:30:00
	// due: true 2026-12-03 02:30:00 missed: 0
	// same id: true enqueued at: 2026-12-03 02:30:00
}

// A schedule file, as the worker will read it with -schedules.
func ExampleParse() {
	ss, err := schedule.Parse(strings.NewReader(`
schedules:
  - name: heartbeat
    task: ops.heartbeat
    every: 30s
  - name: nightly-report
    task: reports.nightly
    cron: "30 2 * * *"
    timezone: Europe/Paris
    payload: {kind: daily}
`), "schedules.yaml")
	if err != nil {
		panic(err)
	}
	from := time.Date(2026, 12, 3, 10, 0, 10, 0, time.UTC)
	for _, s := range ss {
		fmt.Println(s.Name, s.Task.Name, s.Next(from).UTC().Format(time.RFC3339))
	}
	// Output:
	// heartbeat ops.heartbeat 2026-12-03T10:00:30Z
	// nightly-report reports.nightly 2026-12-04T01:30:00Z
}
