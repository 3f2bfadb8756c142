// Package faulttest holds warren's fault suite. A producer enqueues a known
// set of task ids while workers record each id they handle, and the suite
// checks that every task was handled at least once, counting duplicates and
// recovery time, while the network path is cut or goes silent, the broker
// is stopped or killed with kill -9, worker processes (testworker, built by
// the tests) are killed, sent SIGTERM, timed out by consumer_timeout or
// crashed by a poison task, or a three-node cluster (scripts/cluster.sh)
// loses, restarts or partitions off a node; a TLS-only RabbitMQ node checks
// amqps:// with client certificates. TestFaultProcessChaos mixes the
// single-node faults on several queues, with tasks whose every attempt
// follows a plan, and checks that each task ends as its plan says, once,
// with no queue starved. Tests that only disturb their own TCP proxy run
// with the main suite; the others are behind the "fault" build tag and run
// alone, after it (scripts/test.sh), since they stop, restart or
// reconfigure the shared broker, or start RabbitMQ nodes of their own
// (node_test.go, cluster_test.go) to close their connections, restart,
// partition or configure them freely.
package faulttest
