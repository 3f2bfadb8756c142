package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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

// A nil *Metrics (no registry) still calls the caller's own hook.
func TestCountReconnects(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	c := m.CountReconnects("producer", conn.Config{OnReconnect: func() { calls++ }})
	c.OnReconnect()
	var got dto.Metric
	if err := m.Reconnects.WithLabelValues("producer").Write(&got); err != nil {
		t.Fatal(err)
	}
	if n := got.GetCounter().GetValue(); n != 1 || calls != 1 {
		t.Errorf("counted %v, hook called %d times; want 1 and 1", n, calls)
	}
	var none *metrics.Metrics
	none.CountReconnects("worker", conn.Config{OnReconnect: func() { calls++ }}).OnReconnect()
	none.CountReconnects("worker", conn.Config{}).OnReconnect()
	if calls != 2 {
		t.Errorf("hook called %d times without metrics, want 2", calls)
	}
}
