#!/usr/bin/env bash
# bench/growth.sh — the bounded-growth figures of docs/reliability.md.
#
# Floods a fresh `mcpd serve` with refresh rotations over GRANTS live
# grants (each loadgen worker holds one grant and rotates it as fast as the
# server answers) for DUR, sampling the server's RSS, then reports the file,
# its live data, and what `mcpd compact` brings the file back to (online,
# through the admin socket, then offline). See `loadgen growth -h`.
#
#   bash bench/growth.sh                              # 10 minutes, 100 grants
#   DUR=30s bash bench/growth.sh                      # the CI version
#   SCENARIO=client-credentials DUR=30s bash bench/growth.sh
#   BASE=2f7baa7 DUR=30s bash bench/growth.sh         # the same flood on a release first
#   LIMITS=1 ...                                      # exit 1 when a goal is missed
#
# Results (one JSON line per build) go to $OUT/growth.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-10m}
GRANTS=${GRANTS:-100}
SCENARIO=${SCENARIO:-refresh}
BASE=${BASE:-}
LIMITS=${LIMITS:-0}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mcpd-growth.XXXXXX")}
export LOADGEN_PASSWORD=growth-pw
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
mkdir -p "$OUT"

echo "# building into $OUT" >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$OUT/mcpd" ./cmd/mcpd && go build -o "$OUT/loadgen" ./bench/loadgen)
args=(-bin "$OUT/mcpd" -scenario "$SCENARIO" -c "$GRANTS" -d "$DUR" -dir "$OUT")
if [ -n "$BASE" ]; then
	git -C "$ROOT" worktree add --detach "$OUT/base-tree" "$BASE" >/dev/null 2>&1
	(cd "$OUT/base-tree" && CGO_ENABLED=0 go build -trimpath -o "$OUT/mcpd-base" ./cmd/mcpd)
	git -C "$ROOT" worktree remove --force "$OUT/base-tree"
	args+=(-base "$OUT/mcpd-base")
fi
[ "$LIMITS" = 1 ] && args+=(-limits)
"$OUT/loadgen" growth "${args[@]}" >"$OUT/growth.jsonl"
