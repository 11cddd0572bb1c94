package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/net/html"
)

// waitJS waits until the JavaScript expression is true in the page,
// across navigations (an evaluation that fails while a page loads is
// retried), or fails the test after 20 s.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, body)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pageHas is the expression "the page's text contains s".
func pageHas(s string) string {
	b, _ := json.Marshal(s)
	return `document.readyState === "complete" && document.body && document.body.innerText.includes(` + string(b) + `)`
}

// screenshot saves the page as OUT_DIR/name when OUT_DIR is set (make the
// docs/ pictures with OUT_DIR=docs).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("OUT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// passkeyPosts records the bodies of the forms the page script posts to
// /login/passkey, as the browser sent them.
type passkeyPosts struct {
	mu    sync.Mutex
	forms []url.Values
}

func (p *passkeyPosts) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || e.Request.Method != http.MethodPost || !strings.HasSuffix(e.Request.URL, "/login/passkey") {
			return
		}
		var body []byte
		for _, entry := range e.Request.PostDataEntries {
			body = append(body, entry.Bytes...)
		}
		if form, err := url.ParseQuery(string(body)); err == nil {
			p.mu.Lock()
			p.forms = append(p.forms, form)
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (p *passkeyPosts) last() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.forms) == 0 {
		return nil
	}
	return p.forms[len(p.forms)-1]
}

// TestBrowserPasskeyAndConnectedApps is the proof of issue 15 in a real
// Chromium with the DevTools virtual authenticator: a passkey is added on
// the account page, the user signs out and signs in with it through a real
// MCP authorization (the go-sdk client: discovery, registration, PKCE), sees
// the app on the account page and revokes it there: that app's token gets
// 401 while the same app's grant for another user keeps working. Then the
// refusals: a replayed assertion, an assertion for another RP ID made with
// the passkey's own key, a forged CSRF token, a removed passkey.
func TestBrowserPasskeyAndConnectedApps(t *testing.T) {
	ctx := newChrome(t)
	// Browsers refuse passkeys on an IP address: listen on localhost, so
	// the issuer (derived from --listen) is http://localhost:PORT.
	ts := startServer(t, "--listen", "localhost:0")
	issuer := strings.Replace(ts.URL, "127.0.0.1", "localhost", 1)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	mustMcpd(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--data", ts.Data)

	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	va, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
		Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
		IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	posts := &passkeyPosts{}
	posts.listen(t, ctx)

	t.Run("a passkey is added on the account page", func(t *testing.T) {
		err := chromedp.Do(ctx,
			chromedp.Navigate(issuer+"/account"),
			chromedp.WaitVisible(`input[name=username]`),
			chromedp.SendKeys(`input[name=username]`, "alice"),
			chromedp.SendKeys(`input[name=password]`, "alice-pw"),
			chromedp.Submit(`input[name=password]`),
			chromedp.WaitVisible(`#passkey-add`),
			chromedp.SetValue(`#passkey-new-name`, "Laptop"),
			chromedp.Click(`#passkey-add`),
		)
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		waitJS(t, ctx, "the passkey listed", pageHas("The passkey is added")+` && document.querySelector("li.passkey") !== null`)
		creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(va))
		if err != nil {
			t.Fatal(err)
		}
		if len(creds.Credentials) != 1 || creds.Credentials[0].RpID != "localhost" || !creds.Credentials[0].IsResidentCredential {
			t.Fatalf("authenticator holds %+v; want one discoverable credential for RP localhost", creds.Credentials)
		}
		out := mustMcpd(t, "", "user", "passkeys", "alice", "--data", ts.Data)
		if !strings.Contains(out, "Laptop") || !strings.Contains(out, base64.RawURLEncoding.EncodeToString(creds.Credentials[0].CredentialID)) {
			t.Errorf("mcpd user passkeys alice:\n%s", out)
		}
	})

	t.Run("signing out ends the session", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(`button[name=action][value=signout]`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the login page", pageHas("You are signed out.")+` && document.querySelector("#passkey-login") !== null`)
	})

	cb := newCallbackServer(t)
	var visitor []*http.Cookie // the browser's cookie when it signed in with the passkey
	var client *mcp.ClientSession
	var aliceToken, clientID string
	t.Run("an MCP client's authorization is signed into with the passkey, without a user name", func(t *testing.T) {
		handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName: "Passkey Test App", RedirectURIs: []string{cb.URL + "/callback"},
				GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
				TokenEndpointAuthMethod: "none",
			}},
			RedirectURL: cb.URL + "/callback",
			AuthorizationCodeFetcher: func(_ context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				err := chromedp.Do(ctx, chromedp.Navigate(args.URL), chromedp.WaitVisible(`#passkey-login`))
				if err != nil {
					return nil, err
				}
				screenshot(t, ctx, "passkey-login.png")
				cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{issuer}})
				if err != nil {
					return nil, err
				}
				for _, c := range cookies.Cookies {
					visitor = append(visitor, &http.Cookie{Name: c.Name, Value: c.Value})
				}
				err = chromedp.Do(ctx,
					chromedp.Click(`#passkey-login`),
					chromedp.WaitVisible(`button[name=action][value=allow]`),
					chromedp.Click(`button[name=action][value=allow]`),
					chromedp.WaitVisible(`#done`),
				)
				if err != nil {
					return nil, err
				}
				q := cb.last()
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		client, err = mcp.NewClient(&mcp.Implementation{Name: "passkey-e2e", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: issuer + "/mcp", OAuthHandler: handler}, nil)
		if err != nil {
			t.Fatalf("connect through discovery, registration and a passkey sign-in: %v", err)
		}
		t.Cleanup(func() { client.Close() })
		who := whoami(t, client)
		if who["user"] != "alice" {
			t.Fatalf("whoami = %v; want alice", who)
		}
		clientID, _ = who["client_id"].(string)
		src, err := handler.TokenSource(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		aliceToken = tok.AccessToken
	})
	if aliceToken == "" {
		t.Fatal("no token for alice; the rest depends on it")
	}

	// Bob's grant of the same app; the registered loopback redirect
	// matches on any port.
	bobToken := login(t, issuer, clientID, "http://127.0.0.1/callback", "bob", "bob-pw", "notes:read").AccessToken
	// Two rounds, so the store's token cache holds both tokens.
	for range 2 {
		for _, tok := range []string{aliceToken, bobToken} {
			if st, _ := mcpStatus(t, issuer, tok); st != http.StatusOK {
				t.Fatalf("token before revoke: %d; want 200", st)
			}
		}
	}

	t.Run("a replayed assertion is refused", func(t *testing.T) {
		form := posts.last()
		if form.Get("credential") == "" || form.Get("ceremony") == "" {
			t.Fatalf("the browser's passkey post was not seen: %v", form)
		}
		// Whoever copied the request has the cookie it carried too.
		resp, body := postForm(t, issuer+"/login/passkey", form, visitor)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Errorf("replay: %s; want 400 saying it was used:\n%.400s", resp.Status, body)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("the replay got a cookie: %s", resp.Header.Get("Set-Cookie"))
		}
	})

	t.Run("an assertion for another RP ID is refused, though signed with the passkey's own key", func(t *testing.T) {
		creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(va))
		if err != nil || len(creds.Credentials) != 1 {
			t.Fatalf("credentials: %v %v", creds, err)
		}
		cred := creds.Credentials[0]
		sign := func(rpID string, count uint32) (*http.Response, string) {
			return forgedPasskeyLogin(t, issuer, rpID, cred, count)
		}
		if resp, body := sign("evil.example", uint32(cred.SignCount)+10); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "could not be verified") {
			t.Errorf("another RP ID: %s; want 401:\n%.400s", resp.Status, body)
		}
		// The same forgery for this RP ID signs in, so the refusal above
		// is the RP ID's alone.
		if resp, body := sign("localhost", uint32(cred.SignCount)+20); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the control with the right RP ID: %s; want 303:\n%.400s", resp.Status, body)
		}
	})

	t.Run("the account page lists the app, and revoking it gives its token 401 while bob's grant works", func(t *testing.T) {
		row := `li.app:has(input[name=client_id][value="` + clientID + `"])`
		err := chromedp.Do(ctx,
			chromedp.Navigate(issuer+"/account"),
			chromedp.WaitVisible(row+` button[name=action][value=revoke]`),
		)
		if err != nil {
			t.Fatalf("account page: %v", err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(row))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Passkey Test App", "Registered itself", "Read your notes", "last used"} {
			if !strings.Contains(strings.ToLower(text), strings.ToLower(want)) {
				t.Errorf("app row lacks %q:\n%s", want, text)
			}
		}
		screenshot(t, ctx, "account.png")
		if err := chromedp.Do(ctx, chromedp.Click(row+` button[name=action][value=revoke]`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the revoke notice", pageHas("The application is disconnected"))
		if st, challenge := mcpStatus(t, issuer, aliceToken); st != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
			t.Errorf("alice's token after the revoke: %d %q; want 401 invalid_token", st, challenge)
		}
		if _, err := client.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"}); err == nil {
			t.Error("alice's MCP client still calls tools after the revoke")
		}
		if st, _ := mcpStatus(t, issuer, bobToken); st != http.StatusOK {
			t.Errorf("bob's token of the same app: %d; want 200", st)
		}
		if who := whoami(t, connectMCP(t, issuer, bobToken)); who["user"] != "bob" || who["client_id"] != clientID {
			t.Errorf("bob's whoami = %v", who)
		}
	})

	t.Run("a forged CSRF token is refused", func(t *testing.T) {
		err := chromedp.Do(ctx,
			chromedp.Navigate(issuer+"/account"),
			chromedp.WaitVisible(`button[name=action][value=signout]`),
			chromedp.SetValue(`form:has(button[value=signout]) input[name=csrf_token]`, "forged-token"),
			chromedp.Click(`button[name=action][value=signout]`),
		)
		if err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the refusal", pageHas("This form has expired or did not come from mcpd"))
		if err := chromedp.Do(ctx, chromedp.Navigate(issuer+"/account")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "still signed in", pageHas("Signed in as alice"))
	})

	t.Run("a removed passkey no longer signs in", func(t *testing.T) {
		err := chromedp.Do(ctx,
			chromedp.Navigate(issuer+"/account"),
			chromedp.WaitVisible(`button[name=action][value=passkey-remove]`),
			chromedp.Click(`button[name=action][value=passkey-remove]`),
		)
		if err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the passkey removed", pageHas("The passkey is removed"))
		if err := chromedp.Do(ctx, chromedp.Click(`button[name=action][value=signout]`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the login page", pageHas("You are signed out."))
		if err := chromedp.Do(ctx, chromedp.Click(`#passkey-login`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the refusal", pageHas("This passkey is not registered here"))
		if err := chromedp.Do(ctx, chromedp.Navigate(issuer+"/account")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the login page", `document.querySelector("input[name=password]") !== null`)
	})
}

// postForm posts a form with the given cookies and returns the answer,
// without following a redirect.
func postForm(t *testing.T, u string, form url.Values, cookies []*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := (&http.Client{CheckRedirect: noRedirect}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// forgedPasskeyLogin signs in as a client outside the browser would, with
// the private key the virtual authenticator holds for the passkey: it
// opens the login page, begins a passkey sign-in, and posts an assertion
// whose authenticator data names rpID and whose counter is count.
func forgedPasskeyLogin(t *testing.T, issuer, rpID string, cred *webauthn.Credential, count uint32) (*http.Response, string) {
	t.Helper()
	key, err := x509.ParsePKCS8PrivateKey(cred.PrivateKey)
	if err != nil {
		t.Fatalf("the authenticator's key: %v", err)
	}
	b := newBrowser(t)
	_, page := b.get(issuer + "/account")
	fields := passkeyFormFields(t, page)
	resp, body := b.post(issuer+"/login/passkey/begin", fields)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("begin: %s %s", resp.Status, body)
	}
	var begin struct {
		Ceremony  string `json:"ceremony"`
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(body, &begin); err != nil {
		t.Fatal(err)
	}
	clientData, _ := json.Marshal(map[string]any{"type": "webauthn.get", "challenge": begin.PublicKey.Challenge, "origin": issuer, "crossOrigin": false})
	rpHash := sha256.Sum256([]byte(rpID))
	authData := binary.BigEndian.AppendUint32(append(rpHash[:], 0x01|0x04), count) // UP, UV
	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, key.(*ecdsa.PrivateKey), digest[:])
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	assertion, _ := json.Marshal(map[string]any{
		"id": enc(cred.CredentialID), "rawId": enc(cred.CredentialID), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": enc(clientData), "authenticatorData": enc(authData),
			"signature": enc(sig), "userHandle": enc(cred.UserHandle),
		},
	})
	fields.Set("ceremony", begin.Ceremony)
	fields.Set("credential", string(assertion))
	resp, body = b.post(issuer+"/login/passkey", fields)
	return resp, string(body)
}

// passkeyFormFields returns the hidden fields of the login page's passkey
// form.
func passkeyFormFields(t *testing.T, page []byte) url.Values {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(string(page)))
	if err != nil {
		t.Fatal(err)
	}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "form" || attr(n, "data-passkey") != "login" {
			continue
		}
		v := url.Values{}
		for in := range n.Descendants() {
			if in.Type == html.ElementNode && in.Data == "input" && attr(in, "type") == "hidden" {
				v.Set(attr(in, "name"), attr(in, "value"))
			}
		}
		return v
	}
	t.Fatalf("no passkey form on the login page:\n%s", page)
	return nil
}
