#!/usr/bin/env bash
# bench/run.sh — the load figures of docs/benchmarks.md, over loopback.
#
# Builds mcpd and bench/loadgen, then runs every scenario RUNS times
# (interleaved, so drift hits every variant alike) and prints a table of
# medians and the ratios the goals are stated in. Raw results (one JSON
# line per run) go to $OUT/results.jsonl.
#
#   bash bench/run.sh                 # everything, RUNS=3, DUR=10s
#   RUNS=5 DUR=20s bash bench/run.sh
#   ONLY=mcp bash bench/run.sh        # mcp | token | dpop | system
#
# Every server listens on 127.0.0.1 with a fresh data directory under $OUT;
# every load loop is bounded by DUR and by MAXREQ requests. The DPoP
# scenarios sign DPOP_PROOFS proofs ahead (good for a minute): keep
# WARMUP + DUR under 45 s, and DPOP_PROOFS above the requests a run makes
# (a result's live_proofs counts those signed inside the run instead).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
DUR=${DUR:-10s}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-16}
MAXREQ=${MAXREQ:-1000000}
DPOP_PROOFS=${DPOP_PROOFS:-80000}
ONLY=${ONLY:-all}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mcpd-bench.XXXXXX")}
PORT_SERVE=${PORT_SERVE:-18181}
PORT_HOST=${PORT_HOST:-18182}
export LOADGEN_PASSWORD=bench-pw

mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
BIN=$OUT/mcpd
LOADGEN=$OUT/loadgen

echo "# building into $OUT" >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN" ./cmd/mcpd && go build -o "$LOADGEN" ./bench/loadgen)

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

wait_healthy() { # URL
	for _ in $(seq 200); do
		if curl -sf -o /dev/null "$1/healthz"; then return 0; fi
		sleep 0.05
	done
	echo "no healthy $1/healthz" >&2
	return 1
}

# start_serve LABEL ENV... -- ARGS...: a fresh mcpd serve on PORT_SERVE.
start_serve() {
	local label=$1
	shift
	local envs=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	local data=$OUT/data-$label-$RANDOM
	env "${envs[@]}" MCPD_INITIAL_PASSWORD=$LOADGEN_PASSWORD "$BIN" serve \
		--listen 127.0.0.1:$PORT_SERVE --data "$data" --log-level warn \
		--registrations-per-minute 100000000 --registrations-per-minute-total 100000000 --max-clients 100000000 "$@" \
		>>"$OUT/serve.log" 2>&1 &
	SERVE_PID=$!
	PIDS+=("$SERVE_PID")
	wait_healthy "http://127.0.0.1:$PORT_SERVE"
}

# start_host LABEL ENV... -- ARGS...: the side-by-side handlers on PORT_HOST.
start_host() {
	local label=$1
	shift
	local envs=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	env "${envs[@]}" "$LOADGEN" host -listen 127.0.0.1:$PORT_HOST -data "$OUT/host-$label-$RANDOM" "$@" \
		>>"$OUT/host.log" 2>&1 &
	HOST_PID=$!
	PIDS+=("$HOST_PID")
	wait_healthy "http://127.0.0.1:$PORT_HOST"
}

stop() { # PID
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

load() { # TARGET PID LABEL SCENARIO [extra loadgen flags]
	local target=$1 pid=$2 label=$3 scenario=$4
	shift 4
	"$LOADGEN" run -scenario "$scenario" -target "$target" -c "$WORKERS" -d "$DUR" -warmup "$WARMUP" \
		-n "$MAXREQ" -dpop-proofs "$DPOP_PROOFS" -pid "$pid" -label "$label" "$@" | tee -a "$RESULTS" | cut -c1-160 >&2
}

# The untuned default is mcpd as it was before the tuning: Go's default
# GC (GOGC=100, no memory limit), SSE answers, sessions.
UNTUNED_ENV=(GOGC=100 GOMEMLIMIT=off)
UNTUNED_ARGS=(--mcp-json-response false --mcp-stateless false)

for run in $(seq "$RUNS"); do
	echo "# run $run of $RUNS" >&2
	if [ "$ONLY" = all ] || [ "$ONLY" = mcp ]; then
		# 1. Side by side in one process: plain net/http, MCP without and
		#    with authentication; untuned and with mcpd's runtime defaults.
		for variant in untuned tuned; do
			if [ $variant = untuned ]; then
				start_host $variant "${UNTUNED_ENV[@]}" --
			else
				# mcpd serve's defaults (cmd/mcpd/runtime.go); the host is
				# not mcpd, so they are given by environment here.
				start_host $variant GOGC=400 GOMEMLIMIT=24MiB --
			fi
			for sc in plain whoami-noauth whoami whoami-2026; do
				load "http://127.0.0.1:$PORT_HOST" "$HOST_PID" "host-$variant" $sc
			done
			stop "$HOST_PID"
		done
		# 2. The real mcpd serve process: untuned vs its shipped defaults,
		#    and stateless.
		start_serve untuned "${UNTUNED_ENV[@]}" -- "${UNTUNED_ARGS[@]}"
		load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve-untuned whoami
		stop "$SERVE_PID"
		# The default serve answers both protocol eras: a 2025 session
		# request and a 2026-07-28 stateless request, side by side.
		start_serve tuned --
		load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve-tuned whoami
		load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve-tuned whoami-2026
		stop "$SERVE_PID"
		start_serve stateless -- --mcp-stateless true
		load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve-tuned-stateless whoami
		stop "$SERVE_PID"
		start_serve json -- --mcp-json-response true
		load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve-tuned-json whoami
		stop "$SERVE_PID"
	fi
	if [ "$ONLY" = all ] || [ "$ONLY" = token ]; then
		# 3. The OAuth endpoints of mcpd serve (shipped defaults), durable
		#    bbolt commits, each on a fresh server and database.
		for sc in refresh client-credentials introspect register; do
			start_serve $sc --
			load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve $sc
			stop "$SERVE_PID"
		done
	fi
	if [ "$ONLY" = all ] || [ "$ONLY" = dpop ]; then
		# 4. DPoP (issue 13), each pair side by side in this run, the
		#    order alternating between runs so drift hits both alike:
		#    tools/call whoami with a DPoP-bound token and a proof per
		#    call vs a bearer token, on one mcpd serve; client_credentials
		#    and refresh with and without a proof, each on a fresh server.
		if [ $((run % 2)) -eq 1 ]; then pair=(plain dpop); else pair=(dpop plain); fi
		start_serve dpop --
		for v in "${pair[@]}"; do
			if [ "$v" = dpop ]; then sc=whoami-dpop; else sc=whoami; fi
			load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve-dpop $sc
		done
		stop "$SERVE_PID"
		for base in client-credentials refresh; do
			for v in "${pair[@]}"; do
				if [ "$v" = dpop ]; then sc=$base-dpop; else sc=$base; fi
				start_serve $sc --
				load "http://127.0.0.1:$PORT_SERVE" "$SERVE_PID" serve-dpop $sc
				stop "$SERVE_PID"
			done
		done
	fi
done

if [ "$ONLY" = all ] || [ "$ONLY" = system ]; then
	# 4. Idle RSS (3 s after a first start, which hashes the first
	#    password, and after a restart on the same data), cold start, raw
	#    bbolt commits on the disk of $OUT.
	for run in $(seq "$RUNS"); do
		data=$OUT/data-idle-$run
		for phase in first restart; do
			MCPD_INITIAL_PASSWORD=$LOADGEN_PASSWORD "$BIN" serve --listen 127.0.0.1:$PORT_SERVE --data "$data" \
				--log-level warn >>"$OUT/serve.log" 2>&1 &
			SERVE_PID=$!
			PIDS+=("$SERVE_PID")
			wait_healthy "http://127.0.0.1:$PORT_SERVE"
			sleep 3
			rss=$(awk '/^VmRSS:/ {print $2}' /proc/$SERVE_PID/status)
			echo "{\"scenario\":\"idle\",\"label\":\"$phase\",\"rss_idle_kb\":$rss}" | tee -a "$RESULTS" >&2
			stop "$SERVE_PID"
		done
	done
	"$LOADGEN" coldstart -bin "$BIN" -first 7 -n 7 -dir "$OUT" | tee -a "$RESULTS" >&2
	for run in $(seq "$RUNS"); do
		"$LOADGEN" bolt -dir "$OUT" -n 2000 | tee -a "$RESULTS" >&2
	done
fi

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3-), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "settings: RUNS=$RUNS DUR=$DUR WARMUP=$WARMUP WORKERS=$WORKERS"
"$LOADGEN" summarize \
	-ratio "authenticated / no auth (host, untuned)=whoami/host-untuned:whoami-noauth/host-untuned" \
	-ratio "authenticated / no auth (host, tuned)=whoami/host-tuned:whoami-noauth/host-tuned" \
	-ratio "MCP vs plain ceiling (host, tuned)=whoami/host-tuned:plain/host-tuned" \
	-ratio "tuned / untuned (host)=whoami/host-tuned:whoami/host-untuned" \
	-ratio "tuned / untuned (mcpd serve)=whoami/serve-tuned:whoami/serve-untuned" \
	-ratio "stateless / stateful (mcpd serve, tuned)=whoami/serve-tuned-stateless:whoami/serve-tuned" \
	-ratio "2026-07-28 / 2025 session (mcpd serve, tuned)=whoami-2026/serve-tuned:whoami/serve-tuned" \
	-ratio "2026-07-28 / 2025 session (host, tuned)=whoami-2026/host-tuned:whoami/host-tuned" \
	-ratio "2026-07-28 vs plain ceiling (host, tuned)=whoami-2026/host-tuned:plain/host-tuned" \
	-ratio "JSON / SSE answers (mcpd serve, tuned)=whoami/serve-tuned-json:whoami/serve-tuned" \
	-ratio "refresh / raw bbolt commit=refresh/serve:bolt-commit/" \
	-ratio "client_credentials / raw bbolt commit=client-credentials/serve:bolt-commit/" \
	-ratio "DPoP / bearer, tools/call whoami (goal ≥ 0.85)=whoami-dpop/serve-dpop:whoami/serve-dpop" \
	-ratio "DPoP / bearer, client_credentials (goal ≥ 0.8)=client-credentials-dpop/serve-dpop:client-credentials/serve-dpop" \
	-ratio "DPoP / bearer, refresh (goal ≥ 0.8)=refresh-dpop/serve-dpop:refresh/serve-dpop" \
	<"$RESULTS"
