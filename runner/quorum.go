package runner

import (
	"slices"

	"github.com/warrenq/warren/routing"
)

// withQuorum returns topo with every queue of queues (shards expanded)
// that it does not name added as a quorum queue, for -quorum, and the
// names of those it names as other than quorum. Those keep the topology's
// declaration: producers declare the same topology, and RabbitMQ refuses
// a queue redeclared with another type or other arguments.
func withQuorum(topo routing.Topology, queues []string) (routing.Topology, []string) {
	topo.Queues = slices.Clone(topo.Queues) // the caller's topology stays as it was
	var kept []string
	for _, q := range topo.Expand(queues) {
		spec, ok := topo.Queue(q)
		switch {
		case !ok:
			topo.Queues = append(topo.Queues, routing.Queue{Name: q, Quorum: true})
		case spec.Arguments()["x-queue-type"] != "quorum":
			kept = append(kept, q)
		}
	}
	return topo, kept
}
