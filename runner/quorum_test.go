package runner_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/broker/brokertest"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
)

// -quorum declares the queues of -queues that the program's topology does
// not name as quorum queues, with warren's delivery limit and
// dead-lettering, as routing.Queue{Quorum: true} would; a queue the
// topology names keeps its declaration, and the log says so. Without the
// flag the same queue is classic, as before.
func TestQuorumFlag(t *testing.T) {
	for _, quorum := range []bool{false, true} {
		t.Run(map[bool]string{false: "without", true: "with"}[quorum], func(t *testing.T) {
			b := brokertest.New(t)
			free, named := b.Queue("free"), b.Queue("named")
			topo := routing.Topology{Queues: []routing.Queue{{Name: named}}}
			args := []string{"-queues", free + "," + named, "-broker", b.URL, "-shutdown-timeout", "2s"}
			if quorum {
				args = append(args, "-quorum=true")
			}
			addr, logs := launch(t, noopRegistry(), topo, args...)
			brokertest.Eventually(t, 15*time.Second, func() bool { c, _ := httpGet(addr, "/readyz"); return c == 200 }, "/readyz never ready")

			asQuorum := routing.Queue{Name: free, Quorum: true}.Arguments()
			deadAsQuorum := routing.Queue{Name: routing.DeadQueue(free), Quorum: true, NoDeadLetters: true}.Arguments()
			if got := b.DeclaredWith(free, asQuorum); got != quorum {
				t.Errorf("%s is a quorum queue with warren's arguments: %v, want %v", free, got, quorum)
			}
			if got := b.DeclaredWith(routing.DeadQueue(free), deadAsQuorum); got != quorum {
				t.Errorf("%s is a quorum queue: %v, want %v", routing.DeadQueue(free), got, quorum)
			}
			if quorum {
				// The limit is warren's 20, not another or none.
				other := routing.Queue{Name: free, Quorum: true, DeliveryLimit: 7}.Arguments()
				if b.DeclaredWith(free, other) {
					t.Errorf("%s takes a declaration with delivery limit 7: its limit is not %d", free, routing.DefaultDeliveryLimit)
				}
			}
			if !b.DeclaredWith(named, nil) {
				t.Errorf("%s, named classic by the topology, is not classic", named)
			}
			warned := strings.Contains(logs.String(), `"queue":"`+named+`"`) && strings.Contains(logs.String(), "-quorum")
			if warned != quorum {
				t.Errorf("a warning that -quorum leaves %s as the topology declares it: %v, want %v; logs:\n%s", named, warned, quorum, logs.String())
			}
		})
	}
}

// -quorum parses into Options.Quorum; it is off unless given.
func TestParseQuorumFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"-queues", "q"}, false},
		{[]string{"-queues", "q", "-quorum"}, true},
		{[]string{"-queues", "q", "-quorum=true"}, true},
		{[]string{"-queues", "q", "-quorum=false"}, false},
	} {
		o, err := runner.ParseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("ParseFlags(%q): %v", tc.args, err)
		}
		if o.Quorum != tc.want {
			t.Errorf("ParseFlags(%q).Quorum = %v, want %v", tc.args, o.Quorum, tc.want)
		}
	}
}
