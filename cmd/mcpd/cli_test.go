package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"
)

// adminScript runs every admin subcommand that reads state and returns
// their outputs by command line, so a run with the server up can be compared
// with one with it down.
func adminScript(t *testing.T, data, clientID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, args := range [][]string{
		{"user", "list"},
		{"user", "list", "--json"},
		{"user", "passkeys", "alice"},
		{"user", "passkeys", "alice", "--json"},
		{"client", "list"},
		{"client", "list", "--json"},
		{"client", "show", clientID},
		{"client", "show", clientID, "--json"},
		{"consent", "list"},
		{"consent", "list", "--json", "--user", "alice"},
	} {
		out[strings.Join(args, " ")] = mustMcpd(t, "", append(args, "--data", data)...)
	}
	return out
}

func TestAdminCommandsSameOutputServerUpAndDown(t *testing.T) {
	ts := startServer(t)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "Test Client")
	b := newBrowser(t)
	// One grant with a remembered consent, so every listing has content.
	authURL := ts.URL + "/authorize?response_type=code&client_id=" + clientID + "&redirect_uri=" + redirect +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=notes:read"
	if loc := b.authorize(authURL, "alice", "alice-pw", "allow", nil, true); loc.Query().Get("code") == "" {
		t.Fatalf("no code: %s", loc)
	}
	up := adminScript(t, ts.Data, clientID)
	if _, err := os.Stat(filepath.Join(ts.Data, adminSocketName)); err != nil {
		t.Fatalf("admin socket: %v", err)
	}
	ts.Stop(t)
	down := adminScript(t, ts.Data, clientID)
	if diff := cmp.Diff(up, down); diff != "" {
		t.Errorf("output with the server up (-) and down (+) differs:\n%s", diff)
	}
	var users []map[string]any
	if err := json.Unmarshal([]byte(down["user list --json"]), &users); err != nil || len(users) != 2 || users[0]["name"] != "admin" || users[1]["name"] != "alice" {
		t.Errorf("user list --json = %s; want admin and alice", down["user list --json"])
	}
	var clients []map[string]any
	if err := json.Unmarshal([]byte(down["client list --json"]), &clients); err != nil || len(clients) != 1 || clients[0]["id"] != clientID || clients[0]["name"] != "Test Client" {
		t.Errorf("client list --json = %s", down["client list --json"])
	}
	if !strings.Contains(down["consent list"], "alice") || !strings.Contains(down["consent list"], clientID) {
		t.Errorf("consent list does not show alice's consent:\n%s", down["consent list"])
	}
}

func TestUserCommands(t *testing.T) {
	for _, mode := range []string{"server down", "server up"} {
		t.Run(mode, func(t *testing.T) {
			data := t.TempDir()
			if mode == "server up" {
				data = startServer(t).Data
			} else {
				mustMcpd(t, "admin-pw\n", "user", "add", "admin", "--password-stdin", "--data", data)
			}
			if got := mustMcpd(t, "s3cret pass\n", "user", "add", "bob", "--password-stdin", "--data", data); got != "added user bob\n" {
				t.Errorf("user add printed %q", got)
			}
			if _, _, err := mcpd(t, "x\n", "user", "add", "bob", "--password-stdin", "--data", data); !errors.Is(err, errExists) {
				t.Errorf("adding bob twice: %v; want errExists", err)
			}
			if _, _, err := mcpd(t, "", "user", "add", "carol", "--data", data); exitCode(err) != 2 {
				t.Errorf("user add without --password-stdin: exit %d; want 2", exitCode(err))
			}
			mustMcpd(t, "new pass\n", "user", "passwd", "bob", "--password-stdin", "--data", data)
			if _, _, err := mcpd(t, "x\n", "user", "passwd", "nobody", "--password-stdin", "--data", data); !errors.Is(err, errNotFound) {
				t.Errorf("passwd of an unknown user: %v; want errNotFound", err)
			}
			mustMcpd(t, "", "user", "remove", "bob", "--data", data)
			if got := mustMcpd(t, "", "user", "list", "--data", data); strings.Contains(got, "bob") {
				t.Errorf("bob still listed after remove:\n%s", got)
			}
		})
	}
}

func TestPasswordStdinIsOneLineWithoutNewline(t *testing.T) {
	ts := startServer(t)
	mustMcpd(t, "pa ss\r\nsecond line\n", "user", "add", "dave", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "pw test")
	tok := login(t, ts.URL, clientID, redirect, "dave", "pa ss", "notes:read")
	if tok.AccessToken == "" {
		t.Fatal("no token")
	}
}

func TestFirstStartCreatesAdmin(t *testing.T) {
	t.Run("random password printed once", func(t *testing.T) {
		data := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		errb := &syncBuffer{}
		env := cliEnv{ctx: ctx, stdin: strings.NewReader(""), stdout: errb, stderr: errb, getenv: testEnv(nil)}
		done := make(chan error, 1)
		go func() { done <- env.serve([]string{"--listen", "127.0.0.1:0", "--data", data, "--log-level", "error"}) }()
		waitFor(t, func() bool { return strings.Contains(errb.String(), "is listening on") })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		out := errb.String()
		i := strings.Index(out, `created user "admin" with password`)
		if i < 0 {
			t.Fatalf("no initial password in output:\n%s", out)
		}
		pw := strings.Fields(out[i+len(`created user "admin" with password`):])[0]
		st := mustOpenStore(t, data)
		if err := st.Authenticate(context.Background(), "admin", pw); err != nil {
			t.Errorf("printed password does not log in: %v", err)
		}
		st.Close()
	})
	t.Run("MCPD_INITIAL_PASSWORD is used and not printed", func(t *testing.T) {
		ts := startServer(t)
		if strings.Contains(ts.Stderr.String(), "admin-pw") {
			t.Error("the given initial password was printed")
		}
		clientID, redirect := publicClient(t, ts.URL, "admin test")
		login(t, ts.URL, clientID, redirect, "admin", "admin-pw")
	})
}

func TestDataFileModes(t *testing.T) {
	ts := startServer(t)
	for path, want := range map[string]os.FileMode{
		ts.Data: 0o700, filepath.Join(ts.Data, "mcpd.db"): 0o600, filepath.Join(ts.Data, adminSocketName): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o; want %o", path, got, want)
		}
	}
}

func TestHealthcheckAndVersion(t *testing.T) {
	ts := startServer(t)
	addr := strings.TrimPrefix(ts.URL, "http://")
	if got := mustMcpd(t, "", "healthcheck", "--listen", addr); got != "healthy\n" {
		t.Errorf("healthcheck printed %q", got)
	}
	ts.Stop(t)
	if _, _, err := mcpd(t, "", "healthcheck", "--listen", addr, "--timeout", "1s"); err == nil {
		t.Error("healthcheck of a stopped server succeeded")
	}
	if got := mustMcpd(t, "", "version"); !strings.HasPrefix(got, "mcpd ") {
		t.Errorf("version printed %q", got)
	}
	if _, _, err := mcpd(t, "", "frobnicate"); exitCode(err) != 2 {
		t.Errorf("unknown command: exit %d; want 2", exitCode(err))
	}
}

func TestBackupOnlineAndOffline(t *testing.T) {
	ts := startServer(t)
	mustMcpd(t, "pw\n", "user", "add", "erin", "--password-stdin", "--data", ts.Data)
	online := filepath.Join(t.TempDir(), "online.db")
	mustMcpd(t, "", "backup", online, "--data", ts.Data)
	ts.Stop(t)
	offline := filepath.Join(t.TempDir(), "offline.db")
	mustMcpd(t, "", "backup", offline, "--data", ts.Data)
	for _, f := range []string{online, offline} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o; want 600", f, fi.Mode().Perm())
		}
		checkBolt(t, f)
		// A restore is a copy into a data directory.
		restored := t.TempDir()
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(restored, "mcpd.db"), b, 0o600)
		if got := mustMcpd(t, "", "user", "list", "--data", restored); !strings.Contains(got, "erin") {
			t.Errorf("restored backup %s lacks erin:\n%s", filepath.Base(f), got)
		}
	}
}

func TestDoctor(t *testing.T) {
	ts := startServer(t)
	t.Run("healthy server passes", func(t *testing.T) {
		out, _, err := mcpd(t, "", "doctor", "--issuer", ts.URL, "--cimd-probe=")
		if err != nil {
			t.Fatalf("doctor: %v\n%s", err, out)
		}
		if !strings.Contains(out, "checks passed") {
			t.Errorf("doctor output:\n%s", out)
		}
	})
	t.Run("trailing slash is named", func(t *testing.T) {
		out, _, err := mcpd(t, "", "doctor", "--issuer", ts.URL+"/", "--cimd-probe=")
		if err == nil || !strings.Contains(out, "FAIL issuer URL has no trailing slash") {
			t.Errorf("err=%v, output:\n%s", err, out)
		}
	})
	t.Run("wrong host is named", func(t *testing.T) {
		other := startServer(t, "--issuer", "http://mcpd.invalid:8080")
		out, _, err := mcpd(t, "", "doctor", "--issuer", other.URL, "--cimd-probe=")
		if err == nil || !strings.Contains(out, "FAIL AS issuer equals the URL byte for byte") {
			t.Errorf("err=%v, output:\n%s", err, out)
		}
	})
	t.Run("json output", func(t *testing.T) {
		out := mustMcpd(t, "", "doctor", "--issuer", ts.URL, "--json", "--cimd-probe=")
		var checks []check
		if err := json.Unmarshal([]byte(out), &checks); err != nil || len(checks) < 10 {
			t.Errorf("doctor --json: %v\n%s", err, out)
		}
	})
}

func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		return first
	}); err != nil {
		t.Errorf("bbolt check %s: %v", path, err)
	}
}

func TestUsageErrors(t *testing.T) {
	data := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown subcommand of user", []string{"user", "rename", "a", "b"}},
		{"client show without an id", []string{"client", "show"}},
		{"consent revoke with one argument", []string{"consent", "revoke", "alice"}},
		{"client list with an argument", []string{"client", "list", "extra"}},
		{"unknown flag", []string{"client", "list", "--colour"}},
		{"backup without a file", []string{"backup"}},
	} {
		t.Run(tc.name+" exits 2", func(t *testing.T) {
			_, _, err := mcpd(t, "", append(tc.args, "--data", data)...)
			if exitCode(err) != 2 {
				t.Errorf("err %v exit %d; want 2", err, exitCode(err))
			}
		})
	}
	for _, args := range [][]string{{"help"}, {"user", "--help"}, {"client", "help"}, {"consent", "-h"}} {
		t.Run(strings.Join(args, " ")+" prints usage", func(t *testing.T) {
			out := mustMcpd(t, "", args...)
			if !strings.Contains(out, "Usage") && !strings.Contains(out, "mcpd serve") {
				t.Errorf("printed %q", out)
			}
		})
	}
}

// TestMainUsageListsEverySubcommand keeps `mcpd help` complete: every
// subcommand a group's own usage lists is in the main usage too.
func TestMainUsageListsEverySubcommand(t *testing.T) {
	for _, group := range []string{"user", "client", "consent"} {
		for _, line := range strings.Split(mustMcpd(t, "", group, "--help"), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "mcpd" || f[1] != group {
				continue
			}
			if cmd := strings.Join(f[:3], " "); !strings.Contains(mainUsage, cmd+" ") {
				t.Errorf("mcpd help does not list %q (mcpd %s --help does)", cmd, group)
			}
		}
	}
}

func TestConsentRevokeShowsThePageAgain(t *testing.T) {
	ts := startServer(t)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "Consent Client")
	authURL := ts.URL + "/authorize?response_type=code&client_id=" + clientID + "&redirect_uri=" + redirect +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=notes:read"
	b := newBrowser(t)
	b.authorize(authURL, "alice", "alice-pw", "allow", nil, true)
	// Remembered: the next authorization redirects straight to the client.
	if resp, _ := b.get(authURL); resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("remembered consent: %s; want a redirect to the client", resp.Status)
	}
	out := mustMcpd(t, "", "consent", "revoke", "alice", clientID, "--data", ts.Data)
	if !strings.Contains(out, "forgot the consent of alice") {
		t.Errorf("consent revoke printed %q", out)
	}
	if resp, body := b.get(authURL); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `value="allow"`) {
		t.Errorf("after consent revoke: %s; want the consent page again", resp.Status)
	}
	if _, _, err := mcpd(t, "", "consent", "revoke", "alice", clientID, "--data", ts.Data); !errors.Is(err, errNotFound) {
		t.Errorf("revoking a forgotten consent: %v; want errNotFound", err)
	}
}
