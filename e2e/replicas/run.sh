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
#      (e2e/clients/ts-client-v2.mjs --pin) does the same, every replica
#      serving some of it;
#   3. e2e/replicas/checks.mjs: concurrent refreshes of one token on two
#      replicas, client revoke refused by every replica within 1 s, and a
#      replica SIGKILLed in the middle of a run of grants with none lost;
#   4. `mcpd migrate-to-postgres` of the database release v1 wrote
#      (store/testdata/release-v1.db.gz) into a new database, which then
#      lists its users, and its refusal to copy into that database again;
#      then a server on that database takes the release's tokens and codes
#      (store/testdata/release-v1.json): a live refresh token rotates, live
#      tokens serve MCP, revoked and expired ones get 401, the live code
#      exchanges, the used one revokes its grant.
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

pgenv="$(bash scripts/pgcluster.sh start "$work/pg")" || { echo "replicas: PostgreSQL did not start" >&2; exit 1; }
eval "$pgenv"
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
echo "=== ts-client-v2 --pin (TypeScript client 2.x pinned to 2026-07-28) through the balancer"
"$NODE" e2e/clients/ts-client-v2.mjs --pin
rc=$?
name="ts-client-v2 pinned to 2026-07-28"
record "$name: the whole flow" $rc
spread "$name" "$before"

# --- 3. concurrency, revocation, a killed replica ---------------------------
echo "=== checks: concurrent refresh, revoke everywhere, SIGKILL a replica"
MCPD_REPLICAS="$(IFS=,; echo "${replica_urls[*]}")" MCPD_REPLICA_PIDS="$(IFS=,; echo "${pids[*]}")" \
  MCPD_BIN="$MCPD" MCPD_DATABASE="$DB" "$NODE" e2e/replicas/checks.mjs | tee "$work/checks.out"
# A checks.mjs that dies before its first line would otherwise record nothing.
record "checks.mjs ran to completion" "${PIPESTATUS[0]}"
while IFS= read -r line; do
  case "$line" in
    "ok - "*) record "${line#ok - }" 0 ;;
    "not ok - "*) record "${line#not ok - }" 1 ;;
  esac
done <"$work/checks.out"

# --- 4. the release's bbolt database moved to PostgreSQL ---------------------
echo "=== migrate-to-postgres of the database release v1 wrote, then served"
fixture=store/testdata/release-v1.db.gz
secrets=store/testdata/release-v1.json
mkdir -p "$work/release" "$work/release-serve"
gunzip -c "$fixture" >"$work/release/mcpd.db"
chmod 0600 "$work/release/mcpd.db"
psql_admin "CREATE DATABASE release_v1" >/dev/null
release_db="${DB%/mcpd*}/release_v1?sslmode=disable"
"$MCPD" migrate-to-postgres --data "$work/release" --database "$release_db" | tee "$work/migrate.out"
record "migrate-to-postgres of $fixture into an empty database" "${PIPESTATUS[0]}" "$(tr -d '\n' <"$work/migrate.out" | cut -c1-120)"
"$MCPD" migrate-to-postgres --data "$work/release" --database "$release_db" >/dev/null 2>"$work/migrate-again.err"
[[ $? -ne 0 ]] && grep -q "not empty" "$work/migrate-again.err"
record "migrate-to-postgres refuses a database that is not empty" $?
users="$("$MCPD" user list --json --database "$release_db" 2>&1)"
[[ "$(jq -c 'map(.name)|sort' <<<"$users" 2>/dev/null)" == "$(jq -c '.users|keys|sort' "$secrets")" ]]
record "the migrated database lists the release's users" $? "$(jq -c 'map(.name)' <<<"$users" 2>/dev/null)"

# The release's records, used on a server of the migrated database (under
# the release's issuer, the audience of its tokens).
port="$(free_port)"
release_url="http://127.0.0.1:$port"
"$MCPD" serve --listen "127.0.0.1:$port" --issuer "$(jq -r .issuer "$secrets")" --data "$work/release-serve" \
  --database "$release_db" --mcp-stateless true --log-format json >"$work/release-serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "$release_url/healthz" 2>/dev/null && break; sleep 0.1; done
grant() { jq -r --arg n "$1" ".grants[] | select(.name == \$n) | .$2" "$secrets"; }
code() { jq -r ".codes[] | select(.used == $1) | .$2" "$secrets"; }
# mcp_status TOKEN: the status of an MCP initialize with TOKEN.
mcp_status() {
  curl -sS -o /dev/null -w '%{http_code}' -X POST "$release_url/mcp" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}'
}
# token_post FORM...: the body of a /token answer, its status last.
token_post() {
  local -a form=()
  local f
  for f in "$@"; do form+=(--data-urlencode "$f"); done
  curl -sS -w '\n%{http_code}' -X POST "$release_url/token" "${form[@]}"
}
out="$(token_post grant_type=refresh_token "refresh_token=$(grant admin-public refresh_token)" "client_id=$(grant admin-public client_id)")"
new_access="$(head -1 <<<"$out" | jq -r '.access_token // empty' 2>/dev/null)"
[[ "$(tail -1 <<<"$out")" == 200 && -n "$new_access" && "$(mcp_status "$new_access")" == 200 ]]
record "migrated: the release's live refresh token rotates, and the new access token serves MCP" $? "$(tail -1 <<<"$out")"
[[ "$(mcp_status "$(grant client-credentials access_token)")" == 200 ]]
record "migrated: the release's client_credentials token serves MCP" $?
[[ "$(mcp_status "$(grant admin-public-revoked access_token)")" == 401 && "$(mcp_status "$(grant client-credentials-expired access_token)")" == 401 ]]
record "migrated: the release's revoked and expired tokens get 401" $?
out="$(token_post grant_type=authorization_code "code=$(code false code)" "code_verifier=$(code false code_verifier)" \
  "redirect_uri=$(code false redirect_uri)" "client_id=$(code false client_id)" "resource=$(jq -r .issuer "$secrets")/mcp")"
[[ "$(tail -1 <<<"$out")" == 200 ]]
record "migrated: the release's live code exchanges for tokens" $? "$(tail -1 <<<"$out")"
alice="$(grant alice-public access_token)"
before_reuse="$(mcp_status "$alice")"
out="$(token_post grant_type=authorization_code "code=$(code true code)" "code_verifier=$(code true code_verifier)" \
  "redirect_uri=$(code true redirect_uri)" "client_id=$(code true client_id)" "resource=$(jq -r .issuer "$secrets")/mcp")"
[[ "$before_reuse" == 200 && "$(tail -1 <<<"$out")" == 400 && "$(mcp_status "$alice")" == 401 ]]
record "migrated: the code the release saw used, presented again, revokes its grant" $? "alice's token $before_reuse before, $(mcp_status "$alice") after"

if ! kill -0 "${pids[0]}" 2>/dev/null || ! kill -0 "${pids[1]}" 2>/dev/null; then
  record "the replicas not killed stayed up" 1
fi
finish
