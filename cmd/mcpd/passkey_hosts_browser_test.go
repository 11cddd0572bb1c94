package main

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// TestBrowserPasskeysNeedAHostName holds the passkey decision for the
// default issuer against Chromium: on http://127.0.0.1 mcpd offers no
// passkey sign-in and says why, because the browser refuses WebAuthn on an
// IP address (WebAuthn §5.1.3: the caller's effective domain must be a
// valid domain) although the page is a secure context; on localhost and on
// a name under .localhost, which mcpd does offer passkeys on, it creates
// one.
func TestBrowserPasskeysNeedAHostName(t *testing.T) {
	ctx := newChrome(t)
	ts := startServer(t) // issuer http://127.0.0.1:PORT, the default form
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
		Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
		IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	// create asks the browser for a passkey of the page's own host, as
	// mcpd's script would, and answers "ok" or the error's name.
	const create = `(async () => {
		try {
			await navigator.credentials.create({publicKey: {
				rp: {id: location.hostname, name: "mcpd"},
				user: {id: new Uint8Array(16), name: "alice", displayName: "alice"},
				challenge: new Uint8Array(32), pubKeyCredParams: [{type: "public-key", alg: -7}],
				authenticatorSelection: {userVerification: "required", residentKey: "preferred"}}});
			return "ok";
		} catch (e) { return e.name; }
	})()`

	t.Run("on 127.0.0.1 the login page offers no passkey and says why", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/account"), chromedp.WaitVisible(`input[name=password]`)); err != nil {
			t.Fatal(err)
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("form[data-passkey]").length`))
		if err != nil || n != 0 {
			t.Errorf("%d passkey forms (%v); want none", n, err)
		}
		note, err := chromedp.Run(ctx, chromedp.Text(`#passkey-off`))
		if err != nil || !strings.Contains(note, "IP address") || !strings.Contains(note, "localhost") {
			t.Errorf("note %q (%v); want why, and localhost as the way", note, err)
		}
	})

	for _, tc := range []struct{ host, want string }{
		{"127.0.0.1", "SecurityError"},
		{"localhost", "ok"},
		{"mcpd.localhost", "ok"},
	} {
		t.Run("Chromium on http://"+tc.host+" answers "+tc.want, func(t *testing.T) {
			page := strings.Replace(ts.URL, "127.0.0.1", tc.host, 1) + "/account"
			if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(`input[name=password]`)); err != nil {
				t.Fatal(err)
			}
			secure, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`isSecureContext`))
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](create, chromedp.EvalAwaitPromise))
			if err != nil || got != tc.want {
				t.Errorf("navigator.credentials.create = %q (%v), secure context %v; want %q", got, err, secure, tc.want)
			}
		})
	}
}
