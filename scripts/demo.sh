#!/usr/bin/env bash
# Runs the media example end to end: a local RabbitMQ (started, or installed
# from Debian's packages, if none answers), the worker with the example's
# schedule file (a process_media every 2 s), N enqueued process_media
# tasks and one more that fails permanently on purpose (a negative size, a
# corrupt record); then stops the worker with SIGTERM, prints what it
# handled, and says how to find that task's dead letter in warren ui.
# Usage: scripts/demo.sh [N]   (default 1000)
set -euo pipefail
source "$(dirname "$0")/env.sh"
n="${1:-1000}"

scripts/ensure-rabbitmq.sh
mkdir -p bin
go build -o bin/worker ./cmd/worker
go build -o bin/enqueue ./examples/media/enqueue
go build -o bin/warren ./cmd/warren

echo "demo: starting worker on queue video (log: bin/worker.log)"
bin/worker -queues video -schedules examples/media/schedules.yaml -metrics-addr 127.0.0.1:0 -log-format console >bin/worker.log 2>&1 &
wpid=$!
trap 'kill "$wpid" 2>/dev/null || true' EXIT

bin/enqueue -n "$n"
# One task the handler refuses for good: it goes to video.dead at once,
# the dead letter the last lines point at.
bad=$(bin/warren enqueue process_media -exchange media -key video -json '{"name":"/tmp/lolcat-corrupt.avi","size":-1}')
echo "demo: enqueued $bad, a process_media with size -1, which fails permanently"

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
dead=$(sed -n 's/.*"dead": \([0-9]*\).*/\1/p' <<<"$summary")
if [ "${handled:-0}" -lt "$n" ]; then
	echo "demo: FAILED: the worker handled ${handled:-0} of $n tasks"
	exit 1
fi
if [ "${dead:-0}" != "1" ]; then
	echo "demo: FAILED: the worker dead-lettered ${dead:-0} tasks, want 1: the one with size -1 (log: bin/worker.log)"
	exit 1
fi
if [ "${fires:-0}" -lt 1 ]; then
	echo "demo: FAILED: the schedule never fired (log: bin/worker.log)"
	exit 1
fi
echo "demo: OK: $n tasks enqueued with publisher confirms and handled by the worker, $fires fired by the schedule, and 1 dead-lettered on purpose"
echo
echo "demo: the failed task $bad waits in video.dead. To find it and replay it in a browser:"
echo "demo:   bin/warren ui -queues video      (or: go run ./cmd/warren ui -queues video)"
echo "demo:   then open http://127.0.0.1:8080/ and follow the dead-letter count of queue video"
echo "demo: Replay puts it back in video; a worker (bin/worker -queues video) fails it again, since its size is still -1."
