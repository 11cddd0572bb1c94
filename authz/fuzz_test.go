package authz

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzRegister feeds registration bodies to the parser and validator: they
// must never panic, and an accepted client must obey the registration rules.
func FuzzRegister(f *testing.F) {
	f.Add([]byte(vscodeRegistration))
	f.Add([]byte(`{"redirect_uris":["http://localhost/callback"],"token_endpoint_auth_method":"none"}`))
	f.Add([]byte(`{"grant_types":["client_credentials"],"scope":"notes:read api:call"}`))
	f.Add([]byte(`{"redirect_uris":["cursor://anysphere.cursor-retrieval/oauth/callback"],"token_endpoint_auth_method":"none","client_name":"Cursor"}`))
	f.Add([]byte(`{"redirect_uris":["javascript:alert(1)"]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"application_type":"web","redirect_uris":["https://app.example/cb","http://localhost:3000/cb"]}`))
	f.Add([]byte(`{"application_type":"native","redirect_uris":["com.example.app:/cb","http://[::1]:9/"]}`))
	e := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		md, err := parseClientMetadata(body)
		if err != nil {
			return
		}
		c, err := e.srv.clientFromMetadata(md, SourceDynamic)
		if err != nil {
			return
		}
		switch c.ApplicationType {
		case "", appTypeNative, appTypeWeb:
		default:
			t.Errorf("accepted application_type %q", c.ApplicationType)
		}
		for _, u := range c.RedirectURIs {
			if err := checkRedirectURI(u); err != nil {
				t.Errorf("accepted redirect URI %q: %v", u, err)
			}
			if p, _ := url.Parse(u); c.ApplicationType == appTypeWeb && p.Scheme != "https" && p.Scheme != "http" {
				t.Errorf("a web client registered the private-use redirect %q", u)
			}
			if strings.HasPrefix(strings.ToLower(u), "http://") {
				p, _ := url.Parse(u)
				if !isLoopbackHost(p.Hostname()) {
					t.Errorf("accepted non-loopback http redirect %q", u)
				}
			}
		}
		if slices.Contains(c.GrantTypes, "authorization_code") && len(c.RedirectURIs) == 0 {
			t.Errorf("auth-code client without redirect URIs")
		}
		if c.IsPublic() && slices.Contains(c.GrantTypes, "client_credentials") {
			t.Errorf("public client with client_credentials")
		}
		for _, sc := range c.Scopes {
			if _, ok := e.srv.scopes[sc]; !ok {
				t.Errorf("unknown scope %q accepted", sc)
			}
		}
	})
}

// FuzzAuthorizeQuery sends arbitrary queries to GET /authorize: no 5xx, and
// a redirect only ever goes to a registered (or loopback-equivalent)
// redirect URI of the client and carries iss.
func FuzzAuthorizeQuery(f *testing.F) {
	// Metadata documents stay on: their fetches fail without the network.
	e := newEnv(f, func(c *Config) {
		c.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, errors.New("no network in fuzzing")
		})}
	})
	reg := e.registerPublic("http://127.0.0.1/cb", "https://app.example/cb")
	f.Add("response_type=code&client_id=" + reg.ClientID + "&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=abcdefgh")
	f.Add("response_type=code&client_id=" + reg.ClientID + "&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_challenge_method=plain&code_challenge=x")
	f.Add("response_type=token&client_id=" + reg.ClientID + "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb")
	f.Add("client_id=" + reg.ClientID + "&resource=https%3A%2F%2Fother.example&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&response_type=code")
	f.Add("client_id=https%3A%2F%2F127.0.0.1%2Fdoc.json")
	f.Add("%zz&&;=")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/authorize", nil)
		req.URL.RawQuery = rawQuery
		rec := httptest.NewRecorder()
		e.srv.handleAuthorize(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, rawQuery)
		}
		loc := rec.Header().Get("Location")
		if loc == "" {
			if rec.Code >= 300 && rec.Code < 400 {
				t.Fatalf("redirect without Location for %q", rawQuery)
			}
			return
		}
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("bad Location %q", loc)
		}
		if u.Query().Get("iss") != e.ts.URL {
			t.Errorf("redirect %q lacks iss", loc)
		}
		base := *u
		base.RawQuery = ""
		if !matchRedirectURI(base.String(), []string{"http://127.0.0.1/cb", "https://app.example/cb"}) {
			t.Errorf("redirect to unregistered %q for query %q", loc, rawQuery)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzIDPCallback sends arbitrary queries to an identity provider's
// callback: it never panics, never signs anyone in without a state this
// server issued, and always answers with an error page (4xx or 5xx).
func FuzzIDPCallback(f *testing.F) {
	f.Add("state=abc&code=good")
	f.Add("state=&error=access_denied&error_description=%3Cscript%3E")
	f.Add("code=good")
	f.Add("state=%00%ff&code=%zz")
	f.Add("error=" + strings.Repeat("a", 100))
	f.Add("state=abc&code=good&iss=https%3A%2F%2Fidp.example&iss=https%3A%2F%2Fevil.example")
	e := newIDPEnv(f, nil)
	e.conn.issuer, e.conn.issAlways = fakeIssuer, true
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, "/login/idp/corp/callback", nil)
		req.URL.RawQuery = query
		w := httptest.NewRecorder()
		e.ts.Config.Handler.ServeHTTP(w, req)
		if w.Code < 400 || w.Code > 599 {
			t.Errorf("query %q answered %d; want an error page", query, w.Code)
		}
		if w.Header().Get("Set-Cookie") != "" {
			t.Errorf("query %q set a cookie", query)
		}
	})
}

// FuzzPasskeyAssertion feeds arbitrary credential JSON, the one field of
// the passkey sign-in form an attacker writes freely, to the assertion
// check against a live ceremony: no input may panic or yield a user. (The
// HTTP handler around it is driven by TestPasskeys.)
func FuzzPasskeyAssertion(f *testing.F) {
	e := newEnvAt(f, "localhost", nil)
	_, session, err := e.srv.passkeys.rp.BeginDiscoverableLogin()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`{}`)
	f.Add(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":"","userHandle":"AA"}}`)
	f.Add(`{"id":"x","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0","authenticatorData":"SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ","signature":"MEUCIQ","userHandle":"YWxpY2U"}}`)
	f.Add(`[` + strings.Repeat(`{"a":`, 50) + `1` + strings.Repeat(`}`, 50) + `]`)
	f.Fuzz(func(t *testing.T, credential string) {
		user, cred, err := e.srv.verifyAssertion(t.Context(), *session, []byte(credential))
		if err == nil || user != "" || cred != nil {
			t.Fatalf("credential %q verified: user %q, %v", credential, user, err)
		}
	})
}
