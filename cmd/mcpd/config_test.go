package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantPos  []string
		wantData string
		wantPW   bool
	}{
		{"flags before positionals", []string{"--data", "d", "--password-stdin", "alice"}, []string{"alice"}, "d", true},
		{"flags after positionals", []string{"alice", "--password-stdin", "--data", "d"}, []string{"alice"}, "d", true},
		{"flags between positionals", []string{"alice", "--data=d", "bob"}, []string{"alice", "bob"}, "d", false},
		{"double dash ends flags", []string{"--", "--data"}, []string{"--data"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("t", new(strings.Builder), "")
			data := fs.String("data", "", "")
			pw := fs.Bool("password-stdin", false, "")
			pos, err := parseInterleaved(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantPos, pos); diff != "" {
				t.Errorf("positionals (-want +got):\n%s", diff)
			}
			if *data != tc.wantData || *pw != tc.wantPW {
				t.Errorf("data=%q pw=%v; want %q %v", *data, *pw, tc.wantData, tc.wantPW)
			}
		})
	}
}

func TestServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mcpd.json")
	os.WriteFile(file, []byte(`{"access-token-ttl": "10m", "refresh-grace": "5s", "max-clients": 7, "cors-origins": ["https://a.example", "https://b.example"], "client-metadata-documents": false}`), 0o600)
	env := map[string]string{"MCPD_CONFIG": file, "MCPD_REFRESH_GRACE": "9s", "MCPD_MAX_CLIENTS": "8"}
	fs := newFlagSet("serve", new(strings.Builder), "")
	c, err := loadServeConfig(fs, []string{"--max-clients", "9", "--data", dir}, testEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"file beats default":           c.AccessTokenTTL,
		"env beats file":               c.RefreshGrace,
		"flag beats env":               c.MaxClients,
		"lists read from file arrays":  c.CORSOrigins,
		"booleans read from file":      c.ClientMetadataDocuments,
		"defaults fill the rest":       c.AuthCodeTTL,
		"issuer derived from listen":   c.Issuer,
		"password login on by default": c.PasswordLogin,
	}
	want := map[string]any{
		"file beats default":           10 * time.Minute,
		"env beats file":               9 * time.Second,
		"flag beats env":               9,
		"lists read from file arrays":  []string{"https://a.example", "https://b.example"},
		"booleans read from file":      false,
		"defaults fill the rest":       60 * time.Second,
		"issuer derived from listen":   "http://127.0.0.1:8080",
		"password login on by default": true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestPasswordLoginSetting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mcpd.json")
	os.WriteFile(file, []byte(`{"password-login": false}`), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{"on by default", nil, nil, true},
		{"off by flag", []string{"--password-login=false"}, nil, false},
		{"off by environment", nil, map[string]string{"MCPD_PASSWORD_LOGIN": "false"}, false},
		{"off by config file", nil, map[string]string{"MCPD_CONFIG": file}, false},
		{"a flag beats the file", []string{"--password-login=true"}, map[string]string{"MCPD_CONFIG": file}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("serve", new(strings.Builder), "")
			c, err := loadServeConfig(fs, append(tc.args, "--data", dir), testEnv(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.PasswordLogin != tc.want {
				t.Errorf("PasswordLogin = %v; want %v", c.PasswordLogin, tc.want)
			}
		})
	}
}

func TestServeConfigBareBooleans(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantRequire bool
		wantNonce   bool
	}{
		{"a bare boolean flag is true", []string{"--require-dpop"}, true, false},
		{"a bare boolean flag before another flag is true", []string{"--require-dpop", "--dpop-nonce", "--max-clients", "3"}, true, true},
		{"a boolean flag with a value keeps it", []string{"--require-dpop", "false", "--dpop-nonce", "true"}, false, true},
		{"a boolean flag with = keeps its value", []string{"--require-dpop=false", "-dpop-nonce"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("serve", new(strings.Builder), "")
			c, err := loadServeConfig(fs, append(tt.args, "--data", t.TempDir()), testEnv(nil))
			if err != nil {
				t.Fatal(err)
			}
			if c.RequireDPoP != tt.wantRequire || c.DPoPNonce != tt.wantNonce {
				t.Errorf("require-dpop %v, dpop-nonce %v; want %v, %v", c.RequireDPoP, c.DPoPNonce, tt.wantRequire, tt.wantNonce)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.json")
	os.WriteFile(badFile, []byte(`{"acces-token-ttl": "1h"}`), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // the error names the setting
	}{
		{"bad duration flag names the flag", []string{"--access-token-ttl", "soon"}, nil, "--access-token-ttl"},
		{"bad duration env names the variable", nil, map[string]string{"MCPD_REFRESH_GRACE": "x"}, "MCPD_REFRESH_GRACE"},
		{"issuer with a trailing slash is refused", []string{"--issuer", "http://127.0.0.1:8080/"}, nil, "--issuer"},
		{"issuer with a query is refused", []string{"--issuer", "http://127.0.0.1:8080?x=1"}, nil, "--issuer"},
		{"issuer path with an encoded character is refused", []string{"--issuer", "https://host.example/my%20mcpd"}, nil, "--issuer"},
		{"issuer path with a dot segment is refused", []string{"--issuer", "https://host.example/a/../mcpd"}, nil, "--issuer"},
		{"issuer path with an empty segment is refused", []string{"--issuer", "https://host.example//mcpd"}, nil, "--issuer"},
		{"listen without a port is refused", []string{"--listen", "localhost"}, nil, "--listen"},
		{"unknown file key is named", []string{"--config", badFile}, nil, "acces-token-ttl"},
		{"unknown flag is a usage error", []string{"--no-such-flag"}, nil, "no-such-flag"},
		{"bad log format is named", []string{"--log-format", "xml"}, nil, "--log-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("serve", new(strings.Builder), "")
			_, err := loadServeConfig(fs, append(tc.args, "--data", dir), testEnv(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			var u usageErr
			if !errors.As(err, &u) || exitCode(err) != 2 {
				t.Errorf("exit code %d; want 2", exitCode(err))
			}
		})
	}
}

func TestServeBadSettingExitsBeforeListening(t *testing.T) {
	_, _, err := mcpd(t, "", "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--refresh-grace", "-1s")
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--refresh-grace") {
		t.Fatalf("err = %v (exit %d); want a usage error naming --refresh-grace", err, exitCode(err))
	}
}
