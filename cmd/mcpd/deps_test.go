package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryHoldsNoE2EPackages keeps what e2e/ builds (the conformance
// fixture server and its fixtures, registered through mcp.Config.Extension)
// out of the mcpd binary.
func TestBinaryHoldsNoE2EPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/mcpd/mcpd/e2e") {
			t.Errorf("mcpd depends on %s", pkg)
		}
	}
}
