package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/warrenq/warren/task"
)

// A schedule file lists entries under a top-level "schedules" key:
//
//	schedules:
//	  - name: nightly-report        # required, unique
//	    task: reports.nightly       # required: the task name
//	    cron: "0 2 * * *"           # or: every: 5m
//	    timezone: Europe/Paris      # cron only; default UTC
//	    payload: {kind: daily}      # any value, sent as the JSON payload; default null
//	    queue: reports              # optional
//	    expires: 1h                 # optional
//	    max_attempts: 3             # optional
//	    missed: run-late            # or skip; default run-late
//
// Field names are fixed: an unknown one is an error, as is a duplicate
// name, each reported with its line.
var fileFields = []string{"name", "task", "cron", "every", "timezone", "payload", "queue", "expires", "max_attempts", "missed"}

// ParseFile reads a schedule file and checks every entry in it. Its
// errors name the file and the line.
func ParseFile(path string) ([]*Schedule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedule file: %w", err)
	}
	return Parse(bytes.NewReader(data), path)
}

// Parse reads schedules in the file format from r; name stands for the
// file in errors.
func Parse(r io.Reader, name string) ([]*Schedule, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty: want a schedules list", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping with a schedules list", name, root.Line)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value != "schedules" {
			return nil, fmt.Errorf("%s:%d: unknown key %q: the file holds only schedules", name, k.Line, k.Value)
		}
		list = root.Content[i+1]
	}
	if list == nil {
		return nil, fmt.Errorf("%s: no schedules key", name)
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: schedules must be a list", name, list.Line)
	}
	var out []*Schedule
	seen := map[string]int{}
	for _, n := range list.Content {
		s, err := parseEntry(n)
		if err != nil {
			line := n.Line
			var le lineError
			if errors.As(err, &le) {
				line, err = le.line, le.err
			}
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if line, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("%s:%d: schedule %q: the name is used already, on line %d", name, n.Line, s.Name, line)
		}
		seen[s.Name] = n.Line
		out = append(out, s)
	}
	return out, nil
}

// lineError is an error on a line other than its entry's first.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// fileEntry is one entry as the file spells it.
type fileEntry struct {
	Name        string    `yaml:"name"`
	Task        string    `yaml:"task"`
	Cron        string    `yaml:"cron"`
	Every       string    `yaml:"every"`
	Timezone    string    `yaml:"timezone"`
	Payload     yaml.Node `yaml:"payload"`
	Queue       string    `yaml:"queue"`
	Expires     string    `yaml:"expires"`
	MaxAttempts int       `yaml:"max_attempts"`
	Missed      string    `yaml:"missed"`
}

func parseEntry(n *yaml.Node) (*Schedule, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("a schedule must be a mapping of its fields")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(fileFields, k.Value) {
			return nil, lineError{k.Line, fmt.Errorf("unknown field %q (fields: %s)", k.Value, strings.Join(fileFields, ", "))}
		}
	}
	var f fileEntry
	if err := n.Decode(&f); err != nil {
		return nil, err
	}
	e := Entry{Name: f.Name, Cron: f.Cron, Queue: f.Queue, MaxAttempts: f.MaxAttempts}
	named := func(err error) error {
		if f.Name == "" {
			return err
		}
		return fmt.Errorf("schedule %q: %w", f.Name, err)
	}
	var err error
	if f.Every != "" {
		if e.Every, err = time.ParseDuration(f.Every); err != nil {
			return nil, named(fmt.Errorf("every: %w", err))
		}
	}
	if f.Expires != "" {
		if e.Expiry, err = time.ParseDuration(f.Expires); err != nil {
			return nil, named(fmt.Errorf("expires: %w", err))
		}
	}
	if f.Timezone != "" {
		if e.Location, err = time.LoadLocation(f.Timezone); err != nil {
			return nil, named(fmt.Errorf("timezone: %w", err))
		}
	}
	switch f.Missed {
	case "", RunLate.String():
		e.Missed = RunLate
	case Skip.String():
		e.Missed = Skip
	default:
		return nil, named(fmt.Errorf("missed: %q is not %s or %s", f.Missed, RunLate, Skip))
	}
	payload := json.RawMessage("null")
	if f.Payload.Kind != 0 {
		var v any
		if err := f.Payload.Decode(&v); err != nil {
			return nil, named(fmt.Errorf("payload: %w", err))
		}
		if payload, err = json.Marshal(v); err != nil {
			return nil, named(fmt.Errorf("payload: not representable as JSON: %w", err))
		}
	}
	e.Task = task.Task{Name: f.Task, Payload: payload}
	return New(e)
}
