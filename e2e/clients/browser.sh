#!/usr/bin/env bash
# A headless "browser" for clients that open the authorization URL with the
# system opener (mcp-remote -> `open` -> xdg-open -> $BROWSER). It drives
# mcpd's login and consent pages over HTTP (lib/consent.mjs) and then GETs the
# redirect, which lands on the client's own loopback callback server.
# Runs in the background so the opener returns at once; writes its log to
# $MCPD_E2E_BROWSER_LOG (default /dev/null).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log="${MCPD_E2E_BROWSER_LOG:-/dev/null}"
echo "browser.sh: opening $1" >>"$log"
nohup "${NODE:-node}" "$here/lib/consent.mjs" --follow "$1" >>"$log" 2>&1 </dev/null &
exit 0
