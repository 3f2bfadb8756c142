#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 and a Go toolchain
# exists, installing them from Debian's packages where missing. Idempotent:
# the README's demo and test commands and CI call it on every run, on a
# machine that may be fresh.
#
# Usage: scripts/ensure-rabbitmq.sh [--with-kombu] [--with-celery] [--with-management] [--with-prometheus] [--with-chromium]
#   --with-kombu       also Debian's python3-kombu, importable by /usr/bin/python3
#                      (the interoperability tests talk to warren from Celery's
#                      transport library)
#   --with-celery      also Debian's python3-celery (Celery 5.2, with Kombu), for
#                      the tests that run Celery apps and workers beside warren
#   --with-management  also enable the rabbitmq_management plugin
#   --with-prometheus  also Debian's prometheus (the server and promtool), which
#                      the dashboards' tests run; its service is not needed
#   --with-chromium    also Debian's chromium, which the web UI's browser tests
#                      drive headless
set -euo pipefail

host=127.0.0.1
port=5672
start_timeout=90 # seconds for a detached node to boot and open its port

with_kombu=0
with_celery=0
with_management=0
with_prometheus=0
with_chromium=0
for arg in "$@"; do
	case "$arg" in
	--with-kombu) with_kombu=1 ;;
	--with-celery) with_celery=1 ;;
	--with-management) with_management=1 ;;
	--with-prometheus) with_prometheus=1 ;;
	--with-chromium) with_chromium=1 ;;
	-h | --help)
		sed -n '2,17s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "ensure-rabbitmq: unknown option: $arg (see --help)" >&2
		exit 2
		;;
	esac
done

log() { echo "ensure-rabbitmq: $*"; }
die() {
	echo "ensure-rabbitmq: ERROR: $*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# Installs run as root; elsewhere through sudo when there is one.
sudo=()
if [ "$(id -u)" -ne 0 ] && have sudo; then
	sudo=(sudo)
fi

apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then
		log "apt-get update"
		"${sudo[@]}" apt-get update -qq
		apt_updated=1
	fi
	log "apt-get install $*"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 "$@"
}

# bash's /dev/tcp, bounded: a filtered port must not hang the script.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$host/$1" 2>/dev/null
}

# --- Go -------------------------------------------------------------------
if have go; then
	:
elif [ -x /usr/local/go/bin/go ]; then
	log "Go is at /usr/local/go/bin/go but not on PATH; add it: export PATH=\$PATH:/usr/local/go/bin (scripts/env.sh does)"
else
	log "no Go toolchain found: installing Debian's golang-go"
	apt_install golang-go
	log "note: Debian's go is older than go.mod's; with GOTOOLCHAIN=auto (set by scripts/env.sh) it fetches the go 1.26 toolchain through the module proxy on first use"
fi

# --- RabbitMQ -------------------------------------------------------------
# wait_ready waits, until the deadline, for the port to answer and the
# broker to finish booting (the port opens a little before plugins and
# definitions are done).
wait_ready() {
	local deadline=$((SECONDS + start_timeout)) left
	while :; do
		left=$((deadline - SECONDS))
		if [ "$left" -le 0 ]; then
			log "last lines of the broker's log (/var/log/rabbitmq/):"
			tail -n 20 /var/log/rabbitmq/*.log 2>/dev/null | sed 's/^/    /' >&2 || true
			die "RabbitMQ did not come up on $host:$port within ${start_timeout}s"
		fi
		if port_open "$port" && timeout "$left" rabbitmqctl -q await_startup >/dev/null 2>&1; then
			return 0
		fi
		sleep 1
	done
}

if port_open "$port"; then
	if have rabbitmqctl; then
		timeout 60 rabbitmqctl -q await_startup >/dev/null ||
			die "something answers on $host:$port but 'rabbitmqctl await_startup' failed"
	fi
	log "RabbitMQ answers on $host:$port"
else
	if ! have rabbitmq-server; then
		log "rabbitmq-server not installed: installing Debian's package"
		apt_install rabbitmq-server
	fi
	started=$SECONDS
	# A node that is up with its application stopped (an interrupted
	# stop_app, as the fault suite does) or still booting: start_app is a
	# no-op on a running one, and a second node would fail on the name.
	if timeout 15 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
		if [ "$(timeout 15 rabbitmqctl -q eval 'rabbit:is_booting().' 2>/dev/null)" = true ]; then
			log "node is booting: waiting for it"
		else
			log "node is up with its application stopped: rabbitmqctl start_app"
			timeout 60 rabbitmqctl -q start_app || die "'rabbitmqctl start_app' failed"
		fi
	else
		log "nothing on $host:$port: starting rabbitmq-server -detached"
		# Non-zero when another caller started it first: waiting still decides.
		rabbitmq-server -detached || log "rabbitmq-server -detached exited $?; waiting anyway"
	fi
	wait_ready
	log "RabbitMQ is up on $host:$port (took $((SECONDS - started))s)"
fi

if [ "$with_management" = 1 ]; then
	if rabbitmq-plugins -q list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
		log "rabbitmq_management already enabled"
	else
		log "enabling rabbitmq_management"
		timeout 120 rabbitmq-plugins -q enable rabbitmq_management >/dev/null
	fi
fi

# --- Kombu ----------------------------------------------------------------
# Debian's python3-kombu, for /usr/bin/python3 specifically: a pyenv or venv
# python on PATH would not see it.
if [ "$with_kombu" = 1 ]; then
	if /usr/bin/python3 -c 'import kombu' >/dev/null 2>&1; then
		log "kombu importable by /usr/bin/python3"
	else
		apt_install python3-kombu
		v=$(/usr/bin/python3 -c 'import kombu; print(kombu.__version__)') ||
			die "python3-kombu installed but /usr/bin/python3 cannot import kombu"
		log "kombu $v installed for /usr/bin/python3"
	fi
fi

# Debian's python3-celery, likewise for /usr/bin/python3; its recommends
# (a message broker among them) are not needed.
if [ "$with_celery" = 1 ]; then
	if /usr/bin/python3 -c 'import celery' >/dev/null 2>&1; then
		log "celery importable by /usr/bin/python3"
	else
		apt_install --no-install-recommends python3-celery
		v=$(/usr/bin/python3 -c 'import celery; print(celery.__version__)') ||
			die "python3-celery installed but /usr/bin/python3 cannot import celery"
		log "celery $v installed for /usr/bin/python3"
	fi
fi

# --- Prometheus -----------------------------------------------------------
# The tests start their own server on a loopback port; the package's service
# (on :9090, where an init system runs it) plays no part. Recommends would
# add node-exporter, which nothing here uses.
if [ "$with_prometheus" = 1 ]; then
	if have prometheus && have promtool; then
		log "prometheus and promtool on PATH"
	else
		apt_install --no-install-recommends prometheus
		have promtool || die "prometheus installed but promtool is not on PATH"
		log "$(prometheus --version 2>&1 | head -1)"
		# Where systemd runs, the package starts its service on :9090;
		# the tests do not use it, so it does not keep running.
		if have systemctl && [ -d /run/systemd/system ]; then
			"${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
		fi
	fi
fi

# --- Chromium -------------------------------------------------------------
# The UI's browser tests (ui/browser_test.go) look for /usr/bin/chromium and
# run it headless, off the network; without recommends it stays small.
if [ "$with_chromium" = 1 ]; then
	if [ -x /usr/bin/chromium ]; then
		log "chromium at /usr/bin/chromium"
	else
		apt_install --no-install-recommends chromium
		[ -x /usr/bin/chromium ] || die "chromium installed but /usr/bin/chromium is missing"
		log "$(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
	fi
fi
