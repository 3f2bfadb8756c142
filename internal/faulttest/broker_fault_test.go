//go:build fault

package faulttest

import (
	"os/exec"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
)

func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
}

// The broker's application is stopped and started twice while 3000 tasks
// flow: durable queues and persistent messages survive, producer and
// worker reconnect by themselves, and every task is handled.
func TestFaultBrokerRestart(t *testing.T) {
	b := brokertest.New(t)
	restart := func() {
		rabbitmqctl(t, "stop_app")
		time.Sleep(time.Second)
		rabbitmqctl(t, "start_app")
		rabbitmqctl(t, "await_startup")
	}
	s := &scenario{t: t, b: b, n: 3000, producerURL: b.URL, workerURL: b.URL, handlerDelay: 500 * time.Microsecond,
		rate: 200, faults: []func(){restart, restart}}
	checkReport(t, "rabbitmqctl stop_app/start_app x2", s.run())
}
