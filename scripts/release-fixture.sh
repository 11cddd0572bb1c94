#!/usr/bin/env bash
# scripts/release-fixture.sh — write the database fixture of a release:
#
#   bash scripts/release-fixture.sh [COMMIT]     # default 2f7baa7, release v1
#
# Builds mcpd at COMMIT in a temporary `git worktree`, and drives that
# binary into writing one of every kind of record: users, static, dynamic
# and client-ID-metadata-document clients, remembered consents, notes, a
# live and a used authorization code, live, rotated (with its grace-window
# successor), revoked and expired grants, client_credentials tokens, and
# client-assertion JTIs. The static client and the JTIs have no HTTP or CLI
# path in that release, so a small program built in the same worktree writes
# them through that release's own store package.
#
# Writes store/testdata/release-v1.db.gz (the database, gzipped: *.db is
# ignored by git) and store/testdata/release-v1.json (the passwords, tokens
# and codes that use its records). Tokens, codes, consents and successors of
# the first phase live for a century so tests years from now find them live;
# a second phase writes records with the default lifetimes.
#
# The upgrade tests (store/upgrade_test.go, cmd/mcpd/upgrade_test.go) read
# these files; PostgreSQL's migrate-to-postgres test reads the same database.
set -euo pipefail

COMMIT=${1:-2f7baa7}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DB=${OUT_DB:-$ROOT/store/testdata/release-v1.db.gz}
OUT_JSON=${OUT_JSON:-$ROOT/store/testdata/release-v1.json}
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpd-release-fixture.XXXXXX")
TREE=$WORK/tree
cleanup() {
	git -C "$ROOT" worktree remove --force "$TREE" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "# release $COMMIT in $TREE" >&2
git -C "$ROOT" worktree add --detach "$TREE" "$COMMIT" >/dev/null
(cd "$TREE" && CGO_ENABLED=0 go build -trimpath -o "$WORK/mcpd-release" ./cmd/mcpd)

# The static client and the JTIs, written with the release's store.
mkdir -p "$TREE/cmd/fixturestatic"
cat >"$TREE/cmd/fixturestatic/main.go" <<'EOF'
// Command fixturestatic writes the records of a release fixture that the
// release has no HTTP or CLI path for: a static client and two JTIs.
package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/mcpd/mcpd/store"
)

func main() {
	s, err := store.Open(os.Args[1], nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	c := &store.Client{
		ID: "fixture-static", Name: "Fixture static client", URI: "https://static.example/",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, Scopes: []string{"notes:read", "notes:write"},
		TokenEndpointAuthMethod: "none", ApplicationType: "native", Source: store.SourceStatic,
		CreatedAt: now, ActivatedAt: now, LastUsedAt: now,
	}
	if err := s.CreateClient(ctx, c); err != nil {
		panic(err)
	}
	for jti, exp := range map[string]time.Time{"fixture-jti-live": now.Add(876000 * time.Hour), "fixture-jti-expired": now.Add(-time.Minute)} {
		if err := s.SetClientAssertionJWT(ctx, jti, exp); err != nil {
			panic(err)
		}
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"clients": []map[string]string{{"id": c.ID, "name": c.Name, "source": c.Source}},
		"jtis":    []string{"fixture-jti-live", "fixture-jti-expired"},
	})
}
EOF
(cd "$TREE" && go build -o "$WORK/fixturestatic" ./cmd/fixturestatic)
(cd "$ROOT" && go build -o "$WORK/loadgen" ./bench/loadgen)

DATA=$WORK/data
"$WORK/fixturestatic" "$DATA" >"$WORK/static.json"
"$WORK/loadgen" fixture -bin "$WORK/mcpd-release" -data "$DATA" -release "$(git -C "$ROOT" rev-parse --short "$COMMIT")" \
	-in "$WORK/static.json" >"$WORK/fixture.json"

mkdir -p "$(dirname "$OUT_DB")"
gzip -9 -n -c "$DATA/mcpd.db" >"$OUT_DB"
cp "$WORK/fixture.json" "$OUT_JSON"
echo "wrote $OUT_DB ($(stat -c %s "$OUT_DB") bytes, $(stat -c %s "$DATA/mcpd.db") unpacked) and $OUT_JSON" >&2
