#!/usr/bin/env bash
# e2e/replicas/run.sh — three `mcpd serve --mcp-stateless true --database …`
# replicas on one PostgreSQL behind a real HAProxy (round robin, no
# stickiness), driven by real clients. Called by `make e2e-replicas` and
# .ci/run; takes about a minute.
#
# What it starts, all on 127.0.0.1 and all stopped at exit:
#   - a throw-away PostgreSQL cluster (scripts/pgcluster.sh), as the user
#     postgres when run as root;
#   - three replicas, each with its own data directory and log, one issuer
#     (the balancer's URL), --access-token-ttl 3s so the clients refresh,
#     and room for the run's registrations (the limit counts per replica:
#     the run registers some 30 clients from one address in a minute);
#   - HAProxy: balance roundrobin, health checks on /healthz, a request
#     that could not reach a replica retried on another (retry-on
#     conn-failure, option redispatch).
#
# What it checks (one `ok`/`not ok` line each, then `N passed, N failed`):
#   1. the TypeScript SDK 1.x client (e2e/clients/ts-client.mjs) does the
#      whole flow through the balancer, and `mcpd client revoke --database`
#      ends it; every replica served some of its MCP requests;
#   2. the TypeScript client 2.x pinned to 2026-07-28
#      (e2e/clients/ts-client-v2.mjs --pin; while that client is not in the
#      tree, the 2.x DPoP client e2e/clients/ts-client-dpop.mjs) does the
#      same, every replica serving some of it;
#   3. e2e/replicas/checks.mjs: concurrent refreshes of one token on two
#      replicas, client revoke refused by every replica within 1 s, and a
#      replica SIGKILLed in the middle of a run of grants with none lost;
#   4. `mcpd migrate-to-postgres` of the database release v1 wrote
#      (store/testdata/release-v1.db.gz; while it is not in the tree, one
#      this build writes) into a new database, which then lists its users,
#      and its refusal to copy into that database again.
#
# Environment: REPLICAS_KEEP=1 keeps the work directory.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="/usr/local/go/bin:$PATH"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

log() { echo "replicas: $*" >&2; }
work="$(mktemp -d /tmp/mcpd-replicas.XXXXXX)"
chmod 0755 "$work"
pids=()
haproxy_pid=""

cleanup() {
  for p in "${pids[@]}" $haproxy_pid; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}" $haproxy_pid; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  bash scripts/pgcluster.sh stop "$work/pg" >/dev/null 2>&1
  if [[ "${REPLICAS_KEEP:-}" == 1 ]]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

passed=0
failed=0
results=()
record() { # name status(0 ok) [note]
  if [[ "$2" == 0 ]]; then passed=$((passed + 1)); results+=("ok     $1${3:+  ($3)}")
  else failed=$((failed + 1)); results+=("FAILED $1${3:+  ($3)}"); fi
}
finish() {
  echo
  echo "=== replicas summary"
  printf '  %s\n' "${results[@]}"
  echo "$passed passed, $failed failed"
  if [[ $failed -ne 0 ]]; then
    for i in 1 2 3; do echo "--- replica $i log (last 15 lines)"; tail -15 "$work/r$i.log" 2>/dev/null; done
    exit 1
  fi
  exit 0
}

# --- toolchain, database ---------------------------------------------------
NODE="$(bash e2e/node/install.sh)" || { echo "replicas: installing e2e/node failed" >&2; exit 1; }
ln -sfn ../node/node_modules e2e/clients/node_modules
log "building bin/mcpd"
go build -o bin/mcpd ./cmd/mcpd || { echo "replicas: go build failed" >&2; exit 1; }
MCPD="$root/bin/mcpd"
command -v haproxy >/dev/null || { echo "replicas: haproxy is not installed" >&2; exit 1; }

eval "$(bash scripts/pgcluster.sh start "$work/pg")" || { echo "replicas: PostgreSQL did not start" >&2; exit 1; }
DB="$MCPD_TEST_DATABASE"
psql_admin() { # SQL: run on the cluster as its superuser, through its socket
  local port="${DB##*@127.0.0.1:}"
  "$PGBIN/psql" -h "$work/pg" -p "${port%%/*}" -U mcpd -d postgres -qAt -c "$1"
}

free_port() { "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
lb_port="$(free_port)"
issuer="http://127.0.0.1:$lb_port"
password="e2e-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export MCPD_E2E_USER=alice MCPD_E2E_PASSWORD="$password"

# --- replicas ----------------------------------------------------------------
replica_urls=()
for i in 1 2 3; do
  port="$(free_port)"
  mkdir -p "$work/r$i"
  MCPD_INITIAL_PASSWORD="admin-$password" "$MCPD" serve --listen "127.0.0.1:$port" --issuer "$issuer" \
    --data "$work/r$i" --database "$DB" --mcp-stateless true --access-token-ttl 3s \
    --registrations-per-minute 600 \
    --log-format json >"$work/r$i.log" 2>&1 &
  pids+=($!)
  replica_urls+=("http://127.0.0.1:$port")
done
for i in 0 1 2; do
  healthy=""
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null "${replica_urls[$i]}/healthz" 2>/dev/null; then healthy=1; break; fi
    kill -0 "${pids[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$healthy" ]]; then
    echo "replicas: replica $((i + 1)) did not become healthy; its log:" >&2
    cat "$work/r$((i + 1)).log" >&2
    exit 1
  fi
done
log "three replicas healthy: ${replica_urls[*]}"

# --- balancer ----------------------------------------------------------------
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    retry-on conn-failure
    option redispatch
frontend mcpd
    bind 127.0.0.1:$lb_port
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2
    server r1 ${replica_urls[0]#http://} check
    server r2 ${replica_urls[1]#http://} check
    server r3 ${replica_urls[2]#http://} check
EOF
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null "$issuer/healthz" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "$issuer/healthz" || { echo "replicas: HAProxy does not answer; its log:" >&2; cat "$work/haproxy.log" >&2; exit 1; }
log "HAProxy round robin at $issuer, every path balanced"

printf '%s\n' "$password" | "$MCPD" user add alice --password-stdin --database "$DB" >"$work/user-add.log" 2>&1
record "mcpd user add alice --database (no admin socket)" $? "$(tr -d '\n' <"$work/user-add.log")"

# served_mcp I: the /mcp requests replica I has logged so far.
served_mcp() { grep -c '"path":"/mcp"' "$work/r$1.log" 2>/dev/null || true; }
snapshot() { for i in 1 2 3; do printf '%s ' "$(served_mcp "$i")"; done; }
# spread NAME BEFORE: every replica served /mcp requests since BEFORE.
spread() {
  local -a before=($2) counts=()
  local ok=0 i
  for i in 1 2 3; do
    counts+=("$(( $(served_mcp "$i") - before[i-1] ))")
    [[ ${counts[-1]} -gt 0 ]] || ok=1
  done
  record "$1: every replica served its MCP requests" $ok "per replica: ${counts[*]}"
}

export MCPD_URL="$issuer"
state="$work/state"
mkdir -p "$state"
export MCPD_E2E_STATE_DIR="$state"

# --- 1. the TypeScript SDK 1.x ------------------------------------------------
echo "=== ts-client (TypeScript SDK 1.x) through the balancer"
before="$(snapshot)"
"$NODE" e2e/clients/ts-client.mjs >"$work/ts-client.out" 2>"$work/ts-client.err" &
client_pid=$!
for _ in $(seq 600); do
  [[ -f "$state/ts-client.ready-for-revoke" ]] && break
  kill -0 "$client_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -f "$state/ts-client.ready-for-revoke" ]]; then
  id="$(tr -d '\n' <"$state/ts-client.ready-for-revoke")"
  "$MCPD" client revoke "$id" --database "$DB" >>"$work/ts-client.runner" 2>&1
  record "ts-client: mcpd client revoke --database" $?
  touch "$state/ts-client.revoked"
fi
wait "$client_pid"
rc=$?
cat "$work/ts-client.out"
[[ $rc -ne 0 ]] && sed 's/^/# stderr: /' "$work/ts-client.err" | tail -20
record "ts-client (TypeScript SDK 1.x): the whole flow" $rc
spread "ts-client" "$before"

# --- 2. the TypeScript client 2.x --------------------------------------------
before="$(snapshot)"
if [[ -f e2e/clients/ts-client-v2.mjs ]]; then
  echo "=== ts-client-v2 --pin (TypeScript client 2.x pinned to 2026-07-28) through the balancer"
  "$NODE" e2e/clients/ts-client-v2.mjs --pin
  rc=$?
  name="ts-client-v2 pinned to 2026-07-28"
else
  echo "=== ts-client-dpop (TypeScript client 2.x with DPoP) through the balancer"
  "$NODE" e2e/clients/ts-client-dpop.mjs
  rc=$?
  name="ts-client-dpop (TypeScript client 2.x)"
fi
record "$name: the whole flow" $rc
spread "$name" "$before"

# --- 3. concurrency, revocation, a killed replica ---------------------------
echo "=== checks: concurrent refresh, revoke everywhere, SIGKILL a replica"
MCPD_REPLICAS="$(IFS=,; echo "${replica_urls[*]}")" MCPD_REPLICA_PIDS="$(IFS=,; echo "${pids[*]}")" \
  MCPD_BIN="$MCPD" MCPD_DATABASE="$DB" "$NODE" e2e/replicas/checks.mjs | tee "$work/checks.out"
while IFS= read -r line; do
  case "$line" in
    "ok - "*) record "${line#ok - }" 0 ;;
    "not ok - "*) record "${line#not ok - }" 1 ;;
  esac
done <"$work/checks.out"

# --- 4. the release's bbolt database moved to PostgreSQL ---------------------
fixture=store/testdata/release-v1.db.gz
mkdir -p "$work/release"
if [[ -f "$fixture" ]]; then
  echo "=== migrate-to-postgres of the database release v1 wrote"
  gunzip -c "$fixture" >"$work/release/mcpd.db"
  chmod 0600 "$work/release/mcpd.db"
  what="store/testdata/release-v1.db.gz"
else
  echo "=== migrate-to-postgres of a bbolt database this build wrote ($fixture is not in the tree yet)"
  printf 'pw\n' | "$MCPD" user add carol --password-stdin --data "$work/release" >/dev/null
  what="a bbolt database this build wrote"
fi
if true; then
  psql_admin "CREATE DATABASE release_v1" >/dev/null
  release_db="${DB%/mcpd*}/release_v1?sslmode=disable"
  "$MCPD" migrate-to-postgres --data "$work/release" --database "$release_db" | tee "$work/migrate.out"
  record "migrate-to-postgres of $what into an empty database" "${PIPESTATUS[0]}" "$(tr -d '\n' <"$work/migrate.out" | cut -c1-120)"
  "$MCPD" migrate-to-postgres --data "$work/release" --database "$release_db" >/dev/null 2>"$work/migrate-again.err"
  [[ $? -ne 0 ]] && grep -q "not empty" "$work/migrate-again.err"
  record "migrate-to-postgres refuses a database that is not empty" $?
  users="$("$MCPD" user list --json --database "$release_db" 2>&1)"
  [[ "$(jq 'length' <<<"$users" 2>/dev/null || echo 0)" -gt 0 ]]
  record "the migrated database lists its users" $? "$(jq -c 'map(.name)' <<<"$users" 2>/dev/null)"
fi

if ! kill -0 "${pids[0]}" 2>/dev/null || ! kill -0 "${pids[1]}" 2>/dev/null; then
  record "the replicas not killed stayed up" 1
fi
finish
