package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// fakeConnector is a provider in memory: AuthCodeURL points at
// https://idp.example/auth, and Exchange accepts the code "good" once, for
// the verifier whose challenge AuthCodeURL sent.
type fakeConnector struct {
	mu         sync.Mutex
	identity   UpstreamIdentity
	exchange   error // returned by Exchange when set
	challenges map[string]string
	nonces     map[string]string
	used       map[string]bool
	gotNonce   []string
	issuer     string // ResponseIssuer's; "" like GitHub
	issAlways  bool   // the provider promises iss in every answer
}

func newFakeConnector(id UpstreamIdentity) *fakeConnector {
	return &fakeConnector{identity: id, challenges: map[string]string{}, nonces: map[string]string{}, used: map[string]bool{}}
}

func (f *fakeConnector) AuthCodeURL(_ context.Context, callbackURL string, r UpstreamRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.challenges[r.State] = oauth2.S256ChallengeFromVerifier(r.CodeVerifier)
	f.nonces[r.State] = r.Nonce
	q := url.Values{"redirect_uri": {callbackURL}, "state": {r.State}, "nonce": {r.Nonce}, "code_challenge": {f.challenges[r.State]}}
	return "https://idp.example/auth?" + q.Encode(), nil
}

func (f *fakeConnector) Exchange(_ context.Context, callbackURL, code string, r UpstreamRequest) (UpstreamIdentity, *oauth2.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exchange != nil {
		return UpstreamIdentity{}, nil, f.exchange
	}
	if code != "good" || f.used[r.State] || f.challenges[r.State] != oauth2.S256ChallengeFromVerifier(r.CodeVerifier) {
		return UpstreamIdentity{}, nil, fmt.Errorf("%w: invalid_grant", ErrProviderRejected)
	}
	if f.nonces[r.State] != r.Nonce {
		return UpstreamIdentity{}, nil, fmt.Errorf("%w: nonce", ErrProviderUnverifiable)
	}
	f.used[r.State] = true
	f.gotNonce = append(f.gotNonce, r.Nonce)
	return f.identity, &oauth2.Token{AccessToken: "upstream-at-" + f.identity.Subject, RefreshToken: "upstream-rt"}, nil
}

func (f *fakeConnector) ResponseIssuer(context.Context) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issuer, f.issAlways, nil
}

func (f *fakeConnector) set(id UpstreamIdentity, exchangeErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.identity, f.exchange = id, exchangeErr
}

// memIdentities is an IdentityStore in memory whose writes inside a
// transaction (txStorage.BeginTX) only land on Commit.
type memIdentities struct {
	mu    sync.Mutex
	data  identityData
	users *memStore // password users, for LookupUserByEmail of them
	// race, when set, runs once at the first write of a transaction
	// (CreateExternalUser or LinkIdentity), as another sign-in
	// committing in between; writes then see committed rows, as a
	// unique index of a less isolated store does.
	race func(committed *identityData)
}

// raced runs the race hook once and reports whether committed data (not
// this transaction's copy) has key in the map of pick.
func (m *memIdentities) raced(pick func(d *identityData) bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.race != nil {
		m.race(&m.data)
		m.race = nil
	}
	return pick(&m.data)
}

type identityData struct {
	ids    map[string]Identity // issuer/subject
	emails map[string]string   // email → user
	ext    map[string]bool     // external users
	tokens map[string]string   // user/provider → access token
	states map[string][]byte
	exp    map[string]time.Time
}

func (d identityData) clone() identityData {
	c := identityData{ids: map[string]Identity{}, emails: map[string]string{}, ext: map[string]bool{}, tokens: map[string]string{}, states: map[string][]byte{}, exp: map[string]time.Time{}}
	for k, v := range d.ids {
		c.ids[k] = v
	}
	for k, v := range d.emails {
		c.emails[k] = v
	}
	for k, v := range d.ext {
		c.ext[k] = v
	}
	for k, v := range d.tokens {
		c.tokens[k] = v
	}
	for k, v := range d.states {
		c.states[k] = v
	}
	for k, v := range d.exp {
		c.exp[k] = v
	}
	return c
}

type idTxKey struct{}

// txData is an open transaction's copy of the data.
type txData struct{ d identityData }

func newMemIdentities(users *memStore) *memIdentities {
	return &memIdentities{users: users, data: identityData{}.clone()}
}

// with runs fn on the transaction's copy, or on the committed data.
func (m *memIdentities) with(ctx context.Context, fn func(d *identityData) error) error {
	if tx, ok := ctx.Value(idTxKey{}).(*txData); ok {
		return fn(&tx.d)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return fn(&m.data)
}

func (m *memIdentities) userExists(d *identityData, name string) bool {
	m.users.mu.Lock()
	_, pw := m.users.users[name]
	m.users.mu.Unlock()
	return pw || d.ext[name]
}

func (m *memIdentities) LookupIdentity(ctx context.Context, issuer, subject string) (Identity, error) {
	var id Identity
	err := m.with(ctx, func(d *identityData) error {
		v, ok := d.ids[issuer+"/"+subject]
		if !ok {
			return ErrNotFound
		}
		id = v
		return nil
	})
	return id, err
}

func (m *memIdentities) LinkIdentity(ctx context.Context, id Identity) error {
	if m.raced(func(d *identityData) bool { _, ok := d.ids[id.Issuer+"/"+id.Subject]; return ok }) {
		return ErrAlreadyExists
	}
	return m.with(ctx, func(d *identityData) error {
		if _, ok := d.ids[id.Issuer+"/"+id.Subject]; ok {
			return ErrAlreadyExists
		}
		if !m.userExists(d, id.User) {
			return ErrNotFound
		}
		d.ids[id.Issuer+"/"+id.Subject] = id
		return nil
	})
}

func (m *memIdentities) ListIdentities(ctx context.Context, user string) ([]Identity, error) {
	var out []Identity
	err := m.with(ctx, func(d *identityData) error {
		for _, id := range d.ids {
			if id.User == user {
				out = append(out, id)
			}
		}
		return nil
	})
	return out, err
}

func (m *memIdentities) LookupUserByEmail(ctx context.Context, email string) (string, error) {
	var name string
	err := m.with(ctx, func(d *identityData) error {
		v, ok := d.emails[foldEmail(email)]
		if !ok {
			return ErrNotFound
		}
		name = v
		return nil
	})
	return name, err
}

func (m *memIdentities) CreateExternalUser(ctx context.Context, name, email string) error {
	if m.raced(func(d *identityData) bool { return d.ext[name] || d.emails[email] != "" }) {
		return ErrAlreadyExists
	}
	return m.with(ctx, func(d *identityData) error {
		if m.userExists(d, name) || d.emails[email] != "" {
			return ErrAlreadyExists
		}
		d.ext[name] = true
		d.emails[email] = name
		return nil
	})
}

func (m *memIdentities) PutIDPState(ctx context.Context, state string, data []byte, exp time.Time) error {
	return m.with(ctx, func(d *identityData) error {
		d.states[state], d.exp[state] = data, exp
		return nil
	})
}

func (m *memIdentities) TakeIDPState(ctx context.Context, state string) ([]byte, error) {
	var out []byte
	err := m.with(ctx, func(d *identityData) error {
		v, ok := d.states[state]
		if !ok {
			return ErrNotFound
		}
		delete(d.states, state)
		out = v
		return nil
	})
	return out, err
}

// SaveUpstreamToken makes memIdentities the UpstreamTokenSaver too;
// failSave makes it fail.
func (m *memIdentities) SaveUpstreamToken(ctx context.Context, user, provider string, tok *oauth2.Token) error {
	return m.with(ctx, func(d *identityData) error {
		if d.tokens["fail"] != "" {
			return errors.New("disk full")
		}
		d.tokens[user+"/"+provider] = tok.AccessToken
		return nil
	})
}

func (m *memIdentities) snapshot() identityData {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data.clone()
}

// txStorage is memStore with transactions over memIdentities.
type txStorage struct {
	*memStore
	ids *memIdentities
}

func (s txStorage) BeginTX(ctx context.Context) (context.Context, error) {
	return context.WithValue(ctx, idTxKey{}, &txData{d: s.ids.snapshot()}), nil
}

func (s txStorage) Commit(ctx context.Context) error {
	tx, ok := ctx.Value(idTxKey{}).(*txData)
	if !ok {
		return errors.New("no transaction")
	}
	s.ids.mu.Lock()
	s.ids.data = tx.d
	s.ids.mu.Unlock()
	return nil
}

func (s txStorage) Rollback(context.Context) error { return nil }

// UserExists knows external users too.
func (s txStorage) UserExists(ctx context.Context, name string) (bool, error) {
	var ok bool
	s.ids.with(ctx, func(d *identityData) error { ok = s.ids.userExists(d, name); return nil })
	return ok, nil
}

type idpEnv struct {
	*env
	ids  *memIdentities
	conn *fakeConnector
}

const fakeIssuer = "https://idp.example"

var adaIdentity = UpstreamIdentity{Issuer: fakeIssuer, Subject: "ada-1", Email: "Ada@Example.com", EmailVerified: true, Name: "Ada"}

func newIDPEnv(t testing.TB, mod func(p *IdentityProvider)) *idpEnv {
	t.Helper()
	conn := newFakeConnector(adaIdentity)
	var ids *memIdentities
	e := newEnv(t, func(c *Config) {
		ids = newMemIdentities(c.Storage.(*memStore))
		c.Storage = txStorage{memStore: c.Storage.(*memStore), ids: ids}
		p := IdentityProvider{Name: "corp", DisplayName: "Corp SSO", Connector: conn, CreateUsers: true}
		if mod != nil {
			mod(&p)
		}
		c.IdentityProviders = []IdentityProvider{p}
		c.Identities = ids
		c.UpstreamTokens = ids
	})
	return &idpEnv{env: e, ids: ids, conn: conn}
}

var providerLink = regexp.MustCompile(`<a class="button" href="([^"]*/login/idp/[^"]*)">Sign in with ([^<]*)</a>`)

// startAtProvider opens the authorization request, follows the login
// page's provider link and returns the provider URL it redirects to.
func (e *idpEnv) startAtProvider(b *browser, a authRequest) *url.URL {
	e.t.Helper()
	p := b.get(e.authorizeURL(a))
	m := providerLink.FindStringSubmatch(p.body)
	if !isLoginPage(p) || m == nil {
		e.t.Fatalf("login page without a provider link: %.500s", p.body)
	}
	start := b.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if start.status != http.StatusSeeOther {
		e.t.Fatalf("start: status %d: %.300s", start.status, start.body)
	}
	return start.location(e.t)
}

// callback is the provider sending the browser back with params.
func (e *idpEnv) callback(b *browser, params url.Values) page {
	return b.get(e.url("/login/idp/corp/callback?" + params.Encode()))
}

func TestIDPLoginPage(t *testing.T) {
	e := newIDPEnv(t, nil)
	c := e.registerPublic("http://127.0.0.1/cb")
	b := e.browser()
	p := b.get(e.authorizeURL(authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()}))
	m := providerLink.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no provider link on the login page: %.800s", p.body)
	}
	u, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	got := map[string]string{"text": m[2], "path": u.Path, "request_id": u.Query().Get("request_id")}
	want := map[string]string{"text": "Corp SSO", "path": "/login/idp/corp", "request_id": hiddenField(t, p.body, "request_id")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("provider link (-want +got):\n%s", diff)
	}
}

func TestIDPSignInFlow(t *testing.T) {
	e := newIDPEnv(t, nil)
	c := e.registerPublic("http://127.0.0.1/cb")
	b := e.browser()
	v := oauth2.GenerateVerifier()
	a := authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", scope: "notes:read", state: "client-state-1", verifier: v}
	at := e.startAtProvider(b, a)
	q := at.Query()

	t.Run("the provider gets state, nonce and an S256 challenge, never the verifier", func(t *testing.T) {
		if at.Host != "idp.example" || q.Get("redirect_uri") != e.url("/login/idp/corp/callback") {
			t.Errorf("sent to %s; want the provider with the callback", at)
		}
		if len(q.Get("state")) < 32 || len(q.Get("nonce")) < 32 || q.Get("state") == q.Get("nonce") || q.Get("code_challenge") == "" {
			t.Errorf("state %q, nonce %q, challenge %q: want long, distinct random values", q.Get("state"), q.Get("nonce"), q.Get("code_challenge"))
		}
	})

	var consent page
	t.Run("the callback links a new user named by the verified email and resumes at consent", func(t *testing.T) {
		p := e.callback(b, url.Values{"state": {q.Get("state")}, "code": {"good"}})
		if p.status != http.StatusSeeOther || p.location(t).Path != "/authorize" {
			t.Fatalf("callback: status %d Location %q; want 303 to /authorize", p.status, p.header.Get("Location"))
		}
		consent = b.get(p.location(t).String())
		if !isConsentPage(consent) || !strings.Contains(consent.body, "ada@example.com") {
			t.Fatalf("want the consent page for ada@example.com: %.500s", consent.body)
		}
		d := e.ids.snapshot()
		want := Identity{Issuer: fakeIssuer, Subject: "ada-1", Provider: "corp", User: "ada@example.com", Email: "ada@example.com"}
		got := d.ids[fakeIssuer+"/ada-1"]
		got.CreatedAt = time.Time{}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("linked identity (-want +got):\n%s", diff)
		}
		if d.tokens["ada@example.com/corp"] != "upstream-at-ada-1" {
			t.Errorf("upstream token kept = %q; want the provider's", d.tokens["ada@example.com/corp"])
		}
	})

	t.Run("consent issues a code whose token belongs to the linked user", func(t *testing.T) {
		loc := b.decide(t, consent, "allow", []string{"notes:read"}, false).location(t)
		if loc.Query().Get("state") != "client-state-1" {
			t.Errorf("client redirect %s lacks the client's state", loc)
		}
		tok, err := e.oauthConfig(c.ClientID, "", "http://127.0.0.1/cb", oauth2.AuthStyleInParams).Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		ti, err := e.srv.Verify(context.Background(), tok.AccessToken, nil)
		if err != nil || ti.UserID != "ada@example.com" {
			t.Errorf("Verify = %+v, %v; want user ada@example.com", ti, err)
		}
	})

	t.Run("the same callback a second time is refused: the state is used", func(t *testing.T) {
		p := e.callback(b, url.Values{"state": {q.Get("state")}, "code": {"good"}})
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired or was completed already") {
			t.Errorf("replay: status %d: %.300s", p.status, p.body)
		}
	})

	t.Run("a second sign-in finds the linked identity even with another email", func(t *testing.T) {
		id := adaIdentity
		id.Email, id.EmailVerified = "ada@new.example", false
		e.conn.set(id, nil)
		b2 := e.browser()
		at := e.startAtProvider(b2, authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})
		p := e.callback(b2, url.Values{"state": {at.Query().Get("state")}, "code": {"good"}})
		if p.status != http.StatusSeeOther {
			t.Fatalf("callback: status %d: %.300s", p.status, p.body)
		}
		if p := b2.get(p.location(t).String()); !strings.Contains(p.body, "ada@example.com") {
			t.Errorf("signed in as someone else: %.300s", p.body)
		}
	})
}

func TestIDPAccounts(t *testing.T) {
	tests := []struct {
		name     string
		provider func(p *IdentityProvider)
		identity UpstreamIdentity
		emails   map[string]string // email → existing user
		status   int
		want     string // in the page
		user     string // signed in as, on success
	}{
		{"an existing user with the verified email is linked, without create_users", func(p *IdentityProvider) { p.CreateUsers = false },
			adaIdentity, map[string]string{"ada@example.com": "alice"}, http.StatusSeeOther, "", "alice"},
		{"without create_users and no user of that email, a 403 says to ask for an account", func(p *IdentityProvider) { p.CreateUsers = false },
			adaIdentity, nil, http.StatusForbidden, "There is no mcpd account for ada@example.com", ""},
		{"an unverified email links nothing and creates nothing", nil,
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "x", Email: "ada@example.com"}, map[string]string{"ada@example.com": "alice"}, http.StatusForbidden, "did not confirm an email address", ""},
		{"allowed_emails admits a listed address in any case", func(p *IdentityProvider) { p.AllowedEmails = []string{"ADA@example.com"} },
			adaIdentity, nil, http.StatusSeeOther, "", "ada@example.com"},
		{"allowed_emails refuses an unlisted address with a 403 saying why", func(p *IdentityProvider) { p.AllowedEmails = []string{"bob@example.com"} },
			adaIdentity, nil, http.StatusForbidden, "The address ada@example.com is not one this server admits through Corp SSO", ""},
		{"allowed_email_domains admits the domain", func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"example.com"} },
			adaIdentity, nil, http.StatusSeeOther, "", "ada@example.com"},
		{"allowed_email_domains matches the whole domain only", func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"ample.com"} },
			adaIdentity, nil, http.StatusForbidden, "is not one this server admits", ""},
		{"allowed lists refuse an unverified address", func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"example.com"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "x", Email: "ada@example.com"}, nil, http.StatusForbidden, "admits only listed addresses", ""},
		{"allowed_orgs admits a member", func(p *IdentityProvider) { p.AllowedOrgs = []string{"Acme"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "7", Email: "o@example.com", EmailVerified: true, Orgs: []string{"other", "acme"}}, nil, http.StatusSeeOther, "", "o@example.com"},
		{"allowed_orgs refuses a non-member with a 403 naming the organisations", func(p *IdentityProvider) { p.AllowedOrgs = []string{"acme"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "7", Email: "o@example.com", EmailVerified: true, Orgs: []string{"other"}}, nil, http.StatusForbidden, "not a member of an organisation this server admits (acme)", ""},
		{"an address with the Kelvin sign does not pass for the listed ASCII address", func(p *IdentityProvider) { p.AllowedEmails = []string{"kate@example.com"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "k", Email: "\u212Aate@example.com", EmailVerified: true}, nil, http.StatusForbidden, "is not one this server admits", ""},
		{"a domain with the long s does not pass for the listed ASCII domain", func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"sales.example"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "s", Email: "eve@\u017Fales.example", EmailVerified: true}, nil, http.StatusForbidden, "is not one this server admits", ""},
		{"an address with the Kelvin sign does not link to the user of the ASCII address", func(p *IdentityProvider) { p.CreateUsers = false },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "k", Email: "\u212Aate@example.com", EmailVerified: true}, map[string]string{"kate@example.com": "kate"}, http.StatusForbidden, "There is no mcpd account for", ""},
		{"allowed_email_domains admits a subdomain only when listed", func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"example.com"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "d", Email: "eve@evil.example.com", EmailVerified: true}, nil, http.StatusForbidden, "is not one this server admits", ""},
		{"allowed_email_domains is not a suffix match", func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"example.com"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "d", Email: "eve@evil-example.com", EmailVerified: true}, nil, http.StatusForbidden, "is not one this server admits", ""},
		{"an address with a second @ is judged by what follows the first", func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"example.com"} },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "d", Email: "eve@evil.test@example.com", EmailVerified: true}, nil, http.StatusForbidden, "is not one this server admits", ""},
		{"a second account at the same provider with a linked user's address is refused (a passed-on address)", func(p *IdentityProvider) { p.CreateUsers = false },
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "newcomer", Email: "old@example.com", EmailVerified: true}, map[string]string{"old@example.com": "old"}, http.StatusForbidden, "mcpd user unlink old corp", ""},
		{"a user named by the email but without it is not taken over", nil,
			UpstreamIdentity{Issuer: fakeIssuer, Subject: "z", Email: "alice", EmailVerified: true}, nil, http.StatusForbidden, "exists without that email address", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newIDPEnv(t, tt.provider)
			e.conn.set(tt.identity, nil)
			for email, user := range tt.emails {
				e.ids.data.emails[email] = user
			}
			if tt.emails["old@example.com"] != "" { // old's own account at the provider, linked before
				e.ids.data.ids[fakeIssuer+"/old-1"] = Identity{Issuer: fakeIssuer, Subject: "old-1", Provider: "corp", User: "old"}
			}
			seeded := len(e.ids.data.ids)
			c := e.registerPublic("http://127.0.0.1/cb")
			b := e.browser()
			at := e.startAtProvider(b, authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})
			p := e.callback(b, url.Values{"state": {at.Query().Get("state")}, "code": {"good"}})
			if p.status != tt.status || !strings.Contains(p.body, tt.want) {
				t.Fatalf("callback: status %d; want %d with %q: %.500s", p.status, tt.status, tt.want, p.body)
			}
			d := e.ids.snapshot()
			if tt.user == "" {
				if len(d.ids) != seeded || len(d.ext) != 0 || len(d.tokens) != 0 {
					t.Errorf("a refused sign-in left identities %v, users %v, tokens %v", d.ids, d.ext, d.tokens)
				}
				if p := b.get(e.authorizeURL(authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})); !isLoginPage(p) {
					t.Error("a refused sign-in left the browser signed in")
				}
				return
			}
			if p := b.get(p.location(t).String()); !strings.Contains(p.body, tt.user) {
				t.Errorf("not signed in as %s: %.300s", tt.user, p.body)
			}
		})
	}
}

func TestIDPFaults(t *testing.T) {
	tests := []struct {
		name   string
		params func(state string) url.Values
		err    error // Exchange's error
		status int
		want   string
	}{
		{"a callback without state is refused", func(string) url.Values { return url.Values{"code": {"good"}} }, nil,
			http.StatusBadRequest, "did not belong to a sign-in started here"},
		{"a state this server never issued is refused", func(string) url.Values { return url.Values{"state": {"forged-state"}, "code": {"good"}} }, nil,
			http.StatusBadRequest, "expired or was completed already"},
		{"the provider's access_denied is a 403", func(s string) url.Values { return url.Values{"state": {s}, "error": {"access_denied"}} }, nil,
			http.StatusForbidden, "You did not let Corp SSO sign you in"},
		{"another provider error is a 502 naming only a clean error code", func(s string) url.Values {
			return url.Values{"state": {s}, "error": {"temporarily_unavailable"}, "error_description": {"<script>x</script>"}}
		}, nil, http.StatusBadGateway, "it answered temporarily_unavailable"},
		{"a garbled provider error code is not echoed", func(s string) url.Values { return url.Values{"state": {s}, "error": {"<b>hi</b>"}} }, nil,
			http.StatusBadGateway, "it answered an error"},
		{"a callback without a code is refused", func(s string) url.Values { return url.Values{"state": {s}} }, nil,
			http.StatusBadRequest, "carried no sign-in code"},
		{"a code the provider refuses (replayed) is a 400", func(s string) url.Values { return url.Values{"state": {s}, "code": {"replayed"}} }, nil,
			http.StatusBadRequest, "did not accept this sign-in"},
		{"a provider that cannot be reached is a 502", func(s string) url.Values { return url.Values{"state": {s}, "code": {"good"}} },
			fmt.Errorf("%w: dial tcp: connection refused", ErrProviderUnavailable), http.StatusBadGateway, "Corp SSO could not be reached"},
		{"a provider too slow is a 504", func(s string) url.Values { return url.Values{"state": {s}, "code": {"good"}} },
			fmt.Errorf("%w: %w", ErrProviderUnavailable, context.DeadlineExceeded), http.StatusGatewayTimeout, "did not answer in time"},
		{"an ID token of another issuer or audience is a 502", func(s string) url.Values { return url.Values{"state": {s}, "code": {"good"}} },
			fmt.Errorf("%w: oidc: expected audience \"mcpd\" got [\"other\"]", ErrProviderUnverifiable), http.StatusBadGateway, "could not be verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newIDPEnv(t, nil)
			c := e.registerPublic("http://127.0.0.1/cb")
			b := e.browser()
			at := e.startAtProvider(b, authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})
			e.conn.set(adaIdentity, tt.err)
			p := e.callback(b, tt.params(at.Query().Get("state")))
			if p.status != tt.status || !strings.Contains(p.body, tt.want) {
				t.Fatalf("status %d; want %d with %q: %.600s", p.status, tt.status, tt.want, p.body)
			}
			for _, bad := range []string{"goroutine", ".go:", "<script>x", "oidc:", "connection refused"} {
				if strings.Contains(p.body, bad) {
					t.Errorf("the page shows %q: %.600s", bad, p.body)
				}
			}
			if d := e.ids.snapshot(); len(d.ext) != 0 || len(d.ids) != 0 {
				t.Errorf("a failed sign-in left users %v, identities %v", d.ext, d.ids)
			}
		})
	}

	t.Run("a callback in another browser than the one that started is a 403", func(t *testing.T) {
		e := newIDPEnv(t, nil)
		c := e.registerPublic("http://127.0.0.1/cb")
		a := authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()}
		at := e.startAtProvider(e.browser(), a)
		for name, other := range map[string]*browser{"a browser without a session": e.browser(), "a browser with a session of its own": e.browser()} {
			if strings.Contains(name, "of its own") {
				e.startAtProvider(other, a) // now it has a session cookie too
			}
			p := e.callback(other, url.Values{"state": {at.Query().Get("state")}, "code": {"good"}})
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "started in another browser") {
				t.Errorf("%s: status %d: %.300s", name, p.status, p.body)
			}
			at = e.startAtProvider(e.browser(), a) // the state was used up
		}
	})

	t.Run("a state of one provider is refused at another's callback", func(t *testing.T) {
		e := newIDPEnv(t, nil)
		c := e.registerPublic("http://127.0.0.1/cb")
		b := e.browser()
		at := e.startAtProvider(b, authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})
		p := b.get(e.url("/login/idp/other/callback?" + url.Values{"state": {at.Query().Get("state")}, "code": {"good"}}.Encode()))
		if p.status != http.StatusNotFound {
			t.Errorf("unknown provider's callback: status %d", p.status)
		}
	})

	t.Run("a failure after the user is created leaves no half-created user", func(t *testing.T) {
		e := newIDPEnv(t, nil)
		e.ids.data.tokens["fail"] = "yes"
		c := e.registerPublic("http://127.0.0.1/cb")
		b := e.browser()
		at := e.startAtProvider(b, authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})
		p := e.callback(b, url.Values{"state": {at.Query().Get("state")}, "code": {"good"}})
		if p.status != http.StatusInternalServerError || strings.Contains(p.body, "disk full") {
			t.Errorf("status %d: %.300s", p.status, p.body)
		}
		if d := e.ids.snapshot(); len(d.ext) != 0 || len(d.ids) != 0 || len(d.emails) != 0 {
			t.Errorf("left users %v, identities %v, emails %v", d.ext, d.ids, d.emails)
		}
	})

	t.Run("a link naming a pending authorization that does not exist is a 400", func(t *testing.T) {
		e := newIDPEnv(t, nil)
		p := e.browser().get(e.url("/login/idp/corp?request_id=made-up"))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "has expired") {
			t.Errorf("status %d: %.300s", p.status, p.body)
		}
	})

	t.Run("an unknown provider is a 404", func(t *testing.T) {
		e := newIDPEnv(t, nil)
		if p := e.browser().get(e.url("/login/idp/nope")); p.status != http.StatusNotFound {
			t.Errorf("status %d; want 404", p.status)
		}
	})
}

func TestIDPSignInWithoutAnApplication(t *testing.T) {
	e := newIDPEnv(t, nil)
	b := e.browser()
	start := b.get(e.url("/login/idp/corp"))
	if start.status != http.StatusSeeOther {
		t.Fatalf("start: status %d: %.300s", start.status, start.body)
	}
	p := e.callback(b, url.Values{"state": {start.location(t).Query().Get("state")}, "code": {"good"}})
	if p.status != http.StatusSeeOther || p.location(t).Path != "/account" {
		t.Fatalf("callback: status %d Location %q; want 303 to /account", p.status, p.header.Get("Location"))
	}
	if acct := b.get(p.location(t).String()); acct.status != http.StatusOK || !strings.Contains(acct.body, "ada@example.com") {
		t.Errorf("account page: status %d: %.400s", acct.status, acct.body)
	}
	if d := e.ids.snapshot(); d.tokens["ada@example.com/corp"] != "upstream-at-ada-1" {
		t.Errorf("the upstream token was not renewed: %v", d.tokens)
	}
}

func TestIDPConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"a provider name must fit a URL segment", func(c *Config) {
			c.IdentityProviders = []IdentityProvider{{Name: "a/b", Connector: newFakeConnector(adaIdentity)}}
			c.Identities = newMemIdentities(newMemStore())
		}, "must be 1 to 64 letters"},
		{"names are unique", func(c *Config) {
			c.IdentityProviders = []IdentityProvider{{Name: "a", Connector: newFakeConnector(adaIdentity)}, {Name: "a", Connector: newFakeConnector(adaIdentity)}}
			c.Identities = newMemIdentities(newMemStore())
		}, "declared twice"},
		{"providers need an identity store", func(c *Config) {
			c.IdentityProviders = []IdentityProvider{{Name: "a", Connector: newFakeConnector(adaIdentity)}}
		}, "need Identities"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rend := newEnv(t, nil).srv.renderer
			cfg := Config{Issuer: "http://127.0.0.1:8080", Storage: newMemStore(), Renderer: rend, GlobalSecret: make([]byte, 32), Scopes: testScopes}
			tt.mod(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestIDPResponseIssuer is RFC 9207 on the client side: the iss of a
// provider's answer must be the provider's, so an answer another provider
// produced (a mix-up attack) is not taken as this one's.
func TestIDPResponseIssuer(t *testing.T) {
	tests := []struct {
		name      string
		issuer    string // the provider's; "" has none
		issAlways bool
		params    func(state string) url.Values
		status    int
		want      string
	}{
		{"the provider's own iss passes", fakeIssuer, true,
			func(s string) url.Values { return url.Values{"state": {s}, "code": {"good"}, "iss": {fakeIssuer}} }, http.StatusSeeOther, ""},
		{"no iss passes when the provider does not promise one", fakeIssuer, false,
			func(s string) url.Values { return url.Values{"state": {s}, "code": {"good"}} }, http.StatusSeeOther, ""},
		{"an iss naming another provider is refused", fakeIssuer, false,
			func(s string) url.Values {
				return url.Values{"state": {s}, "code": {"good"}, "iss": {"https://evil.example"}}
			}, http.StatusBadRequest, "did not come from Corp SSO"},
		{"an iss that differs only by a trailing slash is refused (simple string comparison)", fakeIssuer, true,
			func(s string) url.Values {
				return url.Values{"state": {s}, "code": {"good"}, "iss": {fakeIssuer + "/"}}
			}, http.StatusBadRequest, "did not come from Corp SSO"},
		{"no iss is refused when the provider promises one", fakeIssuer, true,
			func(s string) url.Values { return url.Values{"state": {s}, "code": {"good"}} }, http.StatusBadRequest, "did not come from Corp SSO"},
		{"two iss parameters are refused", fakeIssuer, true,
			func(s string) url.Values {
				return url.Values{"state": {s}, "code": {"good"}, "iss": {fakeIssuer, "https://evil.example"}}
			}, http.StatusBadRequest, "did not come from Corp SSO"},
		{"an error answer of another issuer is not shown as the provider's", fakeIssuer, false,
			func(s string) url.Values {
				return url.Values{"state": {s}, "error": {"access_denied"}, "iss": {"https://evil.example"}}
			}, http.StatusBadRequest, "did not come from Corp SSO"},
		{"a provider without an issuer identifier is not checked", "", false,
			func(s string) url.Values {
				return url.Values{"state": {s}, "code": {"good"}, "iss": {"https://anything.example"}}
			}, http.StatusSeeOther, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newIDPEnv(t, nil)
			e.conn.issuer, e.conn.issAlways = tt.issuer, tt.issAlways
			c := e.registerPublic("http://127.0.0.1/cb")
			b := e.browser()
			at := e.startAtProvider(b, authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})
			p := e.callback(b, tt.params(at.Query().Get("state")))
			if p.status != tt.status || !strings.Contains(p.body, tt.want) {
				t.Fatalf("callback: status %d; want %d with %q: %.500s", p.status, tt.status, tt.want, p.body)
			}
			if d := e.ids.snapshot(); tt.status != http.StatusSeeOther && (len(d.ext) != 0 || len(d.ids) != 0) {
				t.Errorf("a refused answer left users %v, identities %v", d.ext, d.ids)
			}
		})
	}
}

// TestIDPFirstSignInRace: two first sign-ins of one person at once (two
// tabs, two replicas) end as the same user. With a store that isolates
// less than bbolt, the second finds the user or link the first committed
// only at its writes.
func TestIDPFirstSignInRace(t *testing.T) {
	tests := []struct {
		name     string
		provider func(p *IdentityProvider)
		other    func(d *identityData) // what the other sign-in committed
	}{
		{"the other sign-in created the user and linked the identity", nil, func(d *identityData) {
			d.ext["ada@example.com"], d.emails["ada@example.com"] = true, "ada@example.com"
			d.ids[fakeIssuer+"/ada-1"] = Identity{Issuer: fakeIssuer, Subject: "ada-1", Provider: "corp", User: "ada@example.com"}
		}},
		{"the other sign-in linked the identity to the existing user", func(p *IdentityProvider) { p.CreateUsers = false }, func(d *identityData) {
			d.ids[fakeIssuer+"/ada-1"] = Identity{Issuer: fakeIssuer, Subject: "ada-1", Provider: "corp", User: "alice"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newIDPEnv(t, tt.provider)
			e.ids.data.emails["ada@example.com"] = "alice"
			if tt.provider == nil {
				delete(e.ids.data.emails, "ada@example.com")
			}
			e.ids.race = tt.other
			c := e.registerPublic("http://127.0.0.1/cb")
			b := e.browser()
			at := e.startAtProvider(b, authRequest{clientID: c.ClientID, redirect: "http://127.0.0.1/cb", verifier: oauth2.GenerateVerifier()})
			p := e.callback(b, url.Values{"state": {at.Query().Get("state")}, "code": {"good"}})
			if p.status != http.StatusSeeOther {
				t.Fatalf("callback: status %d: %.400s", p.status, p.body)
			}
			want := "ada@example.com"
			if tt.provider != nil {
				want = "alice"
			}
			if p := b.get(p.location(t).String()); !strings.Contains(p.body, want) {
				t.Errorf("not signed in as %s: %.300s", want, p.body)
			}
			if d := e.ids.snapshot(); d.tokens[want+"/corp"] != "upstream-at-ada-1" {
				t.Errorf("the upstream token was not kept for %s: %v", want, d.tokens)
			}
		})
	}
}

// TestIDPRefusalPageEscapesProviderText: the refusal page names the
// address the provider vouched for, which the person chose; it is text,
// never markup.
func TestIDPRefusalPageEscapesProviderText(t *testing.T) {
	e := newIDPEnv(t, func(p *IdentityProvider) { p.AllowedEmailDomains = []string{"corp.example"} })
	e.conn.set(UpstreamIdentity{Issuer: fakeIssuer, Subject: "x", Email: `"<img src=x onerror=alert(1)>"@evil.example`, EmailVerified: true}, nil)
	b := e.browser()
	start := b.get(e.url("/login/idp/corp"))
	p := e.callback(b, url.Values{"state": {start.location(t).Query().Get("state")}, "code": {"good"}})
	if p.status != http.StatusForbidden || strings.Contains(p.body, "<img") || !strings.Contains(p.body, "&lt;img src=x") {
		t.Errorf("status %d: %.800s", p.status, p.body)
	}
}
