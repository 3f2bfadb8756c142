#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for trying failover without
# Kubernetes: nodes warren-c1..3@localhost, AMQP on 127.0.0.1 ports BASE,
# BASE+1, BASE+2, one Erlang cookie, data and logs under DIR. The shared
# broker on 5672 is not touched.
#
# Usage: scripts/cluster.sh start|stop|urls|status|ctl N ARGS...|kill N|restart N
#   start        boot the three nodes and join 2 and 3 to 1 (idempotent)
#   stop         stop every node and remove DIR
#   urls         print the nodes' AMQP URLs, comma-separated (for -broker)
#   status       rabbitmqctl cluster_status, from node 1
#   ctl N ...    run rabbitmqctl against node N (1-3)
#   kill N       kill -9 node N's Erlang VM
#   restart N    start node N again after stop_app/kill; it rejoins
# Environment: WARREN_CLUSTER_DIR (default /tmp/warren-cluster),
# WARREN_CLUSTER_PORT (default 5681; the distribution ports are 25681..).
set -euo pipefail

dir=${WARREN_CLUSTER_DIR:-/tmp/warren-cluster}
base=${WARREN_CLUSTER_PORT:-5681}
nodes=3

die() {
	echo "cluster: ERROR: $*" >&2
	exit 1
}
# The scripts in /usr/lib/rabbitmq/bin run as the caller; Debian's
# /usr/sbin wrappers would switch to the rabbitmq user, who cannot read DIR.
bin() {
	if [ -x "/usr/lib/rabbitmq/bin/$1" ]; then
		echo "/usr/lib/rabbitmq/bin/$1"
	elif command -v "$1" >/dev/null 2>&1; then
		command -v "$1"
	else
		die "$1 not found (scripts/ensure-rabbitmq.sh installs RabbitMQ)"
	fi
}

name() { echo "warren-c$1@localhost"; }
port() { echo $((base + $1 - 1)); }

# env runs a command with node N's environment: its own config, data and
# logs, and DIR as HOME so that every node and rabbitmqctl share the cookie.
nodeenv() {
	local n=$1
	shift
	local d="$dir/n$n"
	env -u RABBITMQ_NODENAME -u RABBITMQ_CONFIG_FILE HOME="$dir" \
		RABBITMQ_NODENAME="$(name "$n")" \
		RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
		RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
		RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
		RABBITMQ_MNESIA_BASE="$d/mnesia" \
		RABBITMQ_LOG_BASE="$d/log" \
		RABBITMQ_PID_FILE="$d/node.pid" \
		RABBITMQ_DIST_PORT=$((20000 + $(port "$n"))) \
		ERL_EPMD_ADDRESS=127.0.0.1 \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
		"$@"
}

ctl() {
	local n=$1
	shift
	nodeenv "$n" "$(bin rabbitmqctl)" -n "$(name "$n")" "$@"
}

up() { ctl "$1" status >/dev/null 2>&1; }

# quiet runs rabbitmqctl against node N with its chatter in DIR/ctl.log.
quiet() {
	ctl "$@" >>"$dir/ctl.log" 2>&1 || die "rabbitmqctl -n $(name "$1") ${*:2} failed; see $dir/ctl.log"
}

configure() {
	local n=$1 d="$dir/n$1"
	mkdir -p "$d/log" "$d/mnesia"
	cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$(port "$n")
loopback_users = none
log.file.level = warning
# A partitioned minority pauses, so that no node takes publishes that a
# heal would throw away.
cluster_partition_handling = pause_minority
EOF
	echo "[]." >"$d/advanced.config"
	echo "[]." >"$d/enabled_plugins"
	: >"$d/rabbitmq-env.conf"
}

boot() {
	local n=$1
	if up "$n"; then
		return
	fi
	nodeenv "$n" "$(bin rabbitmq-server)" -detached
	# await_startup fails at once while the VM is not up yet: retry it.
	local deadline=$((SECONDS + 120))
	until ctl "$n" await_startup --timeout 120 >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || die "node $(name "$n") did not boot; see $dir/n$n/log"
		sleep 1
	done
}

start() {
	mkdir -p "$dir"
	if [ ! -f "$dir/.erlang.cookie" ]; then
		head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F >"$dir/.erlang.cookie"
		chmod 400 "$dir/.erlang.cookie"
	fi
	local n
	for n in $(seq 1 $nodes); do
		configure "$n"
		boot "$n"
	done
	for n in $(seq 2 $nodes); do
		if ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(name "$n")\""; then
			continue
		fi
		quiet "$n" stop_app
		quiet "$n" reset
		quiet "$n" join_cluster "$(name 1)"
		quiet "$n" start_app
	done
	ctl 1 await_online_nodes $nodes --timeout 120 >/dev/null 2>&1 || true
	echo "cluster: up: $(urls)"
}

stop() {
	local n
	for n in $(seq $nodes -1 1); do
		if up "$n"; then
			ctl "$n" stop >/dev/null 2>&1 || true
		fi
		if [ -f "$dir/n$n/node.pid" ]; then
			kill -9 "$(cat "$dir/n$n/node.pid")" 2>/dev/null || true
		fi
	done
	rm -rf "$dir"
}

urls() {
	local n out=""
	for n in $(seq 1 $nodes); do
		out+="${out:+,}amqp://guest:guest@127.0.0.1:$(port "$n")/"
	done
	echo "$out"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
urls) urls ;;
status) ctl 1 cluster_status ;;
ctl)
	shift
	n=${1:?node number}
	shift
	ctl "$n" "$@"
	;;
kill)
	n=${2:?node number}
	kill -9 "$(cat "$dir/n$n/node.pid")"
	;;
restart)
	n=${2:?node number}
	if up "$n"; then
		quiet "$n" start_app
	else
		boot "$n"
	fi
	;;
-h | --help | "")
	sed -n '2,17s/^# \{0,1\}//p' "$0"
	[ -n "${1:-}" ]
	;;
*) die "unknown command: $1 (see --help)" ;;
esac
