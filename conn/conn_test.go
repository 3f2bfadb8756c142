package conn_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/warrenq/warren/conn"
)

func TestWithDefaults(t *testing.T) {
	got := conn.Config{}.WithDefaults()
	if got.URL != conn.DefaultURL || got.Heartbeat != conn.DefaultHeartbeat || got.DialTimeout != conn.DefaultDialTimeout || got.Logger == nil {
		t.Errorf("zero Config with defaults = %+v", got)
	}
	log := zap.NewExample()
	set := conn.Config{URL: "amqps://h/", Heartbeat: time.Second, DialTimeout: 2 * time.Second, Logger: log}
	if got := set.WithDefaults(); got.URL != set.URL || got.Heartbeat != set.Heartbeat || got.DialTimeout != set.DialTimeout || got.Logger != log {
		t.Errorf("set fields changed: %+v", got)
	}
}

func TestErrorsUnwrapToTheirSentinels(t *testing.T) {
	un := fmt.Errorf("enqueue: %w", &conn.UnroutableError{Exchange: "", Key: "video", Reply: "NO_ROUTE"})
	if !errors.Is(un, conn.ErrUnroutable) {
		t.Errorf("%v is not ErrUnroutable", un)
	}
	if want := `enqueue: unroutable: no queue bound to exchange (default exchange) with routing key "video" (NO_ROUTE)`; un.Error() != want {
		t.Errorf("got %q, want %q", un.Error(), want)
	}
	inv := fmt.Errorf("enqueue: %w", &conn.InvalidError{Field: "message id", Size: 300, Limit: 255, Rule: "an AMQP short string"})
	if !errors.Is(inv, conn.ErrInvalid) {
		t.Errorf("%v is not ErrInvalid", inv)
	}
}
