#!/usr/bin/env bash
# The test command (README, CI): starts RabbitMQ if none answers (installing
# it, Kombu, Celery, Prometheus and Chromium from Debian's packages where missing),
# checks formatting and vet, runs every package's tests with -race (the
# dashboards' among them run a Prometheus server of their own, the web UI's
# a headless Chromium), then the fault suite,
# which stops and restarts the broker and so runs alone, after the main
# suite.
set -euo pipefail
source "$(dirname "$0")/env.sh"

scripts/ensure-rabbitmq.sh --with-kombu --with-celery --with-prometheus --with-chromium

echo "== gofmt, go vet"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
go vet ./...
go vet -tags fault ./...

echo "== tests (-race)"
go test -race -count=1 ./...

echo "== Kubernetes manifests (their own module: kustomize and Kubernetes API types stay out of warren's go.mod)"
(cd deploy/kubernetes && go vet ./... && go test -race -count=1 ./...)

echo "== fuzz the message decoder briefly"
go test -run='^$' -fuzz=FuzzDecode -fuzztime=10s ./task

echo "== benchmark smoke run (keeps ./bench from rotting; asserts nothing about speed)"
go run ./bench -n 300

echo "== fault suite (restarts RabbitMQ; runs alone)"
# Broker stop/start and kill -9, worker processes killed, SIGTERMed, timed
# out by consumer_timeout and crashed by a poison task, a TLS-only node, and
# the CLI against the management plugin (enabled, then disabled again),
# the elected scheduler's leader SIGKILLed twice,
# and failover on a three-node cluster of its own (scripts/cluster.sh, on
# 5781-5783), which it starts and stops, a node partitioned off included.
# The faulttest package takes some 6 to 7 minutes on a 2-core machine (the
# cluster tests 3.5), near go test's default limit of 10: -timeout leaves
# room for a slower machine.
go test -race -count=1 -p 1 -timeout 20m -tags fault -v -run 'Broker|Process|Cluster' ./internal/faulttest
go test -race -count=1 -p 1 -tags fault -v -run 'TestFault' ./cmd/warren
# A rate limit at 20/s over 2,000 tasks (100 s), alone: every one-second
# window within 10%, which other packages' tests beside it would blur.
go test -race -count=1 -p 1 -tags fault -v -run 'TestFault' ./worker
