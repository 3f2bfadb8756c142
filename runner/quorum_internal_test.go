package runner

import (
	"slices"
	"strings"
	"testing"

	"github.com/warrenq/warren/routing"
)

// withQuorum adds what the topology leaves out, keeps what it names
// (shards included, through their logical name), and leaves the caller's
// topology as it was.
func TestWithQuorum(t *testing.T) {
	shards := routing.Shards{Queue: "img", Count: 2}.Topology()
	quorumShards := routing.Shards{Queue: "qimg", Count: 2, Args: map[string]any{"x-queue-type": "quorum"}}.Topology()
	topo := shards.Merge(quorumShards).Merge(routing.Topology{Queues: []routing.Queue{{Name: "named"}, {Name: "replicated", Quorum: true}}})
	topo.Queues = slices.Grow(topo.Queues, 8) // room to append in place, which must not happen
	before := slices.Clone(topo.Queues)

	got, kept := withQuorum(topo, []string{"free", "named", "replicated", "img", "qimg"})

	if want := []string{"named", "img.0", "img.1"}; !sameSet(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	if q, ok := got.Queue("free"); !ok || !q.Quorum || q.DeliveryLimit != 0 || q.NoDeadLetters {
		t.Errorf("free: %+v (in topology %v), want a quorum queue with the default limit and dead letters", q, ok)
	}
	if len(got.Queues) != len(before)+1 {
		t.Errorf("%d queues, want the %d named and free", len(got.Queues), len(before))
	}
	if !slices.EqualFunc(topo.Queues, before, func(a, b routing.Queue) bool { return a.Name == b.Name && a.Quorum == b.Quorum }) ||
		slices.ContainsFunc(topo.Queues[:cap(topo.Queues)][len(topo.Queues):], func(q routing.Queue) bool { return q.Name != "" }) {
		t.Errorf("the caller's topology changed: %+v", topo.Queues)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the topology with -quorum's queues: %v", err)
	}
}

// A priority queue named by the topology stays classic, and the warning
// does not advise setting Quorum, which Validate would refuse.
func TestQuorumWarning(t *testing.T) {
	for _, tc := range []struct {
		q    routing.Queue
		want string
	}{
		{routing.Queue{Name: "plain"}, "set Quorum"},
		{routing.Queue{Name: "urgent", MaxPriority: 5}, "priority queue classic"},
		{routing.Queue{Name: "raw", Args: map[string]any{routing.MaxPriorityArg: 3}}, "priority queue classic"},
	} {
		if got := quorumWarning(tc.q); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want it to say %q", tc.q.Name, got, tc.want)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
