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

// quorumWarning says why -quorum left spec, a queue the topology names, as
// the topology declares it. A priority queue must stay classic: quorum
// queues on RabbitMQ 3.x take no x-max-priority, so there is nothing to set.
func quorumWarning(spec routing.Queue) string {
	if _, ok := spec.Arguments()[routing.MaxPriorityArg]; ok {
		return "-quorum leaves a priority queue classic, as the program's topology declares it: quorum queues on RabbitMQ 3.x have no priorities"
	}
	return "-quorum leaves a queue the program's topology names as it declares it, not quorum: set Quorum in its routing.Queue"
}
