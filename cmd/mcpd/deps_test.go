package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mcpd/mcpd/"

// TestBinaryHoldsNoE2EPackages keeps what e2e/ builds (the conformance
// fixture server and its fixtures, registered through mcp.Config.Extension)
// and the packages written for tests (stand-in identity providers, DPoP
// client keys, the store conformance suite, throw-away PostgreSQL schemas)
// out of the mcpd binary.
func TestBinaryHoldsNoE2EPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	testOnly := []string{"internal/idptest", "internal/dpoptest", "store/storetest", "store/postgres/pgtest"}
	for _, pkg := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(pkg, module)
		if ok && (strings.HasPrefix(rel, "e2e") || slices.Contains(testOnly, rel)) {
			t.Errorf("mcpd depends on %s", pkg)
		}
	}
}

// allowedImports is the dependency direction of DESIGN.md, package by
// package: which packages of mcpd each may import (tests aside). Leaves
// import none; authz knows web and the leaves dpop and internal/keymutex,
// never store; mcp knows nothing of mcpd and declares what it needs; the
// identity provider packages know idp (and the vault the key mutex), never
// authz or mcp; only internal/wire adapts the store to the consumers, and
// only the commands (cmd/mcpd, bench/loadgen, the conformance fixture
// server) see every side. A package missing here fails the test, so a new
// one gets a decision.
var allowedImports = map[string][]string{
	"web":                      nil,
	"dpop":                     nil,
	"mcp":                      nil,
	"idp":                      nil,
	"store":                    nil,
	"internal/keymutex":        nil,
	"internal/idptest":         nil,
	"authz":                    {"web", "dpop", "internal/keymutex"},
	"idp/oidc":                 {"idp"},
	"idp/github":               {"idp"},
	"idp/vault":                {"idp", "internal/keymutex"},
	"internal/dpoptest":        {"dpop"},
	"internal/wire":            {"authz", "mcp", "dpop", "idp", "idp/vault", "store"},
	"store/postgres":           {"store"},
	"store/postgres/pgtest":    nil,
	"store/storetest":          {"store"},
	"e2e/conformance/fixtures": {"mcp"},
	"e2e/conformance":          {"e2e/conformance/fixtures", "internal/wire", "mcp", "store"},
	"bench/loadgen":            {"authz", "internal/wire", "mcp", "store", "web"},
	"cmd/mcpd":                 {"authz", "dpop", "idp/github", "idp/oidc", "idp/vault", "internal/wire", "mcp", "store", "store/postgres", "web"},
}

// TestImportGraph pins allowedImports against what the packages import.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("package %s is not in allowedImports: decide what it may import", pkg)
			continue
		}
		for _, imp := range f[1:] {
			if rel, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(allowed, rel) {
				t.Errorf("%s imports %s, which the dependency direction does not allow", pkg, rel)
			}
		}
	}
}
