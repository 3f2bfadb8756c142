package warren_test

import (
	"os"
	"strings"
	"testing"
)

// The README's first program is examples/quickstart/main.go, which its
// own test builds and runs against the broker: the two must not drift.
func TestREADMEProgramIsTheQuickstart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	start := strings.Index(s, "## A first program")
	if start < 0 {
		t.Fatal(`README.md has no "## A first program" section`)
	}
	open := strings.Index(s[start:], "```go\n")
	if open < 0 {
		t.Fatal("the first program's section has no ```go block")
	}
	body := s[start+open+len("```go\n"):]
	end := strings.Index(body, "```\n")
	if end < 0 {
		t.Fatal("the first program's ```go block is not closed")
	}
	if got := body[:end]; got != string(want) {
		t.Errorf("README.md's first program differs from examples/quickstart/main.go; copy the file into the README.\nREADME:\n%s", got)
	}
}
