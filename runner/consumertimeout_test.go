package runner_test

import (
	"io"
	"testing"
	"time"

	"github.com/warrenq/warren/runner"
)

func TestParseFlagsConsumerTimeout(t *testing.T) {
	o, err := runner.ParseFlags([]string{"-queues", "video"}, io.Discard)
	if err != nil || o.ConsumerTimeout != 0 {
		t.Fatalf("default: %v, %v; want 0 (unknown)", o.ConsumerTimeout, err)
	}
	o, err = runner.ParseFlags([]string{"-queues", "video", "-consumer-timeout", "45m"}, io.Discard)
	if err != nil || o.ConsumerTimeout != 45*time.Minute {
		t.Fatalf("-consumer-timeout 45m: %v, %v", o.ConsumerTimeout, err)
	}
}
