package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/metrics"
)

func TestPublishErrorReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&conn.UnroutableError{Key: "q"}, metrics.ErrUnroutable},
		{fmt.Errorf("x: %w", conn.ErrNacked), metrics.ErrNacked},
		{&conn.InvalidError{Field: "body"}, metrics.ErrInvalid},
		{conn.ErrConnectionLost, metrics.ErrConnectionLost},
		{conn.ErrClosed, metrics.ErrConnectionLost},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), metrics.ErrTimeout},
		{context.Canceled, metrics.ErrTimeout},
		{errors.New("something else"), metrics.ErrOther},
	}
	for _, tc := range tests {
		if got := metrics.PublishErrorReason(tc.err); got != tc.want {
			t.Errorf("PublishErrorReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
