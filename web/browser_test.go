package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
)

// chromiumPath returns a Chromium binary. Without one the test skips on a
// developer machine and fails in CI (CI set), which installs Debian's chromium.
func chromiumPath(t *testing.T) string {
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

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(720, 960),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first call starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// consentSite serves the consent page the way authz does: GET renders it,
// POST records the form and answers with a 303 to the client's loopback
// redirect URI, which records what reached it.
type consentSite struct {
	pages, client *httptest.Server
	mu            sync.Mutex
	posted        url.Values
	redirected    url.Values
}

func newConsentSite(t *testing.T, r *Renderer, csp string) *consentSite {
	s := &consentSite{}
	s.client = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/callback" {
			s.mu.Lock()
			s.redirected = req.URL.Query()
			s.mu.Unlock()
		}
		w.Write([]byte(`<!doctype html><title>client</title><p id="client">client</p>`))
	}))
	mux := http.NewServeMux()
	mux.Handle("/static/", r.StaticHandler())
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, req *http.Request) {
		d := sampleConsent()
		d.Action = "/consent"
		if csp != "" {
			r.Consent(headerOverride{w, csp}, d)
			return
		}
		r.Consent(w, d)
	})
	mux.HandleFunc("POST /consent", func(w http.ResponseWriter, req *http.Request) {
		req.ParseForm()
		s.mu.Lock()
		s.posted = req.PostForm
		s.mu.Unlock()
		http.Redirect(w, req, s.client.URL+"/callback?code=c0de&iss=x", http.StatusSeeOther)
	})
	s.pages = httptest.NewServer(mux)
	t.Cleanup(func() { s.pages.Close(); s.client.Close() })
	return s
}

// headerOverride replaces the CSP that SecurityHeaders set, to show what
// a narrower policy would do.
type headerOverride struct {
	http.ResponseWriter
	csp string
}

func (h headerOverride) WriteHeader(status int) {
	h.Header().Set("Content-Security-Policy", h.csp)
	h.ResponseWriter.WriteHeader(status)
}

func TestConsentPageInChromium(t *testing.T) {
	r := newTestRenderer(t)
	ctx := newBrowser(t)

	t.Run("Allow reaches the loopback redirect with the scopes that stayed checked", func(t *testing.T) {
		s := newConsentSite(t, r, "")
		err := chromedp.Do(ctx,
			chromedp.Navigate(s.pages.URL+"/consent"),
			chromedp.WaitVisible(`button[name=action][value=allow]`),
			chromedp.Click(`input[value="api:call"]`),    // check the unchecked optional scope
			chromedp.Click(`input[value="notes:write"]`), // and uncheck a checked one
			chromedp.Click(`button[name=action][value=allow]`),
			chromedp.WaitVisible(`#client`),
		)
		if err != nil {
			t.Fatal(err)
		}
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(loc, s.client.URL+"/callback") {
			t.Fatalf("browser is at %s; want the client's redirect URI %s/callback", loc, s.client.URL)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		got := map[string][]string{"scope": s.posted["scope"], "action": s.posted["action"], "csrf_token": s.posted["csrf_token"], "code": s.redirected["code"]}
		want := map[string][]string{"scope": {"notes:read", "api:call"}, "action": {"allow"}, "csrf_token": {"csrf-consent-123"}, "code": {"c0de"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("submitted and redirected (-want +got):\n%s", diff)
		}
	})

	t.Run("a form-action limited to self would block that redirect, which is why the CSP has none", func(t *testing.T) {
		s := newConsentSite(t, r, strings.Replace(ContentSecurityPolicy, "base-uri 'none'", "base-uri 'none'; form-action 'self'", 1))
		err := chromedp.Do(ctx,
			chromedp.Navigate(s.pages.URL+"/consent"),
			chromedp.WaitVisible(`button[name=action][value=allow]`),
			chromedp.Click(`button[name=action][value=allow]`),
			chromedp.Sleep(2*time.Second),
		)
		if err != nil {
			t.Fatal(err)
		}
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.posted == nil {
			t.Fatal("the form was not posted at all")
		}
		if s.redirected != nil || strings.HasPrefix(loc, s.client.URL) {
			t.Errorf("the redirect reached the client (%s); this test no longer shows why form-action is left out", loc)
		}
	})

	for _, tt := range []struct {
		scheme, wantBg, wantRadius, screenshot string
	}{
		{"light", "rgb(246, 247, 249)", "12px", "consent-light.png"},
		{"dark", "rgb(17, 20, 24)", "12px", "consent-dark.png"},
	} {
		t.Run("the stylesheet loads under the CSP in the "+tt.scheme+" scheme", func(t *testing.T) {
			s := newConsentSite(t, r, "")
			err := chromedp.Do(ctx,
				chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
						Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: tt.scheme}},
					})
					return err
				}),
				chromedp.Navigate(s.pages.URL+"/consent"),
				chromedp.WaitVisible(`main`),
			)
			if err != nil {
				t.Fatal(err)
			}
			bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
			if err != nil {
				t.Fatal(err)
			}
			radius, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("main")).borderTopLeftRadius`))
			if err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.wantBg, tt.wantRadius}, []string{bg, radius}); diff != "" {
				t.Errorf("computed body background and card radius (-want +got):\n%s", diff)
			}
			if dir := os.Getenv("OUT_DIR"); dir != "" {
				if err := os.WriteFile(filepath.Join(dir, tt.screenshot), png, 0o644); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
