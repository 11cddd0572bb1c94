#!/usr/bin/env bash
# scripts/pgcluster.sh — a throw-away PostgreSQL cluster for mcpd's tests.
#
#   pgenv="$(bash scripts/pgcluster.sh start DIR)" && eval "$pgenv"   # prints export lines
#   bash scripts/pgcluster.sh stop DIR
#
# start creates DIR (it must not exist or be empty), runs initdb there and
# starts postgres listening on 127.0.0.1 at a free port, with its Unix
# socket in DIR too. It creates the role mcpd with a random password and
# the database mcpd, and prints
#
#   export MCPD_TEST_DATABASE='postgres://mcpd:…@127.0.0.1:PORT/mcpd?sslmode=disable'
#   export MCPD_TEST_PGDIR='DIR'
#
# (also written to DIR/env). The Go tests of store/postgres and cmd/mcpd
# and the replica end-to-end suite read MCPD_TEST_DATABASE. Run as root, the
# cluster runs as the unprivileged user postgres (or nobody); PostgreSQL
# refuses to run as root. Nothing listens beyond loopback.
#
# Environment: PGBIN (default /usr/lib/postgresql/15/bin).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
	echo "usage: $0 start|stop DIR" >&2
	exit 2
fi

# as_owner runs a command as the cluster's owner.
owner=$(id -un)
if [[ $(id -u) == 0 ]]; then
	owner=postgres
	getent passwd postgres >/dev/null || owner=nobody
fi
as_owner() {
	if [[ $(id -u) == 0 ]]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}

case "$cmd" in
stop)
	if [[ -f "$dir/data/postmaster.pid" ]]; then
		as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	exit 0
	;;
start) ;;
*)
	echo "usage: $0 start|stop DIR" >&2
	exit 2
	;;
esac

mkdir -p "$dir"
if [[ -n "$(ls -A "$dir")" ]]; then
	echo "$0: $dir is not empty" >&2
	exit 1
fi
dir=$(cd "$dir" && pwd)
chmod 0700 "$dir"
[[ $(id -u) == 0 ]] && chown "$owner" "$dir"

password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$password" >"$dir/pwfile"
[[ $(id -u) == 0 ]] && chown "$owner" "$dir/pwfile"
chmod 0600 "$dir/pwfile"
as_owner "$PGBIN/initdb" -D "$dir/data" -U mcpd --pwfile="$dir/pwfile" \
	--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
	cat "$dir/initdb.log" >&2
	exit 1
}
rm -f "$dir/pwfile"

# A free port: ask the kernel for one, and try again should postgres lose
# the race for it.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
started=""
for _ in 1 2 3 4 5; do
	port=$(free_port)
	if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300" \
		start >/dev/null 2>&1; then
		started=1
		break
	fi
done
if [[ -z "$started" ]]; then
	echo "$0: postgres did not start; its log:" >&2
	tail -20 "$dir/postgres.log" >&2
	exit 1
fi
as_owner "$PGBIN/psql" -h "$dir" -p "$port" -U mcpd -d postgres -qAt -c "CREATE DATABASE mcpd" >/dev/null

url="postgres://mcpd:$password@127.0.0.1:$port/mcpd?sslmode=disable"
{
	echo "export MCPD_TEST_DATABASE='$url'"
	echo "export MCPD_TEST_PGDIR='$dir'"
} | tee "$dir/env"
