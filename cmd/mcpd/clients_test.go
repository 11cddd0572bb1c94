package main

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestApplicationTypeOnTheRealServer: SEP-837 at the real /register.
func TestApplicationTypeOnTheRealServer(t *testing.T) {
	ts := startServer(t)
	for _, tt := range []struct {
		name      string
		body      map[string]any
		wantError string
	}{
		{"VS Code's native registration with loopback and claimed https redirects is accepted", map[string]any{
			"client_name": "Visual Studio Code", "application_type": "native", "token_endpoint_auth_method": "none",
			"redirect_uris": []string{"https://insiders.vscode.dev/redirect", "https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"},
		}, ""},
		{"Claude Code's registration without application_type is accepted as before", map[string]any{
			"client_name": "Claude Code", "token_endpoint_auth_method": "none", "redirect_uris": []string{"http://localhost:54321/callback"},
		}, ""},
		{"a web application may not register a private-use scheme", map[string]any{
			"client_name": "Web", "application_type": "web", "redirect_uris": []string{"cursor://anysphere.cursor-retrieval/cb"},
		}, "invalid_redirect_uri"},
		{"an unknown application_type is invalid_client_metadata", map[string]any{
			"client_name": "Odd", "application_type": "desktop", "redirect_uris": []string{"http://127.0.0.1/"},
		}, "invalid_client_metadata"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(tt.body)
			resp, err := http.Post(ts.URL+"/register", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			if tt.wantError == "" {
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("%s %v; want 201", resp.Status, out)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || out["error"] != tt.wantError {
				t.Errorf("%s %v; want 400 %s", resp.Status, out, tt.wantError)
			}
		})
	}
}

// TestClientMetadataDocumentFailureOnTheRealServer: a client metadata
// document the server cannot fetch ends on a page that says why and how to
// switch documents off, not on a bare "could not be fetched".
func TestClientMetadataDocumentFailureOnTheRealServer(t *testing.T) {
	docs := httptest.NewTLSServer(http.NotFoundHandler()) // its certificate is not trusted
	defer docs.Close()
	ts := startServer(t, "--allow-private-metadata-hosts", "true")
	clientID := docs.URL + "/oauth/client-metadata.json"
	cfg := &oauth2.Config{ClientID: clientID, RedirectURL: "http://127.0.0.1:33418/",
		Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize"}}
	u := cfg.AuthCodeURL("state-12345678", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	resp, body := newBrowser(t).get(u)
	text := html.UnescapeString(string(body))
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("%s, Location %q; want a 400 page", resp.Status, resp.Header.Get("Location"))
	}
	host, _ := url.Parse(docs.URL)
	for _, want := range []string{"Application not recognised", clientID, "TLS certificate of " + host.Hostname() + " is not signed by an authority this computer trusts", "mcpd serve --client-metadata-documents false"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q:\n%s", want, text)
		}
	}
}
