#!/usr/bin/env bash
# Runs the official MCP conformance suite (server scenarios) in four passes:
# the requirement sets of the 2026-07-28 and 2025-11-25 revisions
# (`--requirements`), each against
#
#   mcpd       a real `mcpd serve` with default flags, through e2e/conformance:
#              a proxy that adds a bearer token the server issued
#              (client_credentials for a registered confidential client with
#              every scope);
#   fixtures   the fixture server (e2e/conformance -fixtures): mcpd's mcp
#              package, its real /mcp handler and checks, with the suite's
#              fixture tools, resources and prompts registered through
#              mcp.Config.Extension, behind the same proxy.
#
# Each target has its baseline: expected-failures.yml (mcpd: the checks that
# call fixtures mcpd does not ship, each passing in the fixtures pass, and
# the tasks extension) and expected-failures-fixtures.yml (the tasks
# extension only). A pass fails when the suite says so, or when any check of
# any scenario, scored by the revision or not, fails or warns without being
# listed in the baseline, or passes while listed.
#
#   bash e2e/conformance/run.sh            # all four passes
#   bash e2e/conformance/run.sh mcpd       # only the passes of one target
#
# Node 22 and the suite come from e2e/node (npm, pinned by its lock file).
# Results go to $MCPD_CONFORMANCE_OUT (default: a temporary directory), one
# folder per pass. The last line counts every pass: `N passed, N failed,
# N skipped` (skipped: listed in a baseline).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${MCPD_CONFORMANCE_OUT:-$(mktemp -d)}"
mkdir -p "$out"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(mcpd fixtures)
revisions=(2026-07-28 2025-11-25)

# Node 22 and the suite, pinned in e2e/node/package-lock.json.
node="$(bash "$root/e2e/node/install.sh")"
suite="$root/e2e/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
"$node" --version

bin="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$bin"
}
trap cleanup EXIT

(cd "$root" && go build -o "$bin/mcpd" ./cmd/mcpd && go build -o "$bin/conformance" ./e2e/conformance)

# start_proxy NAME ARGS...: runs e2e/conformance with ARGS and sets $url to
# the proxy's MCP URL.
start_proxy() {
  local name="$1"
  shift
  "$bin/conformance" "$@" >"$bin/$name.url" 2>"$out/$name-proxy.log" &
  pids+=($!)
  for _ in $(seq 100); do
    [[ -s "$bin/$name.url" ]] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$out/$name-proxy.log" >&2; exit 1; }
    sleep 0.1
  done
  url="$(head -n1 "$bin/$name.url")"
  [[ -n "$url" ]] || { echo "run.sh: $name printed no URL" >&2; exit 1; }
}

# start_mcpd: a real mcpd serve on a free loopback port with a fresh data
# directory, a client_credentials token with every scope, and the proxy.
start_mcpd() {
  local port issuer reg client_id client_secret tok
  port="$("$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  issuer="http://127.0.0.1:$port"
  MCPD_INITIAL_PASSWORD="$(head -c 18 /dev/urandom | base64)" "$bin/mcpd" serve --listen "127.0.0.1:$port" \
    --data "$bin/data" --log-format json --log-level warn 2>"$out/mcpd.log" &
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf "$issuer/healthz" >/dev/null && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$out/mcpd.log" >&2; exit 1; }
    sleep 0.1
  done
  reg="$(curl -sf -X POST "$issuer/register" -H 'Content-Type: application/json' \
    -d '{"client_name":"conformance","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"notes:read notes:write api:call"}')"
  client_id="$("$node" -p 'JSON.parse(process.argv[1]).client_id' "$reg")"
  client_secret="$("$node" -p 'JSON.parse(process.argv[1]).client_secret' "$reg")"
  tok="$(curl -sf -u "$client_id:$client_secret" -d grant_type=client_credentials \
    -d 'scope=notes:read notes:write api:call' "$issuer/token")"
  CONFORMANCE_TOKEN="$("$node" -p 'JSON.parse(process.argv[1]).access_token' "$tok")"
  export CONFORMANCE_TOKEN
  start_proxy mcpd -target "$issuer/mcp"
}

# count DIR BASELINE: prints "passed failed skipped" for the checks of one
# pass, stricter than the suite's own verdict, which weighs only the
# scenarios a revision scores: every scenario counts here, a WARNING (a
# SHOULD not met) counts as a failure, a check listed in BASELINE counts
# as skipped, and a listed check that passed counts as a failure (stale
# entry). Each failure is printed.
count() {
  "$node" -e '
    const fs = require("fs"), path = require("path");
    const [dir, baselineFile] = process.argv.slice(1);
    const baseline = new Set(fs.readFileSync(baselineFile, "utf8").split("\n")
      .map(l => l.replace(/#.*/, "").trim()).filter(l => l.startsWith("- ")).map(l => l.slice(2).trim()));
    let passed = 0, failed = 0, skipped = 0;
    for (const d of fs.readdirSync(dir)) {
      const file = path.join(dir, d, "checks.json");
      if (!fs.existsSync(file)) continue;
      const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T.*$/, "");
      for (const c of JSON.parse(fs.readFileSync(file, "utf8"))) {
        if (!["SUCCESS", "FAILURE", "WARNING"].includes(c.status)) continue;
        const id = scenario + ":" + c.id, listed = baseline.has(id) || baseline.has(scenario);
        if (c.status === "SUCCESS" && listed) {
          failed++;
          console.error(`  stale baseline entry, the check passes: ${id}`);
        } else if (c.status === "SUCCESS") passed++;
        else if (listed) skipped++;
        else {
          failed++;
          console.error(`  ${c.status}: ${id}: ${(c.errorMessage || "").slice(0, 200)}`);
        }
      }
    }
    console.log(`${passed} ${failed} ${skipped}`);
  ' "$1" "$2"
}

status=0
total_passed=0 total_failed=0 total_skipped=0
for target in "${targets[@]}"; do
  case "$target" in
    mcpd) start_mcpd; baseline="$here/expected-failures.yml" ;;
    fixtures) start_proxy fixtures -fixtures; baseline="$here/expected-failures-fixtures.yml" ;;
    *) echo "run.sh: unknown target $target (known: mcpd fixtures)" >&2; exit 2 ;;
  esac
  for rev in "${revisions[@]}"; do
    dir="$out/$target-$rev"
    mkdir -p "$dir"
    echo
    echo "=== conformance: $target, requirements $rev, against $url; results in $dir"
    rc=0
    # The suite's own "Total:" line counts baselined checks as failed; it is
    # renamed so that only the closing lines below read as the verdict.
    "$node" "$suite" server --url "$url" --requirements "$rev" \
      --expected-failures "$baseline" -o "$dir" 2>&1 |
      sed -u 's/^Total: \([0-9]*\) passed, \([0-9]*\) failed/suite totals, baseline not applied: \1 checks passed, \2 checks failed/' ||
      rc=$?
    read -r p f s < <(count "$dir" "$baseline")
    echo "conformance $target $rev: $p checks passed, $f failed, $s skipped (baselined)"
    total_passed=$((total_passed + p)) total_failed=$((total_failed + f)) total_skipped=$((total_skipped + s))
    [[ $rc -eq 0 && $f -eq 0 ]] || status=1
  done
done
echo
echo "conformance: $total_passed passed, $total_failed failed, $total_skipped skipped"
exit "$status"
