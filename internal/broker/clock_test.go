package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/internal/broker/brokertest"
)

// The local broker shares this machine's clock: BrokerTime must agree
// with it to the second it resolves.
func TestBrokerTime(t *testing.T) {
	t.Parallel()
	b := brokertest.New(t)
	sup, err := broker.New(broker.Config{Conn: conn.Config{URL: b.URL}, Role: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := time.Now()
	bt, err := sup.BrokerTime(ctx)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if bt.Before(before.Truncate(time.Second).Add(-time.Second)) || bt.After(after.Add(time.Second)) {
		t.Errorf("broker time %v, local %v..%v", bt, before, after)
	}
}
