package main

import (
	"net/http"
	"strings"
	"testing"
)

// signInToAccount signs a new browser in on the account page.
func signInToAccount(t *testing.T, issuer, user, password string) (*browser, []byte) {
	t.Helper()
	b := newBrowser(t)
	resp, body := b.get(issuer + "/account")
	f := parseForm(t, resp.Request.URL.String(), body)
	if _, ok := f.Fields["password"]; !ok {
		t.Fatalf("/account without a session is not the login page:\n%s", body)
	}
	f.Fields.Set("username", user)
	f.Fields.Set("password", password)
	resp, body = b.post(f.Action, f.Fields)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != issuer+"/account" {
		t.Fatalf("sign-in: %s to %q; want 303 to the account page\n%s", resp.Status, resp.Header.Get("Location"), body)
	}
	resp, body = b.get(issuer + "/account")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Signed in as") {
		t.Fatalf("account page: %s\n%s", resp.Status, body)
	}
	return b, body
}

func TestAccountRevokeOnTheRealServer(t *testing.T) {
	ts := startServer(t)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	mustMcpd(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--data", ts.Data)
	clientID, redirect := publicClient(t, ts.URL, "Shared Client")
	aliceTok := login(t, ts.URL, clientID, redirect, "alice", "alice-pw", "notes:read")
	bobTok := login(t, ts.URL, clientID, redirect, "bob", "bob-pw", "notes:read")
	for range 3 { // the store's token cache now holds both tokens
		for _, tok := range []string{aliceTok.AccessToken, bobTok.AccessToken} {
			if st, _ := mcpStatus(t, ts.URL, tok); st != http.StatusOK {
				t.Fatalf("before revoke: status %d; want 200", st)
			}
		}
	}

	b, page := signInToAccount(t, ts.URL, "alice", "alice-pw")
	if !strings.Contains(string(page), "Shared Client") {
		t.Fatalf("the account page does not list the client:\n%s", page)
	}
	f := parseForm(t, ts.URL+"/account", page) // the first form is the only app's revoke form
	if f.Fields.Get("client_id") != clientID {
		t.Fatalf("first form %v; want the revoke form of %s", f.Fields, clientID)
	}
	f.Fields.Set("action", "revoke")
	if resp, body := b.post(f.Action, f.Fields); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %s\n%s", resp.Status, body)
	}

	if st, challenge := mcpStatus(t, ts.URL, aliceTok.AccessToken); st != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("alice's token after she revoked the client: %d %q; want 401 invalid_token", st, challenge)
	}
	if st, _ := mcpStatus(t, ts.URL, bobTok.AccessToken); st != http.StatusOK {
		t.Errorf("bob's token of the same client after alice revoked it: %d; want 200", st)
	}
	if _, body := b.get(ts.URL + "/account"); strings.Contains(string(body), "Shared Client") {
		t.Errorf("the revoked client is still listed")
	}
}

func TestPasswordLoginOffOnTheRealServer(t *testing.T) {
	ts := startServer(t, "--password-login=false")
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	_, body := newBrowser(t).get(ts.URL + "/account")
	if strings.Contains(string(body), `name="password"`) || !strings.Contains(string(body), "no way to sign in") {
		t.Fatalf("the login page should offer no password and say there is no way in:\n%s", body)
	}
}

// signedIn reports whether browser b is still signed in at issuer: its
// account page names the user instead of asking for a password.
func signedIn(t *testing.T, b *browser, issuer string) bool {
	t.Helper()
	_, body := b.get(issuer + "/account")
	return strings.Contains(string(body), "Signed in as")
}

// An operator resets a password when an account may be in someone else's
// hands; that someone's browser must not stay signed in.
func TestUserPasswdSignsTheUserOutEverywhere(t *testing.T) {
	t.Run("through the admin socket", func(t *testing.T) {
		ts := startServer(t)
		mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
		mustMcpd(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--data", ts.Data)
		alice, _ := signInToAccount(t, ts.URL, "alice", "alice-pw")
		bob, _ := signInToAccount(t, ts.URL, "bob", "bob-pw")
		if got := mustMcpd(t, "new alice pw\n", "user", "passwd", "alice", "--password-stdin", "--data", ts.Data); got != "changed the password of alice and signed alice out of every browser\n" {
			t.Errorf("user passwd printed %q", got)
		}
		if signedIn(t, alice, ts.URL) {
			t.Error("alice's browser is still signed in after mcpd user passwd alice")
		}
		if !signedIn(t, bob, ts.URL) {
			t.Error("bob's browser was signed out by alice's password reset")
		}
	})
	t.Run("on the stopped server's database", func(t *testing.T) {
		ts := startServer(t)
		mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
		alice, _ := signInToAccount(t, ts.URL, "alice", "alice-pw")
		ts.Stop(t)
		mustMcpd(t, "new alice pw\n", "user", "passwd", "alice", "--password-stdin", "--data", ts.Data)
		// Cookies ignore ports, so the browser sends its cookie to the
		// restarted server on its new port.
		again := startServer(t, "--data", ts.Data)
		if signedIn(t, alice, again.URL) {
			t.Error("alice's browser is still signed in after mcpd user passwd alice on the stopped server")
		}
	})
}
