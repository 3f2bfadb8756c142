#!/usr/bin/env bash
# Runs the media example end to end: a local RabbitMQ (started, or installed
# from Debian's packages, if none answers), the worker with the example's
# schedule file (a process_media every 2 s), and N enqueued process_media
# tasks; then stops the worker with SIGTERM and prints what it handled.
# Usage: scripts/demo.sh [N]   (default 1000)
set -euo pipefail
source "$(dirname "$0")/env.sh"
n="${1:-1000}"

scripts/ensure-rabbitmq.sh
mkdir -p bin
go build -o bin/worker ./cmd/worker
go build -o bin/enqueue ./examples/media/enqueue

echo "demo: starting worker on queue video (log: bin/worker.log)"
bin/worker -queues video -schedules examples/media/schedules.yaml -metrics-addr 127.0.0.1:0 -log-format console >bin/worker.log 2>&1 &
wpid=$!
trap 'kill "$wpid" 2>/dev/null || true' EXIT

bin/enqueue -n "$n"

echo "demo: waiting for the worker to drain queue video"
for _ in $(seq 1 600); do
	left=$(rabbitmqctl -q list_queues name messages 2>/dev/null | awk '$1=="video"{print $2}')
	[ "${left:-1}" = "0" ] && break
	sleep 0.1
done

echo "demo: waiting for the schedule's first fire"
for _ in $(seq 1 100); do
	grep -q "scheduler: fired" bin/worker.log && break
	sleep 0.1
done
fires=$(grep -c "scheduler: fired" bin/worker.log || true)

kill -TERM "$wpid"
wait "$wpid" || { echo "demo: worker exited with an error"; cat bin/worker.log; exit 1; }
trap - EXIT
summary=$(grep "worker stopped" bin/worker.log || true)
echo "demo: $summary"
handled=$(sed -n 's/.*"succeeded": \([0-9]*\).*/\1/p' <<<"$summary")
if [ "${handled:-0}" -lt "$n" ]; then
	echo "demo: FAILED: the worker handled ${handled:-0} of $n tasks"
	exit 1
fi
if [ "${fires:-0}" -lt 1 ]; then
	echo "demo: FAILED: the schedule never fired (log: bin/worker.log)"
	exit 1
fi
echo "demo: OK: $n tasks enqueued with publisher confirms and handled by the worker, and $fires fired by the schedule"
