#!/usr/bin/env bash
# Runs the official MCP conformance suite (server scenarios) against a real
# `mcpd serve`, through e2e/conformance: a proxy that adds a bearer token
# the server issued (client_credentials for a registered confidential
# client with every scope). Exits non-zero when a check fails that expected-failures.yml
# does not list, or when a listed one passes.
#
# Node 22 and the suite come from e2e/node (npm, pinned by its lock file).
# Results go to $MCPD_CONFORMANCE_OUT (default: a temporary directory).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${MCPD_CONFORMANCE_OUT:-$(mktemp -d)}"

# Node 22 and the suite, pinned in e2e/node/package-lock.json.
node="$(bash "$root/e2e/node/install.sh")"
suite="$root/e2e/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
"$node" --version

bin="$(mktemp -d)"
urlfile="$bin/url"
cleanup() {
  for pid in ${proxy_pid:-} ${server_pid:-}; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$bin"
}
trap cleanup EXIT

# A real mcpd serve on a free loopback port, with a fresh data directory.
(cd "$root" && go build -o "$bin/mcpd" ./cmd/mcpd && go build -o "$bin/conformance-proxy" ./e2e/conformance)
port="$("$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
issuer="http://127.0.0.1:$port"
MCPD_INITIAL_PASSWORD="$(head -c 18 /dev/urandom | base64)" "$bin/mcpd" serve --listen "127.0.0.1:$port" \
  --data "$bin/data" --log-format json --log-level warn 2>"$out/mcpd.log" &
server_pid=$!
for _ in $(seq 100); do
  curl -sf "$issuer/healthz" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$out/mcpd.log" >&2; exit 1; }
  sleep 0.1
done

# A confidential client with every scope, and a client_credentials token
# for it: the token the proxy adds to every request of the suite.
reg="$(curl -sf -X POST "$issuer/register" -H 'Content-Type: application/json' \
  -d '{"client_name":"conformance","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"notes:read notes:write api:call"}')"
client_id="$("$node" -p 'JSON.parse(process.argv[1]).client_id' "$reg")"
client_secret="$("$node" -p 'JSON.parse(process.argv[1]).client_secret' "$reg")"
tok="$(curl -sf -u "$client_id:$client_secret" -d grant_type=client_credentials \
  -d 'scope=notes:read notes:write api:call' "$issuer/token")"
export CONFORMANCE_TOKEN="$("$node" -p 'JSON.parse(process.argv[1]).access_token' "$tok")"

"$bin/conformance-proxy" -target "$issuer/mcp" >"$urlfile" 2>"$out/proxy.log" &
proxy_pid=$!
for _ in $(seq 100); do
  [[ -s "$urlfile" ]] && break
  kill -0 "$proxy_pid" 2>/dev/null || { cat "$out/proxy.log" >&2; exit 1; }
  sleep 0.1
done
url="$(head -n1 "$urlfile")"
[[ -n "$url" ]] || { echo "run.sh: the server printed no URL" >&2; exit 1; }
echo "conformance: server scenarios (active suite) against $url; results in $out"

status=0
# The suite's own "Total:" line counts baselined checks as failed; it is
# renamed so that only the closing line below reads as the verdict.
"$node" "$suite" server --url "$url" --suite active \
  --expected-failures "$here/expected-failures.yml" -o "$out" 2>&1 |
  sed -u 's/^Total: \([0-9]*\) passed, \([0-9]*\) failed/suite totals, baseline not applied: \1 checks passed, \2 checks failed/' ||
  status=$?

# Closing line: checks that apply (not listed in expected-failures.yml)
# passed or failed; the listed ones count as skipped.
"$node" -e '
  const fs = require("fs"), path = require("path");
  const [out, baselineFile] = process.argv.slice(1);
  const baseline = new Set(fs.readFileSync(baselineFile, "utf8").split("\n")
    .map(l => l.replace(/#.*/, "").trim()).filter(l => l.startsWith("- ")).map(l => l.slice(2).trim()));
  let passed = 0, failed = 0, skipped = 0;
  for (const dir of fs.readdirSync(out)) {
    const file = path.join(out, dir, "checks.json");
    if (!fs.existsSync(file)) continue;
    const scenario = dir.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T.*$/, "");
    for (const c of JSON.parse(fs.readFileSync(file, "utf8"))) {
      if (c.status !== "SUCCESS" && c.status !== "FAILURE") continue;
      if (baseline.has(scenario + ":" + c.id) || baseline.has(scenario)) skipped++;
      else if (c.status === "SUCCESS") passed++;
      else failed++;
    }
  }
  console.log(`conformance: ${passed} passed, ${failed} failed, ${skipped} skipped`);
' "$out" "$here/expected-failures.yml"
exit "$status"
