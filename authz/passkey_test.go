package authz

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// scriptAnswer is the JSON a begin endpoint answers the page script.
type scriptAnswer struct {
	Ceremony  string          `json:"ceremony"`
	PublicKey json.RawMessage `json:"publicKey"`
	Error     string          `json:"error"`
}

// begin posts to a begin endpoint as the page script does.
func (b *browser) begin(t *testing.T, u string, form url.Values) (int, scriptAnswer) {
	t.Helper()
	p := b.post(u, form)
	var a scriptAnswer
	if err := json.Unmarshal([]byte(p.body), &a); err != nil {
		t.Fatalf("begin %s: status %d, not JSON: %.300s", u, p.status, p.body)
	}
	return p.status, a
}

// passkeyEnv is a server at http://localhost:PORT, where passkeys work,
// and a software authenticator for it.
func passkeyEnv(t *testing.T) (*env, *softAuthenticator) {
	e := newEnvAt(t, "localhost", nil)
	u, _ := url.Parse(e.ts.URL)
	return e, &softAuthenticator{rpID: "localhost", origin: u.Scheme + "://" + u.Host}
}

// addPasskey adds a passkey of a on the account page of the signed-in
// browser b and returns the response to the form and the credential.
func (e *env) addPasskey(t *testing.T, b *browser, a *softAuthenticator, name string) (page, *softCredential) {
	t.Helper()
	f := accountForm(t, b.get(e.url(accountPath)), "passkey-add", "")
	st, ans := b.begin(t, e.url(passkeyAddBeginPath), url.Values{"csrf_token": {f.Get("csrf_token")}})
	if st != http.StatusOK {
		t.Fatalf("registration begin: %d %s", st, ans.Error)
	}
	body, cred := a.create(t, ans.PublicKey)
	f.Set("ceremony", ans.Ceremony)
	f.Set("credential", body)
	f.Set("name", name)
	return b.post(e.url(accountPath), f), cred
}

// passkeyForm returns the fields of the login page's passkey form.
func passkeyForm(t *testing.T, p page) url.Values {
	t.Helper()
	for _, f := range formRE.FindAllString(p.body, -1) {
		if strings.Contains(f, `data-passkey="login"`) {
			return url.Values{
				"csrf_token": {hiddenField(t, f, "csrf_token")},
				"request_id": {hiddenField(t, f, "request_id")},
			}
		}
	}
	t.Fatalf("no passkey form on the page: %.500s", p.body)
	return nil
}

// passkeyAssertion begins a passkey sign-in from login page p and returns
// the form the script would post, with the assertion sign makes.
func (e *env) passkeyAssertion(t *testing.T, b *browser, p page, sign func(options json.RawMessage) string) url.Values {
	t.Helper()
	f := passkeyForm(t, p)
	st, ans := b.begin(t, e.url(passkeyLoginBeginPath), f)
	if st != http.StatusOK {
		t.Fatalf("login begin: %d %s", st, ans.Error)
	}
	f.Set("ceremony", ans.Ceremony)
	f.Set("credential", sign(ans.PublicKey))
	return f
}

func TestPasskeys(t *testing.T) {
	e, a := passkeyEnv(t)
	reg := e.registerPublic("http://127.0.0.1/cb")
	const redirect = "http://127.0.0.1:7000/cb"
	authURL := func() string {
		return e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: redirect, scope: "notes:read", verifier: oauth2.GenerateVerifier()})
	}
	alice := e.browser()
	alice.signIn(t, e, "alice", "correct horse")
	resp, cred := e.addPasskey(t, alice, a, "Laptop")

	t.Run("a passkey added on the account page is listed by its name", func(t *testing.T) {
		if resp.status != http.StatusSeeOther {
			t.Fatalf("add: status %d; want 303: %.300s", resp.status, resp.body)
		}
		p := alice.get(resp.location(t).String())
		if !strings.Contains(p.body, "Laptop") || !strings.Contains(p.body, "The passkey is added") {
			t.Errorf("account page after adding: %.500s", p.body)
		}
	})

	t.Run("the store keeps its public key, not a secret, and no user verification is skipped", func(t *testing.T) {
		keys, _ := e.store.ListPasskeys(t.Context(), "alice")
		if len(keys) != 1 || len(keys[0].PublicKey) == 0 || !keys[0].UserVerified || keys[0].Name != "Laptop" {
			t.Fatalf("stored passkeys %+v; want one verified ES256 public key named Laptop", keys)
		}
	})

	var used url.Values
	t.Run("signing in with it, without a user name, continues the authorization", func(t *testing.T) {
		b := e.browser()
		p := b.get(authURL())
		used = e.passkeyAssertion(t, b, p, func(o json.RawMessage) string { return a.get(t, o, cred) })
		resp := b.post(e.url(passkeyLoginPath), used)
		if resp.status != http.StatusSeeOther || resp.location(t).Path != "/authorize" {
			t.Fatalf("status %d Location %q; want 303 to /authorize: %.300s", resp.status, resp.header.Get("Location"), resp.body)
		}
		if p := b.get(resp.location(t).String()); !isConsentPage(p) || !strings.Contains(p.body, "alice") {
			t.Errorf("after the passkey: status %d; want alice's consent page", p.status)
		}
		keys, _ := e.store.ListPasskeys(t.Context(), "alice")
		if keys[0].SignCount != 1 || keys[0].LastUsedAt.IsZero() {
			t.Errorf("stored count %d, last used %v; want the sign-in recorded", keys[0].SignCount, keys[0].LastUsedAt)
		}
		var methods []string
		for _, s := range e.store.sessionsOf("alice") {
			methods = append(methods, s.Method)
		}
		if !slices.Contains(methods, "passkey") {
			t.Errorf("alice's sessions were started by %v; want one by passkey", methods)
		}
	})

	t.Run("the same sign-in posted again is refused", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.url(accountPath))
		visitor := b.cookie(e)
		f := e.passkeyAssertion(t, b, p, func(o json.RawMessage) string { return a.get(t, o, cred) })
		if got := b.post(e.url(passkeyLoginPath), f); got.status != http.StatusSeeOther {
			t.Fatalf("first sign-in: status %d", got.status)
		}
		replay := e.browser() // the same visitor cookie, as whoever copied the request has
		u, _ := url.Parse(e.ts.URL)
		replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: e.srv.sessionCookie(), Value: visitor, Path: "/"}})
		got := replay.post(e.url(passkeyLoginPath), f)
		if got.status != http.StatusBadRequest || !strings.Contains(got.body, "already used") {
			t.Errorf("replay: status %d; want 400 saying it was used: %.300s", got.status, got.body)
		}
		if isAccountPage(replay.get(e.url(accountPath))) {
			t.Error("the replay signed in")
		}
	})

	t.Run("an old assertion with a fresh ceremony is refused", func(t *testing.T) {
		b := e.browser()
		f := e.passkeyAssertion(t, b, b.get(e.url(accountPath)), func(json.RawMessage) string { return used.Get("credential") })
		if got := b.post(e.url(passkeyLoginPath), f); got.status != http.StatusUnauthorized {
			t.Errorf("status %d; want 401", got.status)
		}
	})

	for _, tc := range []struct {
		name string
		sign func(t *testing.T, o json.RawMessage) string
		want string
	}{
		{"an assertion for another RP ID is refused", func(t *testing.T, o json.RawMessage) string {
			evil := *a
			evil.rpID = "evil.example"
			return evil.get(t, o, cred)
		}, "could not be verified"},
		{"an assertion from another origin is refused", func(t *testing.T, o json.RawMessage) string {
			evil := *a
			evil.origin = "http://evil.example"
			return evil.get(t, o, cred)
		}, "could not be verified"},
		{"an assertion without user verification is refused", func(t *testing.T, o json.RawMessage) string {
			lax := *a
			lax.noUV = true
			return lax.get(t, o, cred)
		}, "could not be verified"},
		{"an assertion naming another user's handle is refused", func(t *testing.T, o json.RawMessage) string {
			other := *cred
			other.userHandle = e.srv.passkeys.userHandle("bob") // alice's key, bob's handle
			return a.get(t, o, &other)
		}, "could not be verified"},
		{"an assertion made in a frame of another origin is refused", func(t *testing.T, o json.RawMessage) string {
			framed := *a
			framed.crossOrigin = true
			return framed.get(t, o, cred)
		}, "could not be verified"},
		{"a signature counter that does not move on is refused as a clone", func(t *testing.T, o json.RawMessage) string {
			keys, _ := e.store.ListPasskeys(t.Context(), "alice")
			return a.getAt(t, o, cred, keys[0].SignCount) // the count the server saw last
		}, "may have been copied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			f := e.passkeyAssertion(t, b, b.get(e.url(accountPath)), func(o json.RawMessage) string { return tc.sign(t, o) })
			got := b.post(e.url(passkeyLoginPath), f)
			if got.status != http.StatusUnauthorized || !strings.Contains(got.body, tc.want) {
				t.Errorf("status %d; want 401 saying %q: %.300s", got.status, tc.want, got.body)
			}
			if isAccountPage(b.get(e.url(accountPath))) {
				t.Error("signed in")
			}
		})
	}

	t.Run("a ceremony begun in another browser does not finish in this one", func(t *testing.T) {
		other := e.browser()
		f := e.passkeyAssertion(t, other, other.get(e.url(accountPath)), func(o json.RawMessage) string { return a.get(t, o, cred) })
		b := e.browser()
		mine := passkeyForm(t, b.get(e.url(accountPath)))
		f.Set("csrf_token", mine.Get("csrf_token"))
		if got := b.post(e.url(passkeyLoginPath), f); got.status != http.StatusBadRequest {
			t.Errorf("status %d; want 400", got.status)
		}
	})

	t.Run("begin without the page's CSRF token is refused", func(t *testing.T) {
		b := e.browser()
		b.get(e.url(accountPath))
		for _, u := range []string{e.url(passkeyLoginBeginPath), e.url(passkeyAddBeginPath)} {
			if st, _ := b.begin(t, u, url.Values{"csrf_token": {"forged"}}); st != http.StatusForbidden {
				t.Errorf("%s: status %d; want 403", u, st)
			}
		}
	})

	t.Run("a registration without user verification is refused", func(t *testing.T) {
		lax := *a
		lax.noUV = true
		got, _ := e.addPasskey(t, alice, &lax, "No UV")
		if got.status != http.StatusBadRequest || strings.Contains(alice.get(e.url(accountPath)).body, "No UV") {
			t.Errorf("status %d; want 400 and no passkey added", got.status)
		}
	})

	t.Run("a passkey is renamed, and another user's cannot be removed", func(t *testing.T) {
		bob := e.browser()
		bob.signIn(t, e, "bob", "battery staple")
		e.addPasskey(t, bob, a, "Bob's key")
		bobKeys, _ := e.store.ListPasskeys(t.Context(), "bob")
		f := accountForm(t, alice.get(e.url(accountPath)), "passkey-remove", "")
		f.Set("passkey_id", passkeyID(bobKeys[0].ID))
		if got := alice.post(e.url(accountPath), f); got.status != http.StatusNotFound {
			t.Errorf("alice removes bob's passkey: status %d; want 404", got.status)
		}
		if keys, _ := e.store.ListPasskeys(t.Context(), "bob"); len(keys) != 1 {
			t.Errorf("bob has %d passkeys; want 1", len(keys))
		}
		f = accountForm(t, alice.get(e.url(accountPath)), "passkey-rename", "")
		f.Set("name", "Work laptop")
		if got := alice.post(e.url(accountPath), f); got.status != http.StatusSeeOther {
			t.Fatalf("rename: status %d", got.status)
		}
		if !strings.Contains(alice.get(e.url(accountPath)).body, "Work laptop") {
			t.Error("the new name is not shown")
		}
	})

	t.Run("a removed passkey no longer signs in", func(t *testing.T) {
		f := accountForm(t, alice.get(e.url(accountPath)), "passkey-remove", "")
		if got := alice.post(e.url(accountPath), f); got.status != http.StatusSeeOther {
			t.Fatalf("remove: status %d", got.status)
		}
		b := e.browser()
		f = e.passkeyAssertion(t, b, b.get(e.url(accountPath)), func(o json.RawMessage) string { return a.get(t, o, cred) })
		got := b.post(e.url(passkeyLoginPath), f)
		if got.status != http.StatusUnauthorized || !strings.Contains(got.body, "not registered") {
			t.Errorf("status %d; want 401 saying the passkey is not registered: %.300s", got.status, got.body)
		}
	})
}

func TestPasskeysNeedASecureContext(t *testing.T) {
	for _, tc := range []struct {
		issuer string
		want   string // "" when passkeys work
	}{
		{"http://127.0.0.1:8080", "IP address"},
		{"http://[::1]:8080", "IP address"},
		{"https://10.0.0.5", "IP address"},
		{"http://mcpd.example:8080", "secure connection"},
		{"http://localhost:8080", ""},
		{"http://mcpd.localhost", ""},
		{"https://mcpd.example", ""},
		{"https://mcpd.example/prefix", ""},
	} {
		t.Run(tc.issuer, func(t *testing.T) {
			rp, err := newPasskeyRP(tc.issuer, []byte("key"))
			if err != nil {
				t.Fatal(err)
			}
			if (rp.rp == nil) != (tc.want != "") || !strings.Contains(rp.off, tc.want) {
				t.Errorf("rp set %v, off %q; want off containing %q", rp.rp != nil, rp.off, tc.want)
			}
			if rp.rp != nil {
				u, _ := url.Parse(tc.issuer)
				if rp.rp.Config.RPID != u.Hostname() || rp.rp.Config.RPOrigins[0] != u.Scheme+"://"+u.Host {
					t.Errorf("RP ID %q origins %v; want the issuer's host and origin", rp.rp.Config.RPID, rp.rp.Config.RPOrigins)
				}
			}
		})
	}

	t.Run("on an IP issuer the pages say why and the endpoints refuse", func(t *testing.T) {
		e := newEnv(t, nil)
		b := e.browser()
		login := b.get(e.url(accountPath))
		if strings.Contains(login.body, `data-passkey`) {
			t.Error("the login page offers passkeys on an IP issuer")
		}
		if !strings.Contains(login.body, `id="passkey-off"`) || !strings.Contains(login.body, "IP address") || !strings.Contains(login.body, "http://localhost:") {
			t.Errorf("the login page does not say why it has no passkey sign-in, and what to do: %.800s", login.body)
		}
		p := b.signIn(t, e, "alice", "correct horse")
		if !strings.Contains(p.body, "IP address") || strings.Contains(p.body, `data-passkey="register"`) {
			t.Errorf("account page should explain and offer no add form: %.500s", p.body)
		}
		st, ans := b.begin(t, e.url(passkeyAddBeginPath), url.Values{"csrf_token": {e.srv.csrfToken(&session{id: b.cookie(e)}, "account", "passkey-add")}})
		if st != http.StatusBadRequest || !strings.Contains(ans.Error, "IP address") {
			t.Errorf("begin: %d %q; want 400 with the reason", st, ans.Error)
		}
	})
}

func TestPasskeyCeremoniesAreRateLimited(t *testing.T) {
	e, _ := passkeyEnv(t)
	b := e.browser()
	f := passkeyForm(t, b.get(e.url(accountPath)))
	var last int
	for range maxCeremoniesPerMinute + 1 {
		last, _ = b.begin(t, e.url(passkeyLoginBeginPath), f)
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("ceremony %d from one address in a minute: status %d; want 429", maxCeremoniesPerMinute+1, last)
	}
	e.clock.Advance(time.Minute)
	if st, _ := b.begin(t, e.url(passkeyLoginBeginPath), f); st != http.StatusOK {
		t.Errorf("a minute later: status %d; want 200", st)
	}
}

// TestAddingAPasskeyNeedsARecentSignIn: a passkey is a way in that outlives
// the session and a password change, so only a browser that proved who it
// is lately may add one; a stolen cookie of an older session may not.
func TestAddingAPasskeyNeedsARecentSignIn(t *testing.T) {
	e, a := passkeyEnv(t)

	t.Run("within 15 minutes of sign-in a passkey is added", func(t *testing.T) {
		b := e.browser()
		b.signIn(t, e, "bob", "battery staple")
		e.clock.Advance(14 * time.Minute)
		if got, _ := e.addPasskey(t, b, a, "Fresh"); got.status != http.StatusSeeOther {
			t.Errorf("status %d; want 303: %.300s", got.status, got.body)
		}
	})

	b := e.browser()
	b.signIn(t, e, "alice", "correct horse")
	early := b.get(e.url(accountPath)) // its add form's token, for the late begin below
	e.clock.Advance(recentSignIn + time.Minute)
	page := b.get(e.url(accountPath))

	t.Run("later the account page asks to sign in again instead of offering to add one", func(t *testing.T) {
		if !isAccountPage(page) || strings.Contains(page.body, `data-passkey="register"`) {
			t.Fatalf("status %d; want the account page without the add form: %.500s", page.status, page.body)
		}
		if !strings.Contains(page.body, `value="reauth"`) {
			t.Errorf("no sign-in-again button: %.500s", page.body)
		}
	})

	t.Run("and a registration begun anyway is refused", func(t *testing.T) {
		f := accountForm(t, early, "passkey-add", "")
		st, ans := b.begin(t, e.url(passkeyAddBeginPath), url.Values{"csrf_token": {f.Get("csrf_token")}})
		if st != http.StatusForbidden || !strings.Contains(ans.Error, "sign in again") {
			t.Errorf("begin: %d %q; want 403 asking to sign in again", st, ans.Error)
		}
		if keys, _ := e.store.ListPasskeys(t.Context(), "alice"); len(keys) != 0 {
			t.Errorf("alice has %d passkeys; want none", len(keys))
		}
	})

	t.Run("signing in again, from that button, lets the passkey be added", func(t *testing.T) {
		old := b.cookie(e)
		resp := b.post(e.url(accountPath), accountForm(t, page, "reauth", ""))
		if resp.status != http.StatusSeeOther {
			t.Fatalf("sign in again: status %d; want 303", resp.status)
		}
		login := b.get(resp.location(t).String())
		if !isLoginPage(login) || !strings.Contains(login.body, "add a passkey") {
			t.Fatalf("after the button: status %d; want the login page saying why: %.500s", login.status, login.body)
		}
		for _, s := range e.store.sessionsOf("alice") {
			if s.ID == sessionKey(old) {
				t.Error("the old session still stands")
			}
		}
		b.login(t, login, "alice", "correct horse")
		if got, _ := e.addPasskey(t, b, a, "Laptop"); got.status != http.StatusSeeOther {
			t.Errorf("add after signing in again: status %d; want 303: %.300s", got.status, got.body)
		}
	})
}

// TestPasskeyLimitHoldsAtTheFinish: the limit of passkeys per account is
// checked when one is added, not only when its ceremony begins, so
// ceremonies begun together cannot add more.
func TestPasskeyLimitHoldsAtTheFinish(t *testing.T) {
	e, a := passkeyEnv(t)
	for i := range maxPasskeysPerUser - 1 {
		if err := e.store.CreatePasskey(t.Context(), Passkey{ID: []byte{0xee, byte(i)}, User: "alice", Name: "Old", PublicKey: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.signIn(t, e, "alice", "correct horse")
	f := accountForm(t, b.get(e.url(accountPath)), "passkey-add", "")
	var forms []url.Values
	for range 2 { // both begun while alice has one passkey less than the limit
		st, ans := b.begin(t, e.url(passkeyAddBeginPath), url.Values{"csrf_token": {f.Get("csrf_token")}})
		if st != http.StatusOK {
			t.Fatalf("begin: %d %s", st, ans.Error)
		}
		body, _ := a.create(t, ans.PublicKey)
		g := url.Values{}
		for k, v := range f {
			g[k] = v
		}
		g.Set("ceremony", ans.Ceremony)
		g.Set("credential", body)
		g.Set("name", "New")
		forms = append(forms, g)
	}
	if got := b.post(e.url(accountPath), forms[0]); got.status != http.StatusSeeOther {
		t.Fatalf("first finish: status %d; want 303: %.300s", got.status, got.body)
	}
	got := b.post(e.url(accountPath), forms[1])
	if got.status != http.StatusBadRequest || !strings.Contains(got.body, "the most an account may have") {
		t.Errorf("second finish: status %d; want 400 saying the account is full: %.300s", got.status, got.body)
	}
	if keys, _ := e.store.ListPasskeys(t.Context(), "alice"); len(keys) != maxPasskeysPerUser {
		t.Errorf("alice has %d passkeys; want %d", len(keys), maxPasskeysPerUser)
	}
}

func TestPasskeyName(t *testing.T) {
	for _, tc := range []struct {
		rule, in, want string
		ok             bool
	}{
		{"a plain name is kept", "Laptop", "Laptop", true},
		{"spaces around it are trimmed", "  Work phone \t", "Work phone", true},
		{"letters of any script and emoji are names", "Téléphone 👩‍💻", "Téléphone 👩‍💻", true},
		{"64 characters are allowed", strings.Repeat("é", 64), strings.Repeat("é", 64), true},
		{"65 characters are too many", strings.Repeat("é", 65), "", false},
		{"an empty name is refused", "   ", "", false},
		{"a control character is refused", "Lap\x1b[2Jtop", "", false},
		// As for client names: an override or isolate makes the rest of
		// a line (the account page's, the admin's table) read otherwise.
		{"a bidirectional override is refused", "Laptop\u202egnp.exe", "", false},
		{"a bidirectional isolate is refused", "\u2067Laptop", "", false},
		{"invalid UTF-8 is refused", "Lap\xfftop", "", false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			got, ok := passkeyName(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("passkeyName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzPasskeyName: whatever a browser posts as a passkey's name, a name
// that is kept is what was typed, trimmed, and safe to show on a page and
// in the admin's table.
func FuzzPasskeyName(f *testing.F) {
	for _, s := range []string{"Laptop", " Phone ", "Lap\u202etop", "\xff", strings.Repeat("x", 70), "👩‍💻"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := passkeyName(in)
		if !ok {
			if got != "" {
				t.Errorf("passkeyName(%q) refused but returned %q", in, got)
			}
			return
		}
		if got != strings.TrimSpace(in) || got == "" || !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxPasskeyName {
			t.Errorf("passkeyName(%q) = %q", in, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Errorf("passkeyName(%q) kept %U", in, r)
			}
		}
	})
}
