#!/usr/bin/env bash
# @modelcontextprotocol/conformance (pinned in e2e/node) `authorization`
# scenarios against mcpd's issuer:
#   authorization-server-metadata-endpoint   RFC 8414 metadata document
#   authorization-code-grant                 PKCE code grant with a public client
#
# The conformance tool prints the authorization URL and waits for a person to
# open it in a browser; its callback server listens on 127.0.0.1:PORT/callback.
# Here the "person" is e2e/clients/lib/consent.mjs: it drives the login and
# consent pages over HTTP and then GETs the redirect, which lands on the
# tool's callback server. The client is registered first through /register
# (DCR) with that redirect URI; the tool gets its id via --client-id.
#
# `authorization-code-grant` reads the metadata from the result of
# `authorization-server-metadata-endpoint` in the same process, so both run in
# one invocation without --scenario.
#
# Needs: NODE (Node 22), MCPD_URL (issuer), MCPD_E2E_PASSWORD (for alice).
# Prints `ok - conformance/<scenario>` or `not ok - ...` per scenario;
# exit status 1 when a scenario failed that is not listed in
# conformance-auth-expected-failures.txt.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${NODE:?NODE must point at Node 22}" "${MCPD_URL:?MCPD_URL must be the issuer}"
issuer="${MCPD_URL%/}"
conformance="$here/../node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
expected="$here/conformance-auth-expected-failures.txt"
out="$(mktemp -d /tmp/mcpd-conformance.XXXXXX)"
trap 'rm -rf "$out"' EXIT

cb_port="$("$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
redirect="http://127.0.0.1:$cb_port/callback"

meta="$(curl -fsS "$issuer/.well-known/oauth-authorization-server")" || { echo "not ok - conformance: cannot read AS metadata"; exit 1; }
reg_endpoint="$(jq -r .registration_endpoint <<<"$meta")"
authz_endpoint="$(jq -r .authorization_endpoint <<<"$meta")"
reg="$(curl -fsS -X POST "$reg_endpoint" -H 'content-type: application/json' -d "$(jq -n --arg r "$redirect" '{
  client_name: "MCP conformance authorization-code-grant",
  redirect_uris: [$r],
  grant_types: ["authorization_code", "refresh_token"],
  response_types: ["code"],
  token_endpoint_auth_method: "none"}')")" || { echo "not ok - conformance: dynamic registration failed"; exit 1; }
client_id="$(jq -r .client_id <<<"$reg")"
echo "# conformance client_id=$client_id redirect_uri=$redirect"

"$NODE" "$conformance" authorization --url "$issuer" --client-id "$client_id" \
  --port "$cb_port" --resource "$issuer/mcp" -o "$out/results" >"$out/stdout" 2>"$out/stderr" &
pid=$!

# Wait for the authorization URL the tool asks a person to open, then act as that person.
url=""
for _ in $(seq 300); do
  url="$(grep -m1 -F "$authz_endpoint?" "$out/stdout" 2>/dev/null || true)"
  [[ -n "$url" ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -n "$url" ]]; then
  if ! "$NODE" "$here/lib/consent.mjs" --follow "$url" >"$out/consent.out" 2>"$out/consent.err"; then
    echo "# consent driver failed:"; sed 's/^/#   /' "$out/consent.err"
    kill "$pid" 2>/dev/null
  fi
else
  echo "# the conformance tool printed no authorization URL"
fi
wait "$pid"
tool_rc=$?

fail=0
for scenario in authorization-server-metadata-endpoint authorization-code-grant; do
  checks="$(find "$out/results" -path "*$scenario*" -name checks.json 2>/dev/null | sed -n 1p)"
  reason="$(grep -E "^$scenario[[:space:]]" "$expected" 2>/dev/null | sed -E 's/^[^#]*#[[:space:]]*//')"
  if [[ -z "$checks" ]]; then
    status="missing"
  else
    nfail="$(jq '[.[] | select(.status == "FAILURE")] | length' "$checks")"
    nok="$(jq '[.[] | select(.status == "SUCCESS")] | length' "$checks")"
    nwarn="$(jq '[.[] | select(.status == "WARNING")] | length' "$checks")"
    if [[ "$nfail" == 0 && "$nok" -gt 0 ]]; then status="ok"; else status="failed"; fi
  fi
  if [[ "$status" == ok ]]; then
    if [[ -n "$reason" ]]; then
      echo "not ok - conformance/$scenario # passes but is listed as an expected failure; remove it from $(basename "$expected")"
      fail=1
    else
      note="$nok checks passed"; [[ "$nwarn" != 0 ]] && note="$note, $nwarn warnings"
      echo "ok - conformance/$scenario ($note)"
    fi
  else
    if [[ -n "$reason" ]]; then
      echo "ok - conformance/$scenario # expected failure: $reason"
    else
      echo "not ok - conformance/$scenario ($status)"
      fail=1
    fi
  fi
  if [[ -n "$checks" ]]; then
    jq -r '.[] | select(.status != "SUCCESS") | "#   \(.status) \(.id): \(.errorMessage // .description)"' "$checks"
  fi
done
if [[ $fail -ne 0 ]]; then
  echo "# conformance tool exit status $tool_rc; its output:"
  sed 's/^/#   /' "$out/stdout" "$out/stderr" | tail -60
fi
exit $fail
