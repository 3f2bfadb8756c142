// Package faulttest holds warren's fault suite: a producer and a worker run
// a few thousand tasks while the network path is cut or the broker
// restarted, and the suite checks that every task was handled, counting
// duplicates and recovery time. Tests that only disturb their own TCP proxy
// run with the main suite; those that stop or restart RabbitMQ are behind
// the "fault" build tag and run alone, after it (scripts/test.sh).
package faulttest
