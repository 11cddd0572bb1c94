package authz

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// onlyReader hides a reader's length, so the client sends the body
// chunked and the server learns its size only by reading it.
type onlyReader struct{ io.Reader }

func TestOversizedBodiesAre413(t *testing.T) {
	e := newEnv(t, nil)
	endpoints := []struct {
		path, contentType string
		body              func(n int) string // a body of exactly n bytes
		jsonAnswer        bool
	}{
		{"/token", "application/x-www-form-urlencoded", formOf, true},
		{"/revoke", "application/x-www-form-urlencoded", formOf, true},
		{"/introspect", "application/x-www-form-urlencoded", formOf, true},
		{loginPath, "application/x-www-form-urlencoded", formOf, false},
		{consentPath, "application/x-www-form-urlencoded", formOf, false},
		{passkeyLoginPath, "application/x-www-form-urlencoded", formOf, false},
		{passkeyLoginBeginPath, "application/x-www-form-urlencoded", formOf, true},
		{"/register", "application/json", jsonOf, true},
	}
	// The account page's forms (/account, /account/passkeys/begin) check
	// the session before they read a body: without one they answer 403
	// and read nothing, which TestSignedOutFormsReadNoBody covers.
	for _, ep := range endpoints {
		for _, chunked := range []bool{false, true} {
			name := ep.path + " with Content-Length"
			if chunked {
				name = ep.path + " chunked"
			}
			t.Run(name+": one byte over the cap is 413", func(t *testing.T) {
				var body io.Reader = strings.NewReader(ep.body(maxFormBody + 1))
				if chunked {
					body = onlyReader{body}
				}
				resp, err := http.Post(e.url(ep.path), ep.contentType, body)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusRequestEntityTooLarge {
					t.Fatalf("status %d; want 413 (%.200s)", resp.StatusCode, b)
				}
				if !resp.Close {
					t.Errorf("413 without Connection: close")
				}
				if ep.jsonAnswer {
					var oerr struct {
						Error string `json:"error"`
					}
					if err := json.Unmarshal(b, &oerr); err != nil || oerr.Error == "" {
						t.Errorf("answer %q is not an OAuth error object", b)
					}
				}
			})
			t.Run(name+": a body at the cap is read", func(t *testing.T) {
				var body io.Reader = strings.NewReader(ep.body(maxFormBody))
				if chunked {
					body = onlyReader{body}
				}
				resp, err := http.Post(e.url(ep.path), ep.contentType, body)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusRequestEntityTooLarge || resp.StatusCode >= 500 {
					t.Errorf("status %d for a body of exactly %d bytes", resp.StatusCode, maxFormBody)
				}
			})
		}
	}
}

// formOf is a form body of n bytes (n ≥ 2).
func formOf(n int) string { return "x=" + strings.Repeat("a", n-2) }

// jsonOf is a JSON registration body of n bytes (n ≥ 17).
func jsonOf(n int) string {
	const head, tail = `{"client_name":"`, `"}`
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

func TestSignedOutFormsReadNoBody(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{accountPath, passkeyAddBeginPath} {
		resp, err := http.Post(e.url(path), "application/x-www-form-urlencoded", strings.NewReader(formOf(maxFormBody+1)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s signed out with an oversized body: status %d; want 403 or 413", path, resp.StatusCode)
		}
	}
}
