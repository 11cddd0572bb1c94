package authz

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/web"
)

// cookie returns the value of the browser's session cookie for e.
func (b *browser) cookie(e *env) string {
	u, _ := url.Parse(e.ts.URL)
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == e.srv.sessionCookie() {
			return c.Value
		}
	}
	return ""
}

// signIn opens the account page and signs in there.
func (b *browser) signIn(t *testing.T, e *env, user, password string) page {
	t.Helper()
	return b.login(t, b.get(e.url(accountPath)), user, password)
}

func isAccountPage(p page) bool {
	return p.status == http.StatusOK && strings.Contains(p.body, "Your account")
}

func TestSignInToTheAccountPage(t *testing.T) {
	e := newEnv(t, nil)

	t.Run("without a session the account page is the login page, continuing to no request", func(t *testing.T) {
		p := e.browser().get(e.url(accountPath))
		if !isLoginPage(p) {
			t.Fatalf("status %d; want the login page: %.300s", p.status, p.body)
		}
		if id := hiddenField(t, p.body, "request_id"); id != "" {
			t.Errorf("request_id = %q; want none", id)
		}
	})

	t.Run("signing in there continues to the account page, which names the user", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.url(accountPath))
		resp := b.post(actionOf(t, p.body), url.Values{
			"csrf_token": {hiddenField(t, p.body, "csrf_token")}, "request_id": {""},
			"username": {"alice"}, "password": {"correct horse"},
		})
		if resp.status != http.StatusSeeOther || resp.header.Get("Location") != e.url(accountPath) {
			t.Fatalf("status %d Location %q; want 303 to %s", resp.status, resp.header.Get("Location"), e.url(accountPath))
		}
		p = b.get(e.url(accountPath))
		if !isAccountPage(p) || !strings.Contains(p.body, "alice") {
			t.Errorf("account page: status %d: %.300s", p.status, p.body)
		}
	})

	t.Run("a return address in the request is never followed", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.url(accountPath + "?next=https://evil.example/&return_to=https://evil.example/"))
		form := url.Values{
			"csrf_token": {hiddenField(t, p.body, "csrf_token")}, "request_id": {""},
			"username": {"alice"}, "password": {"correct horse"},
		}
		for _, k := range []string{"next", "return_to", "redirect_uri", "continue", "url"} {
			form.Set(k, "https://evil.example/")
		}
		resp := b.post(e.url(loginPath+"?next=https://evil.example/"), form)
		if got := resp.header.Get("Location"); got != e.url(accountPath) {
			t.Errorf("Location %q; want exactly %s", got, e.url(accountPath))
		}
	})

	t.Run("an unknown pending request is refused, not redirected", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.url(accountPath))
		sess := &session{id: b.cookie(e)}
		resp := b.post(e.url(loginPath), url.Values{
			"csrf_token": {e.srv.csrfToken(sess, "login", "made-up")}, "request_id": {"made-up"},
			"username": {"alice"}, "password": {"correct horse"},
		})
		if resp.status != http.StatusBadRequest || resp.header.Get("Location") != "" {
			t.Errorf("status %d Location %q; want 400 and no redirect", resp.status, resp.header.Get("Location"))
		}
		if isAccountPage(b.get(e.url(accountPath))) {
			t.Errorf("signed in through an unknown request")
		}
		_ = p
	})
}

func TestSessionRecords(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SessionIdleTimeout = 12 * time.Hour })

	t.Run("a visitor gets a cookie, and the store no session", func(t *testing.T) {
		b := e.browser()
		reg := e.registerPublic("http://127.0.0.1/cb")
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", verifier: oauth2.GenerateVerifier()}))
		if !isLoginPage(p) || b.cookie(e) == "" {
			t.Fatalf("want the login page and a cookie; status %d", p.status)
		}
		if n := len(e.store.sessionsOf("")); n != 0 {
			t.Errorf("%d sessions stored for a visitor; want none", n)
		}
	})

	t.Run("signing in replaces the visitor's cookie and the store keeps only its hash", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.url(accountPath))
		before := b.cookie(e)
		b.login(t, p, "bob", "battery staple")
		after := b.cookie(e)
		if after == "" || after == before {
			t.Fatalf("cookie %q after sign-in, %q before; want a new one", after, before)
		}
		stored := e.store.sessionsOf("bob")
		if len(stored) != 1 {
			t.Fatalf("%d sessions stored for bob; want 1", len(stored))
		}
		if stored[0].ID == after || strings.Contains(stored[0].ID, after) {
			t.Errorf("the store holds the cookie itself")
		}
		if stored[0].ID != sessionKey(after) || stored[0].Method != "password" {
			t.Errorf("stored session %+v; want the cookie's hash and method password", stored[0])
		}
	})

	t.Run("viewing pages touches the session at most once per interval", func(t *testing.T) {
		b := e.browser()
		b.signIn(t, e, "alice", "correct horse")
		e.store.mu.Lock()
		e.store.touches = 0
		e.store.mu.Unlock()
		for range 5 {
			b.get(e.url(accountPath))
		}
		e.clock.Advance(6 * time.Minute)
		for range 5 {
			if p := b.get(e.url(accountPath)); !isAccountPage(p) {
				t.Fatalf("signed out while viewing pages: %d", p.status)
			}
		}
		e.store.mu.Lock()
		touches := e.store.touches
		e.store.mu.Unlock()
		if touches != 1 {
			t.Errorf("%d writes for 10 page views over 6 minutes; want 1", touches)
		}
	})

	t.Run("a session in use outlives the idle timeout and an idle one ends", func(t *testing.T) {
		b := e.browser()
		b.signIn(t, e, "alice", "correct horse")
		e.clock.Advance(11 * time.Hour)
		if !isAccountPage(b.get(e.url(accountPath))) {
			t.Fatal("signed out after 11 idle hours of 12")
		}
		e.clock.Advance(11 * time.Hour)
		if !isAccountPage(b.get(e.url(accountPath))) {
			t.Fatal("signed out 22 hours after sign-in although used at 11")
		}
		e.clock.Advance(12*time.Hour + time.Second)
		if !isLoginPage(b.get(e.url(accountPath))) {
			t.Error("still signed in after 12 idle hours")
		}
	})

	t.Run("signing out ends the session on the server, whatever the browser keeps", func(t *testing.T) {
		b := e.browser()
		p := b.signIn(t, e, "bob", "battery staple")
		old := b.cookie(e)
		resp := b.post(e.url(accountPath), accountForm(t, p, "signout", ""))
		if resp.status != http.StatusSeeOther {
			t.Fatalf("sign out: status %d; want 303", resp.status)
		}
		if p := b.get(resp.location(t).String()); !isLoginPage(p) || !strings.Contains(p.body, "You are signed out.") {
			t.Errorf("after sign-out: status %d; want the login page saying so", p.status)
		}
		replay := e.browser()
		u, _ := url.Parse(e.ts.URL)
		replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: e.srv.sessionCookie(), Value: old, Path: "/"}})
		if !isLoginPage(replay.get(e.url(accountPath))) {
			t.Error("the old cookie still signs in after sign-out")
		}
		for _, s := range e.store.sessionsOf("bob") {
			if s.ID == sessionKey(old) {
				t.Error("the signed-out session is still stored")
			}
		}
	})

	t.Run("sign-out without the form's CSRF token is refused", func(t *testing.T) {
		b := e.browser()
		p := b.signIn(t, e, "alice", "correct horse")
		for _, token := range []string{"", "forged", e.srv.csrfToken(&session{id: b.cookie(e)}, "account", "other-action")} {
			resp := b.post(e.url(accountPath), url.Values{"csrf_token": {token}, "action": {"signout"}})
			if resp.status != http.StatusForbidden {
				t.Errorf("sign-out with token %q: status %d; want 403", token, resp.status)
			}
		}
		if !isAccountPage(b.get(e.url(accountPath))) {
			t.Error("a forged sign-out ended the session")
		}
		_ = p
	})
}

// TestReplicasShareSignIn runs two authorization servers on one store
// behind one address, answering requests in turn, as replicas behind a
// balancer without sticky sessions do: a sign-in and a consent that hop
// between them work, because sessions and pending requests live in the
// store.
func TestReplicasShareSignIn(t *testing.T) {
	st := newMemStore()
	clk := &clock{t: time.Now()}
	st.now = clk.Now
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	var routers []*mux.Router
	var first *Server
	for range 2 {
		srv, err := New(testConfig(t, issuer, st, clk))
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = srv
		}
		r := mux.NewRouter()
		srv.Register(r)
		routers = append(routers, r)
	}
	var turn atomic.Int64
	served := make([]atomic.Int64, 2)
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(turn.Add(1)) % 2
		served[i].Add(1)
		routers[i].ServeHTTP(w, r)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	e := &env{t: t, srv: first, ts: ts, store: st, clock: clk}

	reg := e.registerPublic("http://127.0.0.1/cb")
	tok := e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:7000/cb", "notes:read")
	if tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	if served[0].Load() < 3 || served[1].Load() < 3 {
		t.Errorf("replicas served %d and %d requests; want both several", served[0].Load(), served[1].Load())
	}
}

func TestPasswordLoginOff(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DisablePasswordLogin = true })
	b := e.browser()
	p := b.get(e.url(accountPath))

	t.Run("the login page has no password form", func(t *testing.T) {
		if strings.Contains(p.body, `name="password"`) || strings.Contains(p.body, `name="username"`) {
			t.Errorf("login page offers a password form: %.500s", p.body)
		}
	})

	t.Run("a right password posted anyway is refused", func(t *testing.T) {
		sess := &session{id: b.cookie(e)}
		resp := b.post(e.url(loginPath), url.Values{
			"csrf_token": {e.srv.csrfToken(sess, "login", "")}, "request_id": {""},
			"username": {"alice"}, "password": {"correct horse"},
		})
		if resp.status != http.StatusForbidden {
			t.Errorf("status %d; want 403", resp.status)
		}
		if isAccountPage(b.get(e.url(accountPath))) {
			t.Error("signed in with a password although passwords are off")
		}
	})
}

// TestLoginLinks checks the hook extra sign-in methods (identity
// providers) use: a link button on the login page that carries the pending
// request, and completeLogin, which continues to it.
func TestLoginLinks(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.loginLinks = append(e.srv.loginLinks, func(requestID string) web.LoginLink {
		return web.LoginLink{Label: "Sign in with Example", Href: e.url("/login/test?request_id=" + url.QueryEscape(requestID))}
	})
	e.router.HandleFunc("/login/test", func(w http.ResponseWriter, r *http.Request) {
		e.srv.completeLogin(w, r, "alice", "test", r.URL.Query().Get("request_id"))
	})
	reg := e.registerPublic("http://127.0.0.1/cb")
	link := regexpLink("Sign in with Example")

	t.Run("the login page shows the link with the pending request", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		href := link(t, p.body)
		if want := "request_id=" + url.QueryEscape(hiddenField(t, p.body, "request_id")); !strings.Contains(href, want) {
			t.Errorf("link %q lacks %s", href, want)
		}
	})

	t.Run("completeLogin continues to the pending authorization", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		resp := b.get(link(t, p.body))
		loc := resp.location(t)
		if resp.status != http.StatusSeeOther || loc.Path != "/authorize" || loc.Query().Get("client_id") != reg.ClientID {
			t.Fatalf("status %d Location %s; want 303 to the authorization", resp.status, loc)
		}
		if p := b.get(loc.String()); !isConsentPage(p) || !strings.Contains(p.body, "alice") {
			t.Errorf("after completeLogin: status %d; want alice's consent page", p.status)
		}
		if s := e.store.sessionsOf("alice"); !slices.ContainsFunc(s, func(s LoginSession) bool { return s.Method == "test" }) {
			t.Errorf("sessions %+v; want one signed in with method test", s)
		}
	})

	t.Run("completeLogin without a request continues to the account page", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.url(accountPath))
		resp := b.get(link(t, p.body))
		if resp.header.Get("Location") != e.url(accountPath) {
			t.Errorf("Location %q; want %s", resp.header.Get("Location"), e.url(accountPath))
		}
	})

	t.Run("completeLogin with an expired request signs in and says the request expired", func(t *testing.T) {
		b := e.browser()
		p := b.get(e.authorizeURL(authRequest{clientID: reg.ClientID, redirect: "http://127.0.0.1:7000/cb", scope: "notes:read", verifier: oauth2.GenerateVerifier()}))
		e.clock.Advance(pendingTTL + time.Second)
		resp := b.get(link(t, p.body))
		if resp.status != http.StatusBadRequest || !strings.Contains(resp.body, "expired") {
			t.Errorf("status %d; want 400 saying the request expired: %.300s", resp.status, resp.body)
		}
		if !isAccountPage(b.get(e.url(accountPath))) {
			t.Error("not signed in after completeLogin")
		}
	})
}

// regexpLink returns a function that finds the href of the link labelled
// label in a page.
func regexpLink(label string) func(t *testing.T, html string) string {
	return func(t *testing.T, html string) string {
		t.Helper()
		i := strings.Index(html, ">"+label+"<")
		if i < 0 {
			t.Fatalf("no link %q in page: %.500s", label, html)
		}
		j := strings.LastIndex(html[:i], `href="`)
		if j < 0 {
			t.Fatalf("link %q has no href", label)
		}
		href := html[j+len(`href="`):]
		return strings.ReplaceAll(href[:strings.Index(href, `"`)], "&amp;", "&")
	}
}

// TestSessionMaxAge: a session ends at a fixed time after sign-in however
// often it is used (OWASP's absolute timeout), so a copied or forgotten
// cookie that is kept busy does not sign someone in for ever.
func TestSessionMaxAge(t *testing.T) {
	t.Run("it is a week unless configured", func(t *testing.T) {
		e := newEnv(t, nil)
		if got := e.srv.cfg.SessionMaxAge; got != 7*24*time.Hour {
			t.Errorf("SessionMaxAge = %v; want 168h", got)
		}
	})

	e := newEnv(t, func(c *Config) { c.SessionIdleTimeout = 12 * time.Hour; c.SessionMaxAge = 48 * time.Hour })
	b := e.browser()
	b.signIn(t, e, "alice", "correct horse")
	signedInAt := e.clock.Now()

	t.Run("a session in use ends at the maximum age after sign-in", func(t *testing.T) {
		for range 4 { // 44 hours, never idle for more than 11
			e.clock.Advance(11 * time.Hour)
			if !isAccountPage(b.get(e.url(accountPath))) {
				t.Fatalf("signed out %v after sign-in, while in use", e.clock.Now().Sub(signedInAt))
			}
		}
		for _, s := range e.store.sessionsOf("alice") {
			if s.ExpiresAt.After(s.CreatedAt.Add(48 * time.Hour)) {
				t.Errorf("stored expiry %v is more than 48h after sign-in at %v", s.ExpiresAt, s.CreatedAt)
			}
		}
		e.clock.Advance(4*time.Hour + time.Second) // 48 hours and a second
		if !isLoginPage(b.get(e.url(accountPath))) {
			t.Error("still signed in 48 hours after sign-in")
		}
	})

	t.Run("a session stored before the cap existed ends at the maximum age too", func(t *testing.T) {
		b := e.browser()
		b.signIn(t, e, "bob", "battery staple")
		for _, s := range e.store.sessionsOf("bob") { // as an older mcpd stored it
			e.store.mu.Lock()
			s.CreatedAt = e.clock.Now().Add(-49 * time.Hour)
			s.ExpiresAt = e.clock.Now().Add(12 * time.Hour)
			e.store.sessions[s.ID] = s
			e.store.mu.Unlock()
		}
		if !isLoginPage(b.get(e.url(accountPath))) {
			t.Error("a session signed in 49 hours ago still signs in")
		}
		if n := len(e.store.sessionsOf("bob")); n != 0 {
			t.Errorf("%d sessions of bob stored; want the old one deleted", n)
		}
	})
}

// TestFormsPostedFromAnotherOrigin: cookies do not tell ports apart, and
// SameSite=Lax lets a same-site page post with them. On
// http://localhost:8080 any page served from another port of localhost is
// same-site and shares the cookie jar; under a shared domain a sibling
// subdomain is same-site. Such a page can plant a visitor cookie whose
// CSRF token it knows and post the login form with its own password,
// signing the victim in to the attacker's account. Browsers say where a
// post comes from (Sec-Fetch-Site), and mcpd's forms only come from its
// own pages.
func TestFormsPostedFromAnotherOrigin(t *testing.T) {
	e := newEnv(t, nil)
	post := func(b *browser, u string, form url.Values, site string) page {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		return b.do(req)
	}
	loginForm := func(b *browser) url.Values {
		p := b.get(e.url(accountPath))
		return url.Values{
			"csrf_token": {hiddenField(t, p.body, "csrf_token")}, "request_id": {""},
			"username": {"mallory"}, "password": {"mallory-pw"},
		}
	}
	e.store.users["mallory"] = "mallory-pw"

	for _, site := range []string{"same-site", "cross-site"} {
		t.Run("a sign-in posted from a "+site+" page is refused", func(t *testing.T) {
			b := e.browser()
			if got := post(b, e.url(loginPath), loginForm(b), site); got.status != http.StatusForbidden {
				t.Errorf("status %d; want 403", got.status)
			}
			if isAccountPage(b.get(e.url(accountPath))) {
				t.Error("signed in by a form of another origin")
			}
		})
	}

	t.Run("an account form posted from a same-site page is refused", func(t *testing.T) {
		b := e.browser()
		p := b.signIn(t, e, "alice", "correct horse")
		if got := post(b, e.url(accountPath), accountForm(t, p, "signout", ""), "same-site"); got.status != http.StatusForbidden {
			t.Errorf("status %d; want 403", got.status)
		}
		if !isAccountPage(b.get(e.url(accountPath))) {
			t.Error("signed out by a form of another origin")
		}
	})

	for _, site := range []string{"same-origin", ""} {
		t.Run(fmt.Sprintf("a sign-in posted with Sec-Fetch-Site %q is accepted", site), func(t *testing.T) {
			b := e.browser()
			if got := post(b, e.url(loginPath), loginForm(b), site); got.status != http.StatusSeeOther {
				t.Errorf("status %d; want 303", got.status)
			}
		})
	}
}
