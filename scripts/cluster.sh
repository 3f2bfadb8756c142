#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for trying failover without
# Kubernetes: nodes warren-c1..3@localhost, AMQP on 127.0.0.1 ports BASE,
# BASE+1, BASE+2, one Erlang cookie, data and logs under DIR. The shared
# broker on 5672 is not touched.
#
# Usage: scripts/cluster.sh start|stop|urls|status|ctl N ARGS...|kill N|restart N|partition N|heal N
#   start        boot the three nodes and join 2 and 3 to 1 (idempotent)
#   stop         stop every node and remove DIR
#   urls         print the nodes' AMQP URLs, comma-separated (for -broker)
#   status       rabbitmqctl cluster_status, from node 1
#   ctl N ...    run rabbitmqctl against node N (1-3)
#   kill N       kill -9 node N's Erlang VM
#   restart N    start node N again after stop_app/kill; it rejoins
#   partition N  cut node N off from the other two, silently (see partition)
#   heal N       end the partition; wait until N runs and sees all three
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

# up reports whether node N's Erlang VM runs, with RabbitMQ started or not.
up() { nodeenv "$1" "$(bin rabbitmq-diagnostics)" -n "$(name "$1")" ping >/dev/null 2>&1; }

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
	# net_ticktime (default 60 s) is how long a silent peer goes unnoticed:
	# a node is declared down 45 to 75 s after its last packet. 10 s has a
	# partition (see partition) noticed after 7.5 to 12.5 s, so that the
	# fault suite does not wait a minute for each.
	# dead_letter_worker_publisher_confirm_timeout (default 180 s) is how
	# long a quorum queue waits for the confirm of a message it dead-letters
	# at-least-once before sending it again; on 3.10 a confirm lost to a
	# leader change stalls a delay level that long (docs/cluster.md).
	cat >"$d/advanced.config" <<EOF
[{kernel, [{net_ticktime, 10}]},
 {rabbit, [{dead_letter_worker_publisher_confirm_timeout, 10000}]}].
EOF
	echo "[]." >"$d/enabled_plugins"
	: >"$d/rabbitmq-env.conf"
}

boot() {
	local n=$1
	if up "$n"; then
		return
	fi
	# From the node's directory: a VM that dies leaves its erl_crash.dump there.
	(cd "$dir/n$n" && nodeenv "$n" "$(bin rabbitmq-server)" -detached)
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

# peers prints the nodes other than N as an Erlang list.
peers() {
	local m out=""
	for m in $(seq 1 $nodes); do
		[ "$m" = "$1" ] || out+="${out:+,}'$(name "$m")'"
	done
	echo "[$out]"
}

# partition cuts node N off from the others the way a network that drops
# packets does, without touching the host's network: both ends of N's
# distribution connections stop reading them ({active, false}), so nothing
# arrives either way while the connections stay open, and the nodes notice
# only when net_ticktime passes without a tick. N's cookie for its peers
# becomes a wrong one, so that once the connections time out neither side
# can open a new one. AMQP clients and rabbitmqctl reach every node still.
# With pause_minority N then stops RabbitMQ and closes its clients'
# connections, and the other two go on.
partition() {
	local n=$1 p
	p=$(peers "$n")
	# From N: the peers' ends first, over the connections still read.
	quiet "$n" eval "
		Mute = fun(At, Peer) ->
			[ok = erpc:call(At, inet, setopts, [Port, [{active, false}]])
			 || {Q, Port} <- erpc:call(At, erlang, system_info, [dist_ctrl]), Q =:= Peer]
		end,
		[Mute(P, node()) || P <- $p],
		[erlang:set_cookie(P, warren_partitioned) || P <- $p],
		[Mute(node(), P) || P <- $p],
		ok."
}

# heal gives N its cookie back and lets a connection that has not timed out
# yet be read again, then waits until N runs RabbitMQ (a paused node starts
# it again once it reaches the others) and sees all three nodes.
heal() {
	local n=$1 m others
	quiet "$n" eval "[erlang:set_cookie(P, erlang:get_cookie()) || P <- $(peers "$n")], ok."
	for m in $(seq 1 $nodes); do
		others=$(peers "$m")
		[ "$m" = "$n" ] || others="['$(name "$n")']"
		quiet "$m" eval "[inet:setopts(Port, [{active, true}]) || {Q, Port} <- erlang:system_info(dist_ctrl), lists:member(Q, $others)], ok."
	done
	local deadline=$((SECONDS + 120))
	until [ "$(ctl "$n" eval 'rabbit:is_running().' 2>/dev/null)" = true ]; do
		[ $SECONDS -lt $deadline ] || die "node $(name "$n") did not start RabbitMQ again after the partition; see $dir/n$n/log"
		sleep 1
	done
	quiet "$n" await_online_nodes $nodes --timeout 120
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
partition)
	partition "${2:?node number}"
	;;
heal)
	heal "${2:?node number}"
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
	sed -n '2,19s/^# \{0,1\}//p' "$0"
	[ -n "${1:-}" ]
	;;
*) die "unknown command: $1 (see --help)" ;;
esac
