#!/usr/bin/env bash
# Runs TestFaultProcessChaos (internal/faulttest/chaos_test.go) on a RabbitMQ
# node of its own; the shared broker on 5672 is not touched. Needs the
# RabbitMQ server installed (scripts/ensure-rabbitmq.sh) and root or the
# right to run it.
#
#   scripts/chaos.sh            the chaos run CI does
#   scripts/chaos.sh calm       harness check: no faults, no failures,
#                               -concurrency 3 (must pass on any worker)
#   scripts/chaos.sh one-queue  harness check: one queue, all faults (no
#                               queue can starve another)
#
# Environment passed through: WARREN_CHAOS_SEED (repeat a run's plans),
# WARREN_CHAOS_QUEUES, WARREN_CHAOS_CONCURRENCY, WARREN_CHAOS_FAULTS=off,
# WARREN_CHAOS_FAILURES=off, WARREN_CHAOS_ARTIFACTS=<dir> (keep the run
# record and worker logs).
set -euo pipefail
source "$(dirname "$0")/env.sh"

case "${1:-}" in
"") ;;
calm) export WARREN_CHAOS_FAULTS=off WARREN_CHAOS_FAILURES=off WARREN_CHAOS_CONCURRENCY=3 ;;
one-queue) export WARREN_CHAOS_QUEUES=1 ;;
*) echo "usage: scripts/chaos.sh [calm|one-queue]" >&2; exit 2 ;;
esac
go test -race -count=1 -p 1 -tags fault -v -run 'TestFaultProcessChaos$' ./internal/faulttest
