#!/usr/bin/env bash
# Real MCP clients against a real `mcpd serve` started from the built binary
# with a temporary data directory. Called by `make e2e`.
#
#   bash e2e/clients/run.sh            # every client
#   bash e2e/clients/run.sh ts-client  # only the named ones:
#       ts-client ts-client-v2 ts-client-v2-pinned ts-client-dpop
#       ts-client-dpop-nonce mcp-remote
#       conformance-authorization vscode-replay
#
# The server runs with a 3-second access-token lifetime (--access-token-ttl 3s)
# so that the clients' refresh paths are exercised. MCPD_E2E_SERVE_FLAGS
# replaces the extra serve flags; MCPD_E2E_KEEP=1 keeps the work directory.
#
# MCPD_E2E_ISSUER_PATH=/mcpd puts nginx in front and serves mcpd under that
# path with the configuration docs/operations.md ("Behind a reverse proxy")
# shows: the issuer is http://127.0.0.1:NGINX_PORT/mcpd and every client
# goes through nginx (MCP 2026-07-28, SEP-2351).
# Prints one line per client and scenario and a summary `N passed, N failed`;
# exits non-zero when anything failed.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="/usr/local/go/bin:$PATH"

all_clients=(ts-client ts-client-v2 ts-client-v2-pinned ts-client-dpop ts-client-dpop-nonce mcp-remote conformance-authorization vscode-replay)
if [[ $# -gt 0 ]]; then clients=("$@"); else clients=("${all_clients[@]}"); fi

log() { echo "e2e: $*" >&2; }

work="$(mktemp -d /tmp/mcpd-e2e.XXXXXX)"
data="$work/data"
state="$work/state"
mkdir -p "$data" "$state"
server_pid=""
extra_pids=()

cleanup() {
  if [[ -n "${nginx_pid:-}" ]] && kill -0 "$nginx_pid" 2>/dev/null; then kill "$nginx_pid" 2>/dev/null; fi
  for p in "${extra_pids[@]}"; do kill "$p" 2>/dev/null; done
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  if [[ "${MCPD_E2E_KEEP:-}" == 1 ]]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- toolchain -------------------------------------------------------------
NODE="$(bash e2e/node/install.sh)" || { echo "e2e: installing e2e/node failed" >&2; exit 1; }
export NODE
# ESM resolves packages from the importing file's folder upwards; give
# e2e/clients the pinned packages of e2e/node (node_modules is gitignored).
ln -sfn ../node/node_modules e2e/clients/node_modules

log "building bin/mcpd"
go build -o bin/mcpd ./cmd/mcpd || { echo "e2e: go build failed" >&2; exit 1; }
MCPD="$root/bin/mcpd"

free_port() { "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
issuer="http://127.0.0.1:$port"
issuer_path="${MCPD_E2E_ISSUER_PATH:-}"
nginx_pid=""
if [[ -n "$issuer_path" ]]; then
  [[ "$issuer_path" =~ ^(/[A-Za-z0-9._-]+)+$ ]] || { echo "e2e: MCPD_E2E_ISSUER_PATH must look like /mcpd" >&2; exit 2; }
  front="$(free_port)"
  mkdir -p "$work/nginx"
  # One foreground process as the invoking user, everything under $work.
  # The server blocks are docs/operations.md's, for this port and path.
  locations="$(sed -n '/^```nginx$/,/^```$/p' docs/operations.md | sed '1d;$d' |
    sed -e "s#127\.0\.0\.1:8080#127.0.0.1:$port#g" -e "s#/mcpd#$issuer_path#g")"
  [[ -n "$locations" ]] || { echo "e2e: no nginx block in docs/operations.md" >&2; exit 1; }
  cat >"$work/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$front;
$locations
  }
}
NGINX
  nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" >"$work/nginx/stdout.log" 2>&1 &
  nginx_pid=$!
  issuer="http://127.0.0.1:$front$issuer_path"
fi
export MCPD_URL="$issuer"
export MCPD_E2E_USER=alice
MCPD_E2E_PASSWORD="e2e-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export MCPD_E2E_PASSWORD
export MCPD_E2E_STATE_DIR="$state"
export MCPD_BIN="$MCPD" MCPD_DATA="$data"

# --- server ----------------------------------------------------------------
read -r -a serve_flags <<<"${MCPD_E2E_SERVE_FLAGS---access-token-ttl 3s}"
log "starting mcpd serve --listen 127.0.0.1:$port --issuer $issuer --data $data ${serve_flags[*]}"
"$MCPD" serve --listen "127.0.0.1:$port" --issuer "$issuer" --data "$data" "${serve_flags[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
healthy=""
for _ in $(seq 100); do
  # Through nginx too, when it is in front.
  if curl -fsS -o /dev/null "$issuer/healthz" 2>/dev/null; then healthy=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$healthy" ]]; then
  echo "e2e: server did not become healthy; its log:" >&2
  cat "$work/server.log" >&2
  [[ -n "$nginx_pid" ]] && cat "$work/nginx/error.log" >&2
  exit 1
fi
log "server healthy at $issuer"
# Through the admin socket of the running server.
printf '%s\n' "$MCPD_E2E_PASSWORD" | "$MCPD" user add alice --password-stdin --data "$data" >"$work/user-add.log" 2>&1 || {
  echo "e2e: mcpd user add failed:" >&2; cat "$work/user-add.log" >&2; exit 1; }

passed=0
failed=0
results=()
record() { # name status(0 ok) [note]
  if [[ "$2" == 0 ]]; then passed=$((passed + 1)); results+=("ok     $1${3:+  ($3)}")
  else failed=$((failed + 1)); results+=("FAILED $1${3:+  ($3)}"); fi
}

# --- clients ---------------------------------------------------------------
run_ts_client() {
  rm -f "$state"/ts-client.*
  "$NODE" e2e/clients/ts-client.mjs >"$work/ts-client.out" 2>"$work/ts-client.err" &
  local pid=$! id=""
  # Wait for the client to reach the revocation step, then revoke it as an operator would.
  for _ in $(seq 600); do
    [[ -f "$state/ts-client.ready-for-revoke" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -f "$state/ts-client.ready-for-revoke" ]]; then
    id="$(tr -d '\n' <"$state/ts-client.ready-for-revoke")"
    if "$MCPD" client list --json --data "$data" 2>>"$work/ts-client.err" | jq -e --arg id "$id" 'map(.id) | index($id) != null' >/dev/null; then
      echo "ok - mcpd client list --json lists $id" >>"$work/ts-client.runner"
    else
      echo "not ok - mcpd client list --json lists $id" >>"$work/ts-client.runner"
    fi
    if "$MCPD" client revoke "$id" --data "$data" >>"$work/ts-client.runner" 2>&1; then
      echo "ok - mcpd client revoke $id" >>"$work/ts-client.runner"
    else
      echo "not ok - mcpd client revoke $id" >>"$work/ts-client.runner"
    fi
    touch "$state/ts-client.revoked"
  fi
  wait "$pid"
  local rc=$?
  cat "$work/ts-client.out"
  [[ -f "$work/ts-client.runner" ]] && cat "$work/ts-client.runner"
  if [[ $rc -ne 0 ]]; then sed 's/^/# stderr: /' "$work/ts-client.err" | tail -20; fi
  grep -q '^not ok' "$work/ts-client.runner" 2>/dev/null && rc=1
  return $rc
}

# The TypeScript client 2.x, once in its default negotiation and once pinned
# to 2026-07-28 (--pin).
run_ts_client_v2() {
  "$NODE" e2e/clients/ts-client-v2.mjs "$@"
}

# start_extra_server NAME FLAGS...: another mcpd with the same serve flags
# plus FLAGS, its own data directory and port, and the user alice; sets
# extra_url. Stopped at exit.
start_extra_server() {
  local name="$1" dir port
  shift
  dir="$work/$name"
  mkdir -p "$dir/data"
  port="$("$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  extra_url="http://127.0.0.1:$port"
  "$MCPD" serve --listen "127.0.0.1:$port" --issuer "$extra_url" --data "$dir/data" "${serve_flags[@]}" "$@" >"$dir/server.log" 2>&1 &
  extra_pids+=($!)
  for _ in $(seq 100); do curl -fsS -o /dev/null "$extra_url/healthz" 2>/dev/null && break; sleep 0.1; done
  printf '%s\n' "$MCPD_E2E_PASSWORD" | "$MCPD" user add alice --password-stdin --data "$dir/data" >"$dir/user-add.log" 2>&1 || {
    echo "e2e: $name: mcpd user add failed:"; cat "$dir/user-add.log" "$dir/server.log"; return 1; }
}

# The TypeScript SDK 2.x client with a DpopSession (RFC 9449); with
# --dpop-nonce the same flow through the nonce retries, on a server of its own.
run_ts_client_dpop() {
  "$NODE" e2e/clients/ts-client-dpop.mjs
}

run_ts_client_dpop_nonce() {
  start_extra_server dpop-nonce --dpop-nonce || return 1
  MCPD_URL="$extra_url" MCPD_E2E_EXPECT_NONCE=1 "$NODE" e2e/clients/ts-client-dpop.mjs
  local rc=$?
  [[ $rc -ne 0 ]] && tail -20 "$work/dpop-nonce/server.log"
  return $rc
}

run_mcp_remote() {
  "$NODE" e2e/clients/mcp-remote.mjs
}

run_conformance_authorization() {
  # One process runs both scenarios; each is recorded on its own.
  local out rc line
  out="$(bash e2e/clients/conformance-auth.sh)"; rc=$?
  echo "$out"
  while IFS= read -r line; do
    case "$line" in
      "ok - conformance/"*) line="${line#ok - }"; record "${line%% *}" 0 ;;
      "not ok - conformance/"*) line="${line#not ok - }"; record "${line%% *}" 1 ;;
    esac
  done <<<"$out"
  return $rc
}

run_vscode_replay() {
  go test -count=1 -tags e2e ./e2e/vscode/ -v 2>&1 | grep -v '^=== RUN' | tail -80
  return "${PIPESTATUS[0]}"
}

for c in "${clients[@]}"; do
  echo "=== $c"
  case "$c" in
    ts-client) run_ts_client; rc=$? ;;
    ts-client-v2) run_ts_client_v2; rc=$? ;;
    ts-client-v2-pinned) run_ts_client_v2 --pin; rc=$? ;;
    ts-client-dpop) run_ts_client_dpop; rc=$? ;;
    ts-client-dpop-nonce) run_ts_client_dpop_nonce; rc=$? ;;
    mcp-remote) run_mcp_remote; rc=$? ;;
    conformance-authorization)
      run_conformance_authorization; rc=$?
      # per-scenario results are recorded above; record only a run that produced none
      if ! printf '%s\n' "${results[@]}" | grep 'conformance/' >/dev/null; then record "$c" "$rc"; fi
      continue ;;
    vscode-replay) run_vscode_replay; rc=$? ;;
    *) echo "unknown client $c (known: ${all_clients[*]})"; rc=2 ;;
  esac
  record "$c" "$rc"
done

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "e2e: the server died during the run; its log:" >&2
  tail -50 "$work/server.log" >&2
  record "server-stayed-up" 1
fi

echo
echo "=== e2e summary"
printf '  %s\n' "${results[@]}"
echo "$passed passed, $failed failed"
if [[ $failed -ne 0 ]]; then
  echo "--- server log (last 40 lines)"
  tail -40 "$work/server.log"
  exit 1
fi
