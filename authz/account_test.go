package authz

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

var formRE = regexp.MustCompile(`(?s)<form\b[^>]*>.*?</form>`)

// accountForm returns the fields of the form on page p whose submit button
// is action (and, for revoke, whose client_id is clientID), ready to post.
func accountForm(t *testing.T, p page, action, clientID string) url.Values {
	t.Helper()
	for _, f := range formRE.FindAllString(p.body, -1) {
		if !strings.Contains(f, `name="action" value="`+action+`"`) {
			continue
		}
		if clientID != "" && !strings.Contains(f, `name="client_id" value="`+clientID+`"`) {
			continue
		}
		v := url.Values{"action": {action}}
		for _, tag := range inputTag.FindAllString(f, -1) {
			if !strings.Contains(tag, `type="hidden"`) {
				continue
			}
			var n, val string
			for _, m := range attr.FindAllStringSubmatch(tag, -1) {
				if m[1] == "name" {
					n = m[2]
				} else {
					val = m[2]
				}
			}
			v.Set(n, strings.ReplaceAll(val, "&amp;", "&"))
		}
		return v
	}
	t.Fatalf("no %s form (client %q) on the page: %.800s", action, clientID, p.body)
	return nil
}

// appRow returns the text of the connected-app row of clientID, "" when
// the page has none.
func appRow(p page, clientID string) string {
	for _, li := range regexp.MustCompile(`(?s)<li class="app">.*?</li>`).FindAllString(p.body, -1) {
		if strings.Contains(li, `value="`+clientID+`"`) {
			return li
		}
	}
	return ""
}

func TestAccountConnectedApps(t *testing.T) {
	e := newEnv(t, nil)
	vscode := e.registerPublic("http://127.0.0.1/cb")
	other := e.registerPublic("http://127.0.0.1/cb")
	remembered := e.registerPublic("http://127.0.0.1/cb")
	const redirect = "http://127.0.0.1:7000/cb"

	alice := e.browser()
	allowedAt := e.clock.Now()
	aliceTok := e.codeFlow(alice, vscode.ClientID, redirect, "notes:read notes:write")
	e.clock.Advance(10 * time.Minute)
	aliceOther := e.codeFlow(alice, other.ClientID, redirect, "notes:read")
	if err := e.store.PutConsent(context.Background(), Consent{
		User: "alice", ClientID: remembered.ClientID, Scopes: []string{"api:call"},
		RedirectHost: "127.0.0.1", CreatedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	bob := e.browser()
	bobLogin := bob.get(e.authorizeURL(authRequest{clientID: vscode.ClientID, redirect: redirect, scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
	bob.login(t, bobLogin, "bob", "battery staple")
	bobTok := e.codeFlow(bob, vscode.ClientID, redirect, "notes:read")

	page := alice.get(e.url(accountPath))

	t.Run("one row per client with a live grant or a remembered consent of this user", func(t *testing.T) {
		for _, id := range []string{vscode.ClientID, other.ClientID, remembered.ClientID} {
			if appRow(page, id) == "" {
				t.Errorf("no row for client %s", id)
			}
		}
		if n := strings.Count(page.body, `<li class="app">`); n != 3 {
			t.Errorf("%d app rows; want 3", n)
		}
	})

	t.Run("a row says who, how it registered, what it may do, when allowed and last used", func(t *testing.T) {
		row := appRow(page, vscode.ClientID)
		for _, want := range []string{
			"Test Client", "Registered itself", "Read your notes", "Create, change and delete your notes",
			formatWant(allowedAt), `value="revoke"`, `name="client_id"`,
		} {
			if !strings.Contains(row, want) {
				t.Errorf("row lacks %q:\n%s", want, row)
			}
		}
		if row := appRow(page, remembered.ClientID); !strings.Contains(row, "remembered") || !strings.Contains(row, "never") {
			t.Errorf("the consent-only row should say remembered and never used:\n%s", row)
		}
	})

	t.Run("the page refuses framing like every page", func(t *testing.T) {
		if got := page.header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("X-Frame-Options = %q; want DENY", got)
		}
		if got := page.header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("CSP = %q; want frame-ancestors 'none'", got)
		}
	})

	t.Run("a forged revoke is refused and ends nothing", func(t *testing.T) {
		form := accountForm(t, page, "revoke", vscode.ClientID)
		for _, token := range []string{"", "forged", accountForm(t, page, "signout", "").Get("csrf_token")} {
			f := url.Values{"csrf_token": {token}, "client_id": {vscode.ClientID}, "action": {"revoke"}}
			if got := alice.post(e.url(accountPath), f); got.status != http.StatusForbidden {
				t.Errorf("revoke with token %q: status %d; want 403", token, got.status)
			}
		}
		if got := e.browser().post(e.url(accountPath), form); got.status != http.StatusForbidden {
			t.Errorf("revoke from another browser: status %d; want 403", got.status)
		}
		if err := e.verify(aliceTok.AccessToken); err != nil {
			t.Errorf("alice's token died after forged revokes: %v", err)
		}
	})

	t.Run("revoke ends this user's grants of the client at once and forgets the consent", func(t *testing.T) {
		resp := alice.post(e.url(accountPath), accountForm(t, page, "revoke", vscode.ClientID))
		if resp.status != http.StatusSeeOther {
			t.Fatalf("revoke: status %d; want 303: %.300s", resp.status, resp.body)
		}
		if err := e.verify(aliceTok.AccessToken); err == nil {
			t.Error("alice's access token still verifies after revoke")
		}
		if st, _ := e.refresh(vscode.ClientID, aliceTok.RefreshToken); st == http.StatusOK {
			t.Error("alice's refresh token still works after revoke")
		}
		if err := e.verify(bobTok.AccessToken); err != nil {
			t.Errorf("bob's token of the same client died: %v", err)
		}
		if err := e.verify(aliceOther.AccessToken); err != nil {
			t.Errorf("alice's token of another client died: %v", err)
		}
		p := alice.get(resp.location(t).String())
		if appRow(p, vscode.ClientID) != "" || appRow(p, other.ClientID) == "" {
			t.Errorf("after revoke the page should list the other client and not the revoked one")
		}
		if !strings.Contains(p.body, "disconnected") {
			t.Errorf("no notice after revoke")
		}
	})

	t.Run("revoking a client the user never used ends no one else's grant of it", func(t *testing.T) {
		bobsOnly := e.registerPublic("http://127.0.0.1/cb")
		bobsTok := e.codeFlow(bob, bobsOnly.ClientID, redirect, "notes:read")
		f := accountForm(t, page, "revoke", vscode.ClientID)
		f.Set("client_id", bobsOnly.ClientID)
		resp := alice.post(e.url(accountPath), f)
		if resp.status != http.StatusSeeOther {
			t.Fatalf("revoke: status %d; want 303", resp.status)
		}
		if err := e.verify(bobsTok.AccessToken); err != nil {
			t.Errorf("bob's token died when alice revoked a client she never used: %v", err)
		}
		if st, _ := e.refresh(bobsOnly.ClientID, bobsTok.RefreshToken); st != http.StatusOK {
			t.Errorf("bob's refresh: status %d; want 200", st)
		}
	})

	t.Run("revoking a remembered consent makes the consent page show again", func(t *testing.T) {
		resp := alice.post(e.url(accountPath), accountForm(t, page, "revoke", remembered.ClientID))
		if resp.status != http.StatusSeeOther {
			t.Fatalf("revoke: status %d", resp.status)
		}
		if _, err := e.store.GetConsent(context.Background(), "alice", remembered.ClientID); err == nil {
			t.Error("the remembered consent survived the revoke")
		}
		p := alice.get(e.authorizeURL(authRequest{clientID: remembered.ClientID, redirect: redirect, scope: "api:call", verifier: oauth2.GenerateVerifier()}))
		if !isConsentPage(p) {
			t.Errorf("status %d; want the consent page again", p.status)
		}
	})
}

func formatWant(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

func TestAccountPassword(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	p := b.signIn(t, e, "bob", "battery staple")
	elsewhere := e.browser()
	elsewhere.signIn(t, e, "bob", "battery staple")

	change := func(current, next, again string) page {
		f := accountForm(t, p, "password", "")
		f.Set("current_password", current)
		f.Set("new_password", next)
		f.Set("new_password_again", again)
		return b.post(e.url(accountPath), f)
	}
	for _, tc := range []struct {
		name                 string
		current, next, again string
		status               int
		message              string
	}{
		{"a wrong current password is refused", "wrong", "new password 1", "new password 1", http.StatusUnauthorized, "current password is wrong"},
		{"a repetition that differs is refused", "battery staple", "new password 1", "new password 2", http.StatusBadRequest, "differ"},
		{"a short password is refused", "battery staple", "short", "short", http.StatusBadRequest, "too short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := change(tc.current, tc.next, tc.again)
			if got.status != tc.status || !strings.Contains(got.body, tc.message) {
				t.Errorf("status %d; want %d with %q: %.300s", got.status, tc.status, tc.message, got.body)
			}
			if err := e.store.Authenticate(context.Background(), "bob", "battery staple"); err != nil {
				t.Errorf("the password changed: %v", err)
			}
		})
	}

	t.Run("the right current password changes it and signs out the other sessions", func(t *testing.T) {
		before := b.cookie(e)
		got := change("battery staple", "new password 1", "new password 1")
		if got.status != http.StatusSeeOther {
			t.Fatalf("status %d; want 303: %.300s", got.status, got.body)
		}
		if err := e.store.Authenticate(context.Background(), "bob", "new password 1"); err != nil {
			t.Errorf("new password: %v", err)
		}
		if !isAccountPage(b.get(e.url(accountPath))) {
			t.Error("this session ended with the change")
		}
		if !isLoginPage(elsewhere.get(e.url(accountPath))) {
			t.Error("the other session survived the change")
		}
		// OWASP: a new session id after a change of credentials, so a
		// copy of the cookie taken before the change is worthless.
		if after := b.cookie(e); after == before || after == "" {
			t.Errorf("the session cookie was not renewed by the change")
		}
		replay := e.browser()
		u, _ := url.Parse(e.ts.URL)
		replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: e.srv.sessionCookie(), Value: before, Path: "/"}})
		if !isLoginPage(replay.get(e.url(accountPath))) {
			t.Error("the cookie from before the change still signs in")
		}
		p = b.get(e.url(accountPath)) // the forms of the new session
	})

	t.Run("wrong current passwords are rate-limited like sign-ins", func(t *testing.T) {
		var last int
		for range 6 {
			last = change("wrong", "new password 2", "new password 2").status
		}
		if last != http.StatusTooManyRequests {
			t.Errorf("sixth wrong current password: status %d; want 429", last)
		}
	})
}

func TestAccountPasswordHidden(t *testing.T) {
	t.Run("for a user without a password", func(t *testing.T) {
		e := newEnv(t, nil)
		e.store.users["dana"] = "" // as a sign-up through an identity provider leaves it
		b := e.browser()
		if err := b.startSessionFor(e, "dana"); err != nil {
			t.Fatal(err)
		}
		p := b.get(e.url(accountPath))
		if !isAccountPage(p) || strings.Contains(p.body, `value="password"`) {
			t.Errorf("status %d; want the account page without a password form", p.status)
		}
	})
	t.Run("when password login is off", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.DisablePasswordLogin = true })
		b := e.browser()
		if err := b.startSessionFor(e, "alice"); err != nil {
			t.Fatal(err)
		}
		p := b.get(e.url(accountPath))
		if !isAccountPage(p) || strings.Contains(p.body, `value="password"`) {
			t.Errorf("status %d; want the account page without a password form", p.status)
		}
		f := url.Values{"csrf_token": {e.srv.csrfToken(&session{id: b.cookie(e)}, "account", "password")}, "action": {"password"},
			"current_password": {"correct horse"}, "new_password": {"new password 1"}, "new_password_again": {"new password 1"}}
		if got := b.post(e.url(accountPath), f); got.status != http.StatusForbidden {
			t.Errorf("password change posted anyway: status %d; want 403", got.status)
		}
	})
}

// startSessionFor signs the browser in as user without a login form, as a
// sign-in method that is not a password does.
func (b *browser) startSessionFor(e *env, user string) error {
	rec := &cookieRecorder{header: http.Header{}}
	if err := e.srv.startSession(context.Background(), rec, user, "test"); err != nil {
		return err
	}
	u, _ := url.Parse(e.ts.URL)
	b.hc.Jar.SetCookies(u, (&http.Response{Header: rec.header}).Cookies())
	return nil
}

type cookieRecorder struct{ header http.Header }

func (c *cookieRecorder) Header() http.Header         { return c.header }
func (c *cookieRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (c *cookieRecorder) WriteHeader(int)             {}

// TestSignOutEverywhere: a user who signs in only with a passkey or a
// provider has no password to change, and still needs to end a session
// left on another computer or started with a passkey since removed.
func TestSignOutEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	e.store.users["dana"] = "" // no password, as a sign-up through an identity provider leaves it
	here, there, bob := e.browser(), e.browser(), e.browser()
	for _, b := range []*browser{here, there} {
		if err := b.startSessionFor(e, "dana"); err != nil {
			t.Fatal(err)
		}
	}
	bob.signIn(t, e, "bob", "battery staple")
	page := here.get(e.url(accountPath))

	t.Run("a forged sign-out everywhere is refused", func(t *testing.T) {
		for _, token := range []string{"", accountForm(t, page, "signout", "").Get("csrf_token")} {
			f := url.Values{"csrf_token": {token}, "action": {"signout-all"}}
			if got := here.post(e.url(accountPath), f); got.status != http.StatusForbidden {
				t.Errorf("with token %q: status %d; want 403", token, got.status)
			}
		}
		if !isAccountPage(there.get(e.url(accountPath))) {
			t.Error("a forged post signed the other browser out")
		}
	})

	t.Run("it ends every session of the user, and no one else's", func(t *testing.T) {
		resp := here.post(e.url(accountPath), accountForm(t, page, "signout-all", ""))
		if resp.status != http.StatusSeeOther {
			t.Fatalf("status %d; want 303: %.300s", resp.status, resp.body)
		}
		if p := here.get(resp.location(t).String()); !isLoginPage(p) || !strings.Contains(p.body, "every browser") {
			t.Errorf("after it: status %d; want the login page saying so: %.300s", p.status, p.body)
		}
		if !isLoginPage(there.get(e.url(accountPath))) {
			t.Error("dana's other browser is still signed in")
		}
		if n := len(e.store.sessionsOf("dana")); n != 0 {
			t.Errorf("%d sessions of dana stored; want none", n)
		}
		if !isAccountPage(bob.get(e.url(accountPath))) {
			t.Error("bob was signed out by dana")
		}
	})
}
