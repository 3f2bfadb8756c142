package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
)

// The README's program, built and run as a reader would: it enqueues, its
// worker runs the task, and Ctrl-C stops it with exit code 0.
func TestQuickstartRuns(t *testing.T) {
	url := brokertest.URL(t)
	// The queue's name is fixed, as in a reader's program; no other test
	// uses it.
	t.Cleanup(func() { brokertest.DeleteQueues("emails", "emails.dead") })
	bin := filepath.Join(t.TempDir(), "quickstart")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "WARREN_BROKER_URL="+url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// stop kills the program and returns its stderr, which is safe to
	// read only once the process is gone.
	stop := func() string {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return stderr.String()
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen []string
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the program ended before running its task; stdout %q, stderr:\n%s", seen, stop())
			}
			seen = append(seen, l)
			if l == "sending hi to ada@example.com" {
				break wait
			}
		case <-deadline:
			t.Fatalf("the task did not run within 30s; stdout %q, stderr:\n%s", seen, stop())
		}
	}
	if len(seen) < 2 || !strings.HasPrefix(seen[0], "enqueued ") {
		t.Errorf("first line %q, want the enqueued task's id", seen[0])
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines { // drain, so the program never blocks on stdout
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after Ctrl-C: %v, want exit code 0; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the program did not stop within 30s of Ctrl-C; stderr:\n%s", stderr.String())
	}
}
