package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestScalingComposeFile keeps the Compose file of docs/scaling.md true to
// the code: every MCPD_ variable it sets is a setting serve reads, the
// replicas run stateless on a database, and its HAProxy configuration is
// one HAProxy accepts.
func TestScalingComposeFile(t *testing.T) {
	doc, err := os.ReadFile("../../docs/scaling.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(string(doc))
	if m == nil {
		t.Fatal("no yaml block in docs/scaling.md")
	}
	compose := m[1]

	known := map[string]bool{"MCPD_INITIAL_PASSWORD": true, "MCPD_CONFIG": true}
	for _, s := range serveSettings() {
		known[s.env] = true
	}
	for _, v := range regexp.MustCompile(`\bMCPD_[A-Z_]+\b`).FindAllString(compose, -1) {
		if !known[v] {
			t.Errorf("the Compose file sets %s, which mcpd serve does not read", v)
		}
	}
	for _, want := range []string{`MCPD_MCP_STATELESS: "true"`, "MCPD_DATABASE: postgres://", "MCPD_ISSUER:", "balance roundrobin", "option httpchk GET /healthz"} {
		if !strings.Contains(compose, want) {
			t.Errorf("the Compose file lacks %q", want)
		}
	}

	// The HAProxy configuration: the block under "content: |", unindented.
	i := strings.Index(compose, "content: |\n")
	if i < 0 {
		t.Fatal("no HAProxy configuration (content: |) in the Compose file")
	}
	var cfg []string
	for _, line := range strings.Split(compose[i+len("content: |\n"):], "\n") {
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "      ") {
			break
		}
		cfg = append(cfg, strings.TrimPrefix(line, "      "))
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy is not installed under CI")
		}
		t.Skip("haproxy is not installed: the configuration is not checked")
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(strings.Join(cfg, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c on the Compose file's configuration: %v\n%s\n%s", err, out, strings.Join(cfg, "\n"))
	}
}
