package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpd/mcpd/authz"
)

// FuzzServeConfig feeds arbitrary config files and flags to the settings
// parser: it never panics, and every refusal is a usage error (exit code 2)
// that names what is wrong.
func FuzzServeConfig(f *testing.F) {
	f.Add([]byte(`{"access-token-ttl":"10m","cors-origins":["https://a.example"],"max-clients":7}`), "--refresh-grace 0s")
	f.Add([]byte(`{"upstreams":[{"name":"u","base_url":"https://x.example","timeout":"1s","auth":{"type":"bearer","bearer_env":"T"}}]}`), "")
	f.Add([]byte(`{"issuer":"http://h/"}`), "--listen :0")
	f.Add([]byte(`{"identity_providers":[{"name":"g","type":"github","client_id":"c","client_secret_env":"S","allowed_orgs":["a"]}],"upstreams":[{"name":"u","base_url":"https://x.example","auth":{"type":"user","identity_provider":"g"}}]}`), "--idp-timeout 2s")
	f.Add([]byte(`{"identity_providers":[{"name":"o","type":"oidc","issuer":"http://localhost:1/","client_id":"c","client_secret_file":"/nonexistent","client_secret":"x"}]}`), "")
	f.Add([]byte(`[]`), "--data")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file []byte, flags string) {
		path := filepath.Join(dir, "mcpd.json")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		fs := newFlagSet("serve", new(strings.Builder), "")
		args := append([]string{"--config", path, "--data", dir}, strings.Fields(flags)...)
		c, err := loadServeConfig(fs, args, testEnv(nil))
		if err != nil {
			var u usageErr
			if !errors.As(err, &u) && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("refusal %v is not a usage error", err)
			}
			return
		}
		if checkIssuer(c.Issuer) != nil {
			t.Fatalf("accepted an invalid issuer %q", c.Issuer)
		}
		for _, p := range c.IdentityProviders {
			if p.ClientSecret == "" || !authz.ValidProviderName(p.Name) || (p.Type != idpTypeOIDC && p.Type != idpTypeGitHub) {
				t.Fatalf("accepted an invalid identity provider %+v", p)
			}
		}
	})
}
