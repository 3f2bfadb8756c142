//go:build fault

package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/internal/broker/brokertest"
)

// This file reconfigures the shared broker (it enables the management
// plugin if it is off, and turns it off again at the end), so it is built
// only with the fault tag and runs alone, under the exclusive broker lock:
//
//	flock -x /tmp/warren-broker.lock go test -race -count=1 -tags fault -run Broker ./cmd/warren

// managementUp reports whether the management API answers on the broker's
// host with the broker's credentials.
func managementUp(brokerURL string) bool {
	insp, err := inspect.New(inspect.Config{Conn: conn.Config{URL: brokerURL}, Timeout: 2 * time.Second})
	if err != nil {
		return false
	}
	defer insp.Close()
	rep, err := insp.Queues(context.Background(), inspect.Filter{All: true})
	return err == nil && rep.Source == inspect.SourceManagement
}

func rabbitmqPlugins(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmq-plugins", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmq-plugins %v: %v\n%s", args, err, out)
	}
}

// "warren queues" against the real management plugin: every column,
// including unacked and the rates, and the fallback once the plugin is
// off again. A plugin that was on stays on.
func TestFaultBrokerManagementAPI(t *testing.T) {
	b := brokertest.New(t)
	enabled := false
	if !managementUp(b.URL) {
		rabbitmqPlugins(t, "enable", "rabbitmq_management")
		enabled = true
		t.Cleanup(func() {
			// Leave the broker as it was found, pass or fail.
			if out, err := exec.Command("rabbitmq-plugins", "disable", "rabbitmq_management").CombinedOutput(); err != nil {
				t.Errorf("rabbitmq-plugins disable rabbitmq_management: %v\n%s", err, out)
			}
		})
		brokertest.Eventually(t, 60*time.Second, func() bool {
			if managementUp(b.URL) {
				return true
			}
			time.Sleep(250 * time.Millisecond)
			return false
		}, "the management API never answered after enabling the plugin")
	}

	video := workQueue(t, b, "video")
	publishN(b, video, 3)
	publishN(b, video+".dead", 2)
	// One consumer holding one message unacked: 2 ready, 1 unacked.
	ch := b.Channel()
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(video, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-deliveries:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}

	// The API's counts lag by its statistics interval (5s by default).
	var rep queuesReport
	var q queueRow
	brokertest.Eventually(t, 30*time.Second, func() bool {
		r := cli(t, nil, "queues", "-json", "-broker", b.URL).want(t, exitOK)
		rep = queuesReport{}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		for _, row := range rep.Queues {
			if row.Name == video {
				q = row
				if q.Ready == 2 && q.Unacked != nil && *q.Unacked == 1 && q.Consumers == 1 && q.Dead != nil && *q.Dead == 2 && q.CountsFrom == "" {
					return true
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
		return false
	}, "queue %s never showed 2 ready, 1 unacked, 1 consumer, 2 dead from the API: last %+v", video, &q)
	bu, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	wantBase := "http://" + bu.Hostname() + ":15672"
	if rep.Source != sourceManagement || rep.Management != wantBase || rep.Vhost != "/" || q.PublishRate == nil || q.DeliverRate == nil {
		t.Errorf("report %+v, row %+v", rep, q)
	}
	for _, row := range rep.Queues {
		if strings.HasPrefix(row.Name, "warren.") || strings.HasSuffix(row.Name, ".dead") {
			t.Errorf("%s listed without -all", row.Name)
		}
	}

	r := cli(t, nil, "queues", video, "-broker", b.URL).want(t, exitOK)
	if first := lines(r.stdout)[0]; first != "source: management API at "+wantBase+" (vhost /)" {
		t.Errorf("source line %q", first)
	}
	if got := row(t, r.stdout, video); strings.Join(got[:5], " ") != video+" 2 1 1 2" || len(got) != 7 {
		t.Errorf("row %q", got)
	}
	missingQ := b.Queue("nosuch")
	r = cli(t, nil, "queues", video, missingQ, "-broker", b.URL).want(t, exitFailed)
	if !strings.Contains(r.stderr, `"`+missingQ+`" does not exist`) {
		t.Errorf("stderr:\n%s", r.stderr)
	}

	if !enabled {
		return
	}
	rabbitmqPlugins(t, "disable", "rabbitmq_management")
	brokertest.Eventually(t, 30*time.Second, func() bool {
		if !managementUp(b.URL) {
			return true
		}
		time.Sleep(250 * time.Millisecond)
		return false
	}, "the management API still answers after disabling the plugin")
	r = cli(t, nil, "queues", "-json", video, "-broker", b.URL).want(t, exitOK)
	rep = queuesReport{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Source != sourceAMQP || rep.ManagementError == "" || len(rep.Queues) != 1 || rep.Queues[0].Ready != 2 || rep.Queues[0].Consumers != 1 {
		t.Errorf("after disabling the plugin: %+v", rep)
	}
}
