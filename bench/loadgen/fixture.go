package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The fixture command drives one of every kind of record into a real mcpd
// serve, so that a database written by a release can be committed as a test
// fixture (store/testdata/release-v1.db.gz, made by
// scripts/release-fixture.sh) and later builds prove they open, migrate and
// use it. It prints the secrets a test needs to use those records (passwords,
// tokens, a live code and its verifier) as one JSON document.

// fixtureLongTTL makes the tokens, codes, consents and successors of the
// fixture live for a century, so a test run years later still finds them
// live; the second phase writes records with the default lifetimes, which
// are long expired when the test runs.
const fixtureLongTTL = "876000h"

// Fixture is the JSON document `loadgen fixture` writes next to the
// database: everything a test needs to use the records in it.
type Fixture struct {
	Release  string            `json:"release"`
	Issuer   string            `json:"issuer"`
	Users    map[string]string `json:"users"` // name → password
	Clients  []FixtureClient   `json:"clients"`
	Grants   []FixtureGrant    `json:"grants"`
	Notes    []FixtureNote     `json:"notes"`
	Codes    []FixtureCode     `json:"codes"`
	Consents []FixtureConsent  `json:"consents"`
	JTIs     []string          `json:"jtis"` // written by the static helper
}

// FixtureClient is one registered client.
type FixtureClient struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Source string `json:"source"` // dynamic, metadata or static
	Secret string `json:"secret,omitempty"`
}

// FixtureGrant is the state of one grant's tokens when the release stopped.
type FixtureGrant struct {
	Name     string `json:"name"`
	ClientID string `json:"client_id"`
	Subject  string `json:"subject"`
	Scope    string `json:"scope"`
	Access   string `json:"access_token"`
	Refresh  string `json:"refresh_token,omitempty"`
	// Rotated is a refresh token of the grant that was rotated, with the
	// answer its rotation gave (the grace-window successor).
	Rotated          string          `json:"rotated_refresh_token,omitempty"`
	RotatedResponse  json.RawMessage `json:"rotated_response,omitempty"`
	Revoked          bool            `json:"revoked,omitempty"`
	ExpiredByDesign  bool            `json:"expired,omitempty"` // issued with the default lifetimes
	AccessTokenUntil time.Time       `json:"access_token_expires_at"`
}

// FixtureNote is one saved note.
type FixtureNote struct {
	Owner string   `json:"owner"`
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Body  string   `json:"body"`
	Tags  []string `json:"tags,omitempty"`
}

// FixtureCode is an authorization code that was issued and, unless Used,
// never exchanged.
type FixtureCode struct {
	ClientID    string `json:"client_id"`
	Code        string `json:"code"`
	Verifier    string `json:"code_verifier"`
	RedirectURI string `json:"redirect_uri"`
	Used        bool   `json:"used"`
}

// FixtureConsent is a remembered consent.
type FixtureConsent struct {
	User     string `json:"user"`
	ClientID string `json:"client_id"`
}

func cmdFixture(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fixture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "mcpd binary of the release")
	data := fs.String("data", "", "data directory (may already hold a database)")
	release := fs.String("release", "", "the release's commit, recorded in the output")
	in := fs.String("in", "", "JSON the static helper wrote (static clients, jtis), merged into the output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *data == "" {
		return errors.New("fixture: want -bin and -data")
	}
	fx := &Fixture{Release: *release, Users: map[string]string{"admin": "fixture-admin-pw", "alice": "fixture-alice-pw"}}
	if *in != "" {
		b, err := os.ReadFile(*in)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, fx); err != nil {
			return fmt.Errorf("fixture: %s: %w", *in, err)
		}
	}
	work, err := os.MkdirTemp("", "loadgen-fixture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	doc, caFile, err := startMetadataServer(work)
	if err != nil {
		return err
	}
	defer doc.Close()

	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	fx.Issuer = "http://" + addr

	// Phase 1: everything with a century of lifetime.
	long := []string{"--access-token-ttl", fixtureLongTTL, "--refresh-token-ttl", fixtureLongTTL,
		"--refresh-token-max-ttl", fixtureLongTTL, "--auth-code-ttl", fixtureLongTTL,
		"--refresh-grace", fixtureLongTTL, "--consent-ttl", fixtureLongTTL}
	stop, err := startRelease(ctx, *bin, *data, addr, caFile, stderr, long...)
	if err != nil {
		return err
	}
	err = fx.drive(ctx, *bin, *data, doc.URL)
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}

	// Phase 2: records with the default lifetimes, long expired when a
	// test reads them.
	stop, err = startRelease(ctx, *bin, *data, addr, caFile, stderr)
	if err != nil {
		return err
	}
	err = fx.driveShortLived(ctx)
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(fx)
}

// startRelease runs `bin serve` on data at addr and returns a function that
// stops it with SIGTERM and waits.
func startRelease(ctx context.Context, bin, data, addr, caFile string, stderr io.Writer, extra ...string) (func() error, error) {
	args := append([]string{"serve", "--listen", addr, "--data", data, "--log-level", "warn",
		"--client-metadata-documents=true", "--allow-private-metadata-hosts=true", "--registrations-per-minute", "1000"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "MCPD_INITIAL_PASSWORD=fixture-admin-pw", "SSL_CERT_FILE="+caFile)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		return cmd.Wait()
	}
	hc := &http.Client{Timeout: time.Second}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			stop()
			return nil, errors.New("fixture: the release never answered /healthz")
		}
		if resp, err := hc.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
	}
}

// startMetadataServer serves client ID metadata documents over TLS on
// loopback and writes its certificate to work/ca.pem, which the release
// trusts through SSL_CERT_FILE.
func startMetadataServer(work string) (*metadataServer, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "loadgen fixture"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	ms := &metadataServer{URL: "https://" + l.Addr().String()}
	ms.srv = &http.Server{
		Handler:           http.HandlerFunc(ms.serve),
		ReadHeaderTimeout: 5 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
	}
	go ms.srv.ServeTLS(l, "", "")
	return ms, caFile, nil
}

type metadataServer struct {
	URL string
	srv *http.Server
}

func (m *metadataServer) Close() error { return m.srv.Close() }

func (m *metadataServer) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"client_id":                  m.URL + r.URL.Path,
		"client_name":                "Fixture CIMD client",
		"client_uri":                 m.URL + "/",
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
}

func (fx *Fixture) newEnv(user string) *runEnv {
	env := &runEnv{
		target: fx.Issuer, mcpPath: "/mcp", user: user, password: fx.Users[user],
		hc: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	env.hc.Transport = &http.Transport{Proxy: nil}
	env.browser = newAuthorizer(env)
	return env
}

// drive writes phase 1: users, clients of every source, consents, notes,
// live and used codes, live, rotated and revoked grants.
func (fx *Fixture) drive(ctx context.Context, bin, data, docURL string) error {
	add := exec.CommandContext(ctx, bin, "user", "add", "alice", "--password-stdin", "--data", data)
	add.Stdin = strings.NewReader(fx.Users["alice"] + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		return fmt.Errorf("fixture: user add alice: %v: %s", err, out)
	}
	admin, alice := fx.newEnv("admin"), fx.newEnv("alice")

	pub, err := admin.registerPublic(ctx, "Fixture public client")
	if err != nil {
		return err
	}
	fx.Clients = append(fx.Clients, FixtureClient{ID: pub, Name: "Fixture public client", Source: "dynamic"})
	ccID, ccSecret, err := admin.registerConfidential(ctx, "Fixture confidential client")
	if err != nil {
		return err
	}
	fx.Clients = append(fx.Clients, FixtureClient{ID: ccID, Name: "Fixture confidential client", Source: "dynamic", Secret: ccSecret})
	cimdID := docURL + "/client.json"

	// admin's grant of the public client: rotated once, so it has a
	// rotated refresh token with a grace-window successor.
	g, err := fx.grant(ctx, admin, pub, "admin", "admin-public")
	if err != nil {
		return err
	}
	var next tokenResponse
	var raw json.RawMessage
	if err := admin.postForm(ctx, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.Refresh}, "client_id": {pub}}, "", "", http.StatusOK, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &next); err != nil {
		return err
	}
	g.Rotated, g.RotatedResponse, g.Access, g.Refresh = g.Refresh, raw, next.AccessToken, next.RefreshToken
	fx.Grants = append(fx.Grants, *g)
	fx.Consents = append(fx.Consents, FixtureConsent{User: "admin", ClientID: pub})

	// alice's grant of the same client, live; its code is kept, used.
	if _, err := fx.grant(ctx, alice, pub, "alice", "alice-consent"); err != nil {
		return err // the first authorization shows the pages and remembers the consent
	}
	code, err := fx.code(ctx, alice, pub)
	if err != nil {
		return err
	}
	var at tokenResponse
	if err := alice.postForm(ctx, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code.Code}, "redirect_uri": {code.RedirectURI},
		"client_id": {pub}, "code_verifier": {code.Verifier}, "resource": {alice.target + "/mcp"}}, "", "", http.StatusOK, &at); err != nil {
		return err
	}
	code.Used = true
	fx.Codes = append(fx.Codes, *code)
	fx.Grants = append(fx.Grants, FixtureGrant{Name: "alice-public", ClientID: pub, Subject: "alice", Scope: "notes:read notes:write",
		Access: at.AccessToken, Refresh: at.RefreshToken, AccessTokenUntil: time.Now().Add(876000 * time.Hour).UTC()})
	fx.Consents = append(fx.Consents, FixtureConsent{User: "alice", ClientID: pub})

	// A grant ended through /revoke: its refresh token is inactive.
	g, err = fx.grant(ctx, admin, pub, "admin", "admin-public-revoked")
	if err != nil {
		return err
	}
	if err := admin.postForm(ctx, "/revoke", url.Values{"token": {g.Refresh}, "token_type_hint": {"refresh_token"}, "client_id": {pub}}, "", "", http.StatusOK, nil); err != nil {
		return err
	}
	g.Revoked = true
	fx.Grants = append(fx.Grants, *g)

	// The client ID metadata document client.
	g, err = fx.grant(ctx, admin, cimdID, "admin", "admin-cimd")
	if err != nil {
		return err
	}
	fx.Clients = append(fx.Clients, FixtureClient{ID: cimdID, Name: "Fixture CIMD client", Source: "metadata"})
	fx.Grants = append(fx.Grants, *g)
	fx.Consents = append(fx.Consents, FixtureConsent{User: "admin", ClientID: cimdID})

	// A code never exchanged, with its verifier.
	code, err = fx.code(ctx, admin, pub)
	if err != nil {
		return err
	}
	fx.Codes = append(fx.Codes, *code)

	// client_credentials: the client acts as its own principal.
	ccAccess, err := admin.clientCredentialsToken(ctx, ccID, ccSecret, "notes:read notes:write")
	if err != nil {
		return err
	}
	fx.Grants = append(fx.Grants, FixtureGrant{Name: "client-credentials", ClientID: ccID, Subject: "client:" + ccID, Scope: "notes:read notes:write", Access: ccAccess, AccessTokenUntil: time.Now().Add(876000 * time.Hour).UTC()})

	// Notes of a user and of the client principal.
	for _, n := range []struct {
		token, owner string
		note         FixtureNote
	}{
		{fx.Grants[0].Access, "admin", FixtureNote{Title: "Release notes", Body: "Written by the release before the upgrade.", Tags: []string{"fixture", "upgrade"}}},
		{fx.Grants[0].Access, "admin", FixtureNote{Title: "Second note", Body: "ünïcödé body\nwith two lines"}},
		{fx.Grants[1].Access, "alice", FixtureNote{Title: "Alice's note", Body: "Only alice sees this."}},
		{ccAccess, "client:" + ccID, FixtureNote{Title: "Client note", Body: "Saved by a client_credentials token."}},
	} {
		id, err := fx.saveNote(ctx, admin, n.token, n.note)
		if err != nil {
			return err
		}
		n.note.ID, n.note.Owner = id, n.owner
		fx.Notes = append(fx.Notes, n.note)
	}
	return nil
}

// driveShortLived writes phase 2: a client_credentials token and a code
// with the default lifetimes (an hour, a minute).
func (fx *Fixture) driveShortLived(ctx context.Context) error {
	admin := fx.newEnv("admin")
	var cc FixtureClient
	for _, c := range fx.Clients {
		if c.Secret != "" {
			cc = c
		}
	}
	access, err := admin.clientCredentialsToken(ctx, cc.ID, cc.Secret, "notes:read")
	if err != nil {
		return err
	}
	fx.Grants = append(fx.Grants, FixtureGrant{Name: "client-credentials-expired", ClientID: cc.ID, Subject: "client:" + cc.ID, Scope: "notes:read", Access: access, ExpiredByDesign: true, AccessTokenUntil: time.Now().Add(time.Hour).UTC()})
	return nil
}

// grant runs one authorization code flow of env's user for clientID.
func (fx *Fixture) grant(ctx context.Context, env *runEnv, clientID, user, name string) (*FixtureGrant, error) {
	tok, err := env.browser.grant(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("fixture: grant %s: %w", name, err)
	}
	return &FixtureGrant{Name: name, ClientID: clientID, Subject: user, Scope: "notes:read notes:write",
		Access: tok.AccessToken, Refresh: tok.RefreshToken, AccessTokenUntil: time.Now().Add(876000 * time.Hour).UTC()}, nil
}

// code runs an authorization for clientID up to the redirect and returns
// the code without exchanging it (the consent is remembered by then).
func (fx *Fixture) code(ctx context.Context, env *runEnv, clientID string) (*FixtureCode, error) {
	verifier := randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	redirect := strings.Replace(redirectURI, "127.0.0.1", "127.0.0.1:49152", 1)
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"notes:read notes:write"}, "state": {randomString(12)},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {env.target + "/mcp"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.target+"/authorize?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := env.browser.hc.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("fixture: authorize did not redirect (%s); the consent should be remembered", resp.Status)
	}
	code := loc.Query().Get("code")
	if code == "" {
		return nil, fmt.Errorf("fixture: authorize ended in %s", loc.Redacted())
	}
	return &FixtureCode{ClientID: clientID, Code: code, Verifier: verifier, RedirectURI: redirect}, nil
}

// saveNote saves a note through MCP with token and returns its id.
func (fx *Fixture) saveNote(ctx context.Context, env *runEnv, token string, n FixtureNote) (string, error) {
	s := &mcpSession{env: env, url: env.target + "/mcp", token: token}
	if err := s.open(ctx); err != nil {
		return "", err
	}
	args := map[string]any{"title": n.Title, "body": n.Body}
	if len(n.Tags) > 0 {
		args["tags"] = n.Tags
	}
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": "note_save", "arguments": args}})
	body, _, err := s.call(ctx, msg, false)
	if err != nil {
		return "", err
	}
	var out struct {
		Result struct {
			IsError           bool `json:"isError"`
			StructuredContent struct {
				ID string `json:"id"`
			} `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal(jsonRPCBody(body), &out); err != nil {
		return "", fmt.Errorf("fixture: note_save: %v: %.200s", err, body)
	}
	if out.Result.IsError || out.Result.StructuredContent.ID == "" {
		return "", fmt.Errorf("fixture: note_save failed: %.200s", body)
	}
	return out.Result.StructuredContent.ID, nil
}

// jsonRPCBody returns the JSON-RPC message of a response body, which is
// either the message itself or an event stream carrying it.
func jsonRPCBody(body []byte) []byte {
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return body
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: ")); ok {
			return bytes.Clone(d)
		}
	}
	return body
}
