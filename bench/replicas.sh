#!/usr/bin/env bash
# bench/replicas.sh — the PostgreSQL figures of docs/benchmarks.md, over
# loopback: refresh rotations, client_credentials grants and tools/call
# whoami on
#
#   bolt     mcpd serve on bbolt (the default), straight to the server
#   pg1      one replica on PostgreSQL, straight to the server
#   pg1-lb   one replica on PostgreSQL behind HAProxy
#   pg3-lb   three replicas on one PostgreSQL behind HAProxy (round robin)
#
# every server with --mcp-stateless true (what replicas run with) and a
# fresh database (a new bbolt directory, or a new PostgreSQL database on one
# throw-away cluster started here). The variants are interleaved run by
# run, so the machine's drift hits them alike. Prints the median table and
# the ratios the goals of issue 16 are stated in; raw results (one JSON
# line per run) go to $OUT/results.jsonl.
#
#   bash bench/replicas.sh                      # RUNS=3 DUR=10s WARMUP=2s WORKERS=16
#   RUNS=1 DUR=3s bash bench/replicas.sh        # a quick look
#   ONLY="refresh" bash bench/replicas.sh       # some scenarios only
#   BASE=main VARIANTS="pg1 pg1-base" ONLY=refresh bash bench/replicas.sh
#                                               # A/B: this tree against a commit
#
# With BASE=REV, a variant named V-base runs V on mcpd built from REV (in a
# temporary worktree), interleaved with the others.
#
# PostgreSQL runs with its defaults (synchronous_commit on, fsync on): every
# rotation is durable before it is answered, as on bbolt. The "other"
# column's db_cpu_us_per_req is what PostgreSQL (the postmaster and its
# backends) spent per request, next to mcpd's own server CPU.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-16}
MAXREQ=${MAXREQ:-1000000}
ONLY=${ONLY:-refresh client-credentials whoami}
VARIANTS=${VARIANTS:-bolt pg1 pg1-lb pg3-lb}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mcpd-bench-pg.XXXXXX")}
export LOADGEN_PASSWORD=bench-pw

mkdir -p "$OUT"
chmod 0755 "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
BIN=$OUT/mcpd
LOADGEN=$OUT/loadgen
echo "# building into $OUT" >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN" ./cmd/mcpd && go build -o "$LOADGEN" ./bench/loadgen)
BASE=${BASE:-}
if [ -n "$BASE" ]; then
	git -C "$ROOT" worktree add --detach "$OUT/base-tree" "$BASE" >/dev/null 2>&1
	(cd "$OUT/base-tree" && CGO_ENABLED=0 go build -trimpath -o "$OUT/mcpd-base" ./cmd/mcpd)
	git -C "$ROOT" worktree remove --force "$OUT/base-tree"
fi

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	bash "$ROOT/scripts/pgcluster.sh" stop "$OUT/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT

pgenv="$(bash "$ROOT/scripts/pgcluster.sh" start "$OUT/pg")"
eval "$pgenv"
PGURL=$MCPD_TEST_DATABASE
PGPORT=${PGURL##*@127.0.0.1:}
PGPORT=${PGPORT%%/*}
fresh_db() { # prints the URL of a new, empty database
	local name="bench_$(date +%s%N)"
	"$PGBIN/psql" -h "$OUT/pg" -p "$PGPORT" -U mcpd -d postgres -qAt -c "CREATE DATABASE $name" >/dev/null
	echo "${PGURL%/mcpd*}/$name?sslmode=disable"
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 30000)); }

wait_healthy() { # URL
	for _ in $(seq 200); do
		if curl -sf -o /dev/null "$1/healthz"; then return 0; fi
		sleep 0.05
	done
	echo "no healthy $1/healthz" >&2
	return 1
}

SERVERS=()
# serve ISSUER PORT ARGS...: a fresh mcpd serve.
serve() {
	local issuer=$1 port=$2
	shift 2
	MCPD_INITIAL_PASSWORD=$LOADGEN_PASSWORD "$SERVE_BIN" serve --listen 127.0.0.1:"$port" --issuer "$issuer" \
		--data "$OUT/data-$RANDOM$RANDOM" --log-level warn --mcp-stateless true \
		--registrations-per-minute 100000000 --registrations-per-minute-total 100000000 --max-clients 100000000 "$@" >>"$OUT/serve.log" 2>&1 &
	PIDS+=($!)
	SERVERS+=($!)
	wait_healthy "http://127.0.0.1:$port"
}

# haproxy PORT BACKEND_PORT...: round robin over the backends.
haproxy_on() {
	local port=$1
	shift
	{
		printf 'global\n    maxconn 4000\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n'
		printf 'frontend mcpd\n    bind 127.0.0.1:%s\n    default_backend replicas\n' "$port"
		printf 'backend replicas\n    balance roundrobin\n'
		local i=0
		for b in "$@"; do i=$((i + 1)); printf '    server r%s 127.0.0.1:%s\n' "$i" "$b"; done
	} >"$OUT/haproxy-$port.cfg"
	haproxy -f "$OUT/haproxy-$port.cfg" -db >>"$OUT/haproxy.log" 2>&1 &
	PIDS+=($!)
	SERVERS+=($!)
	wait_healthy "http://127.0.0.1:$port"
}

stop_all() {
	for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${SERVERS[@]}"; do wait "$p" 2>/dev/null || true; done
	SERVERS=()
}

# start VARIANT: starts it; sets TARGET and SERVER_PID (the one replica, or
# the first of three).
start() {
	local lb v=$1
	SERVE_BIN=$BIN
	if [ "${v%-base}" != "$v" ]; then
		SERVE_BIN=$OUT/mcpd-base
		v=${v%-base}
	fi
	case $v in
	bolt)
		local p=$(free_port)
		TARGET=http://127.0.0.1:$p
		serve "$TARGET" "$p"
		SERVER_PID=${SERVERS[0]}
		;;
	pg1)
		local p=$(free_port) db=$(fresh_db)
		TARGET=http://127.0.0.1:$p
		serve "$TARGET" "$p" --database "$db"
		SERVER_PID=${SERVERS[0]}
		;;
	pg1-lb | pg3-lb)
		local n=1 db=$(fresh_db) ports=()
		[ "$v" = pg3-lb ] && n=3
		lb=$(free_port)
		TARGET=http://127.0.0.1:$lb
		for _ in $(seq $n); do
			local p=$(free_port)
			ports+=("$p")
			serve "$TARGET" "$p" --database "$db"
		done
		SERVER_PID=${SERVERS[0]}
		haproxy_on "$lb" "${ports[@]}"
		;;
	esac
}

for run in $(seq "$RUNS"); do
	echo "# run $run of $RUNS" >&2
	for sc in $ONLY; do
		for v in $VARIANTS; do
			start "$v"
			dbpid=0
			[ "${v%-base}" != bolt ] && dbpid=$(head -1 "$OUT/pg/data/postmaster.pid")
			"$LOADGEN" run -scenario "$sc" -target "$TARGET" -c "$WORKERS" -d "$DUR" -warmup "$WARMUP" \
				-n "$MAXREQ" -pid "$SERVER_PID" -db-pid "$dbpid" -label "$v" | tee -a "$RESULTS" | cut -c1-160 >&2
			stop_all
		done
	done
done

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3-), $("$PGBIN/postgres" --version), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "settings: RUNS=$RUNS DUR=$DUR WARMUP=$WARMUP WORKERS=$WORKERS (server CPU of pg3-lb is the first replica's only)"
"$LOADGEN" summarize \
	-ratio "refresh: PostgreSQL, one replica / bbolt=refresh/pg1:refresh/bolt" \
	-ratio "refresh: three replicas / one (behind HAProxy)=refresh/pg3-lb:refresh/pg1-lb" \
	-ratio "client_credentials: PostgreSQL, one replica / bbolt=client-credentials/pg1:client-credentials/bolt" \
	-ratio "client_credentials: three replicas / one (behind HAProxy)=client-credentials/pg3-lb:client-credentials/pg1-lb" \
	-ratio "tools/call whoami: PostgreSQL, one replica / bbolt=whoami/pg1:whoami/bolt" \
	-ratio "tools/call whoami: three replicas / one (behind HAProxy)=whoami/pg3-lb:whoami/pg1-lb" \
	<"$RESULTS"
