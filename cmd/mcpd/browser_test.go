package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// chromium returns the path of a Chromium binary. Without one the browser
// tests skip on a developer machine, and fail in CI (CI=true), which
// installs Debian's chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found; CI must install it (apt-get install chromium)")
	}
	t.Skip("no Chromium on this machine; install Debian's chromium to run the browser tests")
	return ""
}

// newChrome starts a headless Chromium with a fresh profile.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// callbackServer is the client's loopback redirect target: it records the
// query of each redirect it receives.
type callbackServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits []url.Values
}

func newCallbackServer(t *testing.T) *callbackServer {
	cb := &callbackServer{}
	cb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r) // the browser also asks for /favicon.ico
			return
		}
		cb.mu.Lock()
		cb.hits = append(cb.hits, r.URL.Query())
		cb.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><title>callback</title><p id=done>You can close this window.</p>"))
	}))
	t.Cleanup(cb.Close)
	return cb
}

func (cb *callbackServer) last() url.Values {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if len(cb.hits) == 0 {
		return nil
	}
	return cb.hits[len(cb.hits)-1]
}

func TestBrowserLoginAndConsent(t *testing.T) {
	ctx := newChrome(t)
	ts := startServer(t)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, _ := publicClient(t, ts.URL, "Browser Test Client")
	cb := newCallbackServer(t)
	redirect := cb.URL + "/callback" // 127.0.0.1 on a random port: registered as http://127.0.0.1/callback
	cfg := &oauth2.Config{
		ClientID: clientID, RedirectURL: redirect, Scopes: []string{"notes:read", "notes:write"},
		Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	authorize := func(t *testing.T, state string) (string, string) {
		verifier := oauth2.GenerateVerifier()
		return cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), verifier
	}

	t.Run("login, consent shows client, host and scopes, allow yields a code that exchanges", func(t *testing.T) {
		authURL, verifier := authorize(t, "state-allow-123")
		err := chromedp.Do(ctx,
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(`input[name=username]`),
			chromedp.SendKeys(`input[name=username]`, "alice"),
			chromedp.SendKeys(`input[name=password]`, "alice-pw"),
			chromedp.Submit(`input[name=password]`),
			chromedp.WaitVisible(`button[name=action][value=allow]`),
		)
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		body, err := chromedp.Run(ctx, chromedp.Text(`body`))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(cb.URL)
		for _, want := range []string{"Browser Test Client", u.Hostname(), "Read your notes", "Create, change and delete your notes"} {
			if !strings.Contains(body, want) {
				t.Errorf("consent page lacks %q:\n%s", want, body)
			}
		}
		if dir := os.Getenv("OUT_DIR"); dir != "" {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(filepath.Join(dir, "consent.png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := chromedp.Do(ctx,
			chromedp.Click(`button[name=action][value=allow]`),
			chromedp.WaitVisible(`#done`),
		); err != nil {
			t.Fatalf("allow: %v", err)
		}
		q := cb.last()
		if q.Get("code") == "" || q.Get("state") != "state-allow-123" || q.Get("iss") != ts.URL {
			t.Fatalf("callback query %v; want code, state and iss", q)
		}
		tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" {
			t.Errorf("token response lacks a token: %+v", tok)
		}
	})

	t.Run("deny sends access_denied with iss to the client", func(t *testing.T) {
		authURL, _ := authorize(t, "state-deny-456")
		if err := chromedp.Do(ctx,
			chromedp.Navigate(authURL), // the login session is still there
			chromedp.WaitVisible(`button[name=action][value=deny]`),
			chromedp.Click(`button[name=action][value=deny]`),
			chromedp.WaitVisible(`#done`),
		); err != nil {
			t.Fatalf("deny: %v", err)
		}
		q := cb.last()
		if q.Get("error") != "access_denied" || q.Get("iss") != ts.URL || q.Get("state") != "state-deny-456" || q.Get("code") != "" {
			t.Errorf("callback query %v; want error=access_denied, iss, state and no code", q)
		}
	})

	t.Run("remembered decision skips the consent page the second time", func(t *testing.T) {
		authURL, _ := authorize(t, "state-remember-1")
		if err := chromedp.Do(ctx,
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(`button[name=action][value=allow]`),
			chromedp.Click(`input[name=remember]`),
			chromedp.Click(`button[name=action][value=allow]`),
			chromedp.WaitVisible(`#done`),
		); err != nil {
			t.Fatalf("allow with remember: %v", err)
		}
		authURL, verifier := authorize(t, "state-remember-2")
		if err := chromedp.Do(ctx,
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(`#done`),
		); err != nil {
			t.Fatalf("second authorization: %v", err)
		}
		location, _ := chromedp.Run(ctx, chromedp.Location())
		q := cb.last()
		if q.Get("state") != "state-remember-2" || q.Get("code") == "" {
			t.Fatalf("second authorization ended at %s; want the callback with a code", location)
		}
		if _, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Errorf("exchange after remembered consent: %v", err)
		}
	})
}

// TestBrowserBehindPathProxy signs in and consents in a real browser
// through a proxy that serves mcpd under /mcpd (SEP-2351): the stylesheet
// loads and applies, the path-scoped session cookie comes back, and the
// forms post under the issuer.
func TestBrowserBehindPathProxy(t *testing.T) {
	ctx := newChrome(t)
	proxy := &pathProxy{prefix: "/mcpd", strip: true}
	front := httptest.NewServer(proxy)
	defer front.Close()
	issuer := front.URL + "/mcpd"
	ts := startServer(t, "--issuer", issuer)
	proxy.backend, _ = url.Parse(ts.URL)
	mustMcpd(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", ts.Data)
	clientID, _ := publicClient(t, issuer, "Proxied Browser Client")
	cb := newCallbackServer(t)
	cfg := &oauth2.Config{
		ClientID: clientID, RedirectURL: cb.URL + "/callback", Scopes: []string{"notes:read"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(cfg.AuthCodeURL("state-proxied-1", oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(`input[name=username]`),
	); err != nil {
		t.Fatalf("login page: %v", err)
	}
	radius, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("main")).borderTopLeftRadius`))
	if err != nil || radius != "12px" {
		t.Errorf("main's border radius %q (%v); want 12px from the stylesheet: is /mcpd/static/style.css loaded?", radius, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`input[name=username]`, "alice"),
		chromedp.SendKeys(`input[name=password]`, "alice-pw"),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`button[name=action][value=allow]`),
		chromedp.Click(`button[name=action][value=allow]`),
		chromedp.WaitVisible(`#done`),
	); err != nil {
		t.Fatalf("login and consent through the proxy: %v (proxy saw %q)", err, proxy.requested)
	}
	cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err == nil && strings.Contains(cookie, "mcpd_session") {
		t.Errorf("the session cookie is visible to scripts on the callback page: %q", cookie)
	}
	q := cb.last()
	if q.Get("code") == "" || q.Get("iss") != issuer {
		t.Fatalf("callback query %v; want a code and iss %s", q, issuer)
	}
	if _, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Errorf("exchange through the proxy: %v", err)
	}
	for _, p := range []string{"/mcpd/static/style.css", "/mcpd/authorize/login", "/mcpd/authorize/consent"} {
		proxy.mu.Lock()
		seen := slices.ContainsFunc(proxy.requested, func(r string) bool { return strings.HasSuffix(r, " "+p) })
		proxy.mu.Unlock()
		if !seen {
			t.Errorf("the browser never asked the proxy for %s; it saw %q", p, proxy.requested)
		}
	}
}
