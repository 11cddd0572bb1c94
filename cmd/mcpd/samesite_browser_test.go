package main

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserLoginCSRFFromAnotherPort is the attack the Sec-Fetch-Site
// check stops, in a real Chromium: cookies do not tell ports apart and a
// page on http://localhost:OTHER is same-site with mcpd on
// http://localhost:PORT, so SameSite=Lax lets it post with mcpd's cookie.
// The attacker fetches a login page for itself (a visitor cookie and the
// CSRF token bound to it), and its page on another port of localhost
// plants that cookie in the victim's browser and posts the login form with
// the attacker's password. Without the check the victim ends up signed in
// as the attacker, and the next application they connect acts in the
// attacker's account.
func TestBrowserLoginCSRFFromAnotherPort(t *testing.T) {
	ctx := newChrome(t)
	ts := startServer(t, "--listen", "localhost:0")
	issuer := strings.Replace(ts.URL, "127.0.0.1", "localhost", 1)
	mustMcpd(t, "mallory-pw\n", "user", "add", "mallory", "--password-stdin", "--data", ts.Data)

	// The attacker's own visit: a visitor cookie and its CSRF token.
	b := newBrowser(t)
	resp, body := b.get(issuer + "/account")
	form := parseForm(t, resp.Request.URL.String(), body)
	u, _ := url.Parse(issuer)
	var cookie *http.Cookie
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == "mcpd_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("the login page set no mcpd_session cookie")
	}

	evil := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var inputs strings.Builder
		for k, v := range map[string]string{"csrf_token": form.Fields.Get("csrf_token"), "request_id": "", "username": "mallory", "password": "mallory-pw"} {
			fmt.Fprintf(&inputs, `<input type="hidden" name="%s" value="%s">`, k, html.EscapeString(v))
		}
		fmt.Fprintf(w, `<!doctype html><html><body><form id="f" method="post" action="%s">%s</form>
<script>document.cookie = "mcpd_session=%s; path=/"; document.getElementById("f").submit();</script></body></html>`,
			html.EscapeString(form.Action), inputs.String(), cookie.Value)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evil.Listener = ln
	evil.Start()
	t.Cleanup(evil.Close)
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	if err := chromedp.Do(ctx, chromedp.Navigate(evilURL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the answer to the planted sign-in", `location.href.startsWith(`+jsString(issuer)+`) && document.readyState === "complete"`)
	if err := chromedp.Do(ctx, chromedp.Navigate(issuer+"/account")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the account page or the login page", `document.readyState === "complete" && document.body !== null`)
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "Signed in as mallory") {
		t.Fatalf("a page on another port of localhost signed the browser in as mallory:\n%s", text)
	}
	if !strings.Contains(text, "Sign in") {
		t.Errorf("want the login page:\n%s", text)
	}
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }
