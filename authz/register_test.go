package authz

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRegistrationRules(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RegistrationsPerMinute = 100 })
	tests := []struct {
		name      string
		body      string
		wantError string // "" means 201
	}{
		{"public client with loopback redirect is accepted", `{"redirect_uris":["http://127.0.0.1:1234/cb"],"token_endpoint_auth_method":"none"}`, ""},
		{"IPv6 loopback redirect is accepted", `{"redirect_uris":["http://[::1]/cb"],"token_endpoint_auth_method":"none"}`, ""},
		{"localhost redirect is accepted", `{"redirect_uris":["http://localhost/callback"],"token_endpoint_auth_method":"none"}`, ""},
		{"private-use scheme redirect is accepted", `{"redirect_uris":["cursor://anysphere.cursor-retrieval/oauth/user-mcpd/callback"],"token_endpoint_auth_method":"none"}`, ""},
		{"https redirect is accepted", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`, ""},
		{"http redirect to a non-loopback host is refused", `{"redirect_uris":["http://app.example/cb"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"redirect with a fragment is refused", `{"redirect_uris":["https://app.example/cb#x"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"javascript redirect is refused", `{"redirect_uris":["javascript:alert(1)"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"relative redirect is refused", `{"redirect_uris":["/cb"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"authorization_code without redirect_uris is refused", `{"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"unknown grant type is refused", `{"redirect_uris":["https://app.example/cb"],"grant_types":["implicit"]}`, "invalid_client_metadata"},
		{"public client_credentials is refused", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, "invalid_client_metadata"},
		{"unknown auth method is refused", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{"token response type is refused", `{"redirect_uris":["https://app.example/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{"a client_id cannot be chosen", `{"client_id":"mine","redirect_uris":["https://app.example/cb"]}`, "invalid_client_metadata"},
		{"malformed JSON is refused", `{"redirect_uris":`, "invalid_client_metadata"},
		{"wrong field type is refused", `{"redirect_uris":"https://app.example/cb"}`, "invalid_client_metadata"},
		{"a javascript client_uri is refused", `{"redirect_uris":["https://app.example/cb"],"client_uri":"javascript:alert(1)"}`, "invalid_client_metadata"},
		{"a data logo_uri is refused", `{"redirect_uris":["https://app.example/cb"],"logo_uri":"data:image/svg+xml,<svg/>"}`, "invalid_client_metadata"},
		{"a client_name with a bidi override is refused (it could disguise the name on the consent page)", `{"redirect_uris":["https://app.example/cb"],"client_name":"Visual Studio \u202eedoC"}`, "invalid_client_metadata"},
		{"a client_name with a bidi isolate is refused", `{"redirect_uris":["https://app.example/cb"],"client_name":"VS \u2067Code"}`, "invalid_client_metadata"},
		{"a redirect URI that is not plain ASCII is refused (it would go back byte for byte in Location)", `{"redirect_uris":["https://app.example/c\u00e9"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"a redirect URI with a space is refused", `{"redirect_uris":["https://app.example/a b"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"a redirect URI with a NUL is refused", `{"redirect_uris":["http://127.0.0.1/cb\u0000"],"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"a client_uri that is not plain ASCII is refused", `{"redirect_uris":["https://app.example/cb"],"client_uri":"https://app.example/\ufffd"}`, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rr regResponse
			resp := e.postJSON("/register", tt.body, &rr)
			if tt.wantError == "" {
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("status %d %s: %s; want 201", resp.StatusCode, rr.Error, rr.ErrorDescription)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || rr.Error != tt.wantError || rr.ErrorDescription == "" {
				t.Errorf("status %d error %q (%q); want 400 %s with a description", resp.StatusCode, rr.Error, rr.ErrorDescription, tt.wantError)
			}
		})
	}

	t.Run("a confidential client gets a secret once and it is stored hashed", func(t *testing.T) {
		rr := e.registerConfidential("")
		if len(rr.ClientSecret) < 40 {
			t.Fatalf("client_secret %q too short", rr.ClientSecret)
		}
		if diff := cmp.Diff("notes:read notes:write api:call", rr.Scope); diff != "" {
			t.Errorf("default scope (-want +got):\n%s", diff)
		}
		c := e.store.client(rr.ClientID)
		if string(c.SecretHash) == rr.ClientSecret || len(c.SecretHash) == 0 {
			t.Errorf("secret stored as %q", c.SecretHash)
		}
		req, _ := http.NewRequest(http.MethodGet, rr.RegistrationClientURI, nil)
		req.Header.Set("Authorization", "Bearer "+rr.RegistrationAccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var read regResponse
		_ = json.NewDecoder(resp.Body).Decode(&read)
		resp.Body.Close()
		if resp.StatusCode != 200 || read.ClientSecret != "" || read.ClientID != rr.ClientID {
			t.Errorf("RFC 7592 read: status %d, secret %q, id %q", resp.StatusCode, read.ClientSecret, read.ClientID)
		}
	})

	t.Run("an auth-code client is given refresh_token too", func(t *testing.T) {
		rr := e.register(`{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code"]}`)
		if diff := cmp.Diff([]string{"authorization_code", "refresh_token"}, rr.GrantTypes); diff != "" {
			t.Errorf("grant_types (-want +got):\n%s", diff)
		}
	})

	t.Run("RFC 7592 delete needs the registration access token", func(t *testing.T) {
		rr := e.registerPublic("https://app.example/cb")
		del := func(token string) int {
			req, _ := http.NewRequest(http.MethodDelete, rr.RegistrationClientURI, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if st := del("wrong"); st != http.StatusUnauthorized {
			t.Errorf("wrong token: status %d; want 401", st)
		}
		if st := del(rr.RegistrationAccessToken); st != http.StatusNoContent {
			t.Errorf("right token: status %d; want 204", st)
		}
		if e.store.client(rr.ClientID) != nil {
			t.Errorf("client still stored")
		}
	})
}

// TestApplicationType is SEP-837: the registered application_type decides
// which redirect URIs a client may register, and a client that sends none
// keeps the rule of every kind at once.
func TestApplicationType(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RegistrationsPerMinute = 1000 })
	tests := []struct {
		name      string
		appType   string // "" sends none
		redirects []string
		wantError string // "" means 201
	}{
		{"native: VS Code's loopback and claimed https redirects are accepted", "native", []string{"https://insiders.vscode.dev/redirect", "https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"}, ""},
		{"native: localhost on a port is accepted", "native", []string{"http://localhost:49152/callback"}, ""},
		{"native: IPv6 loopback is accepted", "native", []string{"http://[::1]:8000/cb"}, ""},
		{"native: a private-use scheme is accepted", "native", []string{"cursor://anysphere.cursor-retrieval/oauth/user-mcpd/callback"}, ""},
		{"native: a reverse-DNS private-use scheme is accepted", "native", []string{"com.example.app:/oauth2redirect"}, ""},
		{"native: http on a non-loopback host is refused", "native", []string{"http://app.example/cb"}, "invalid_redirect_uri"},
		{"web: https is accepted", "web", []string{"https://app.example/cb"}, ""},
		{"web: http on localhost is accepted as a development host", "web", []string{"http://localhost:3000/callback"}, ""},
		{"web: http on 127.0.0.1 is accepted as a development host", "web", []string{"http://127.0.0.1:3000/callback"}, ""},
		{"web: a private-use scheme is refused", "web", []string{"https://app.example/cb", "cursor://anysphere.cursor-retrieval/cb"}, "invalid_redirect_uri"},
		{"web: http on a non-loopback host is refused", "web", []string{"http://app.example/cb"}, "invalid_redirect_uri"},
		{"none sent: every kind is accepted, as before", "", []string{"https://app.example/cb", "http://127.0.0.1/", "cursor://anysphere.cursor-retrieval/cb"}, ""},
		{"none sent: http on a non-loopback host is still refused", "", []string{"http://app.example/cb"}, "invalid_redirect_uri"},
		{"an unknown application_type is invalid_client_metadata", "desktop", []string{"http://127.0.0.1/"}, "invalid_client_metadata"},
		{"application_type is case-sensitive", "Native", []string{"http://127.0.0.1/"}, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := map[string]any{"client_name": "App", "redirect_uris": tt.redirects, "token_endpoint_auth_method": "none"}
			if tt.appType != "" {
				md["application_type"] = tt.appType
			}
			body, _ := json.Marshal(md)
			var rr regResponse
			resp := e.postJSON("/register", string(body), &rr)
			if tt.wantError != "" {
				if resp.StatusCode != http.StatusBadRequest || rr.Error != tt.wantError || rr.ErrorDescription == "" {
					t.Errorf("status %d error %q (%q); want 400 %s with a description", resp.StatusCode, rr.Error, rr.ErrorDescription, tt.wantError)
				}
				return
			}
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d %s: %s; want 201", resp.StatusCode, rr.Error, rr.ErrorDescription)
			}
			if diff := cmp.Diff(tt.appType, rr.ApplicationType); diff != "" {
				t.Errorf("application_type in the answer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.redirects, rr.RedirectURIs); diff != "" {
				t.Errorf("redirect_uris (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("the refusal of a web client's private-use scheme says how to fix it", func(t *testing.T) {
		var rr regResponse
		e.postJSON("/register", `{"application_type":"web","redirect_uris":["vscode://vscode.github-authentication/did-authenticate"]}`, &rr)
		if !strings.Contains(rr.ErrorDescription, "application_type native") {
			t.Errorf("error_description %q does not name the fix", rr.ErrorDescription)
		}
	})
}

func TestRegistrationLimits(t *testing.T) {
	t.Run("registrations are rate-limited per client address", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RegistrationsPerMinute = 3 })
		body := `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`
		var codes []int
		for range 4 {
			codes = append(codes, e.postJSON("/register", body, nil).StatusCode)
		}
		if diff := cmp.Diff([]int{201, 201, 201, 429}, codes); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
		e.clock.Advance(61e9)
		if st := e.postJSON("/register", body, nil).StatusCode; st != 201 {
			t.Errorf("after a minute: status %d; want 201", st)
		}
	})
	t.Run("registrations stop at the global cap", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.MaxClients = 2 })
		body := `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`
		var codes []int
		for range 3 {
			codes = append(codes, e.postJSON("/register", body, nil).StatusCode)
		}
		if diff := cmp.Diff([]int{201, 201, 503}, codes); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
	})
	t.Run("an oversized body is refused with 413", func(t *testing.T) {
		e := newEnv(t, nil)
		big := `{"client_name":"` + strings.Repeat("a", maxJSONBody) + `"}`
		if st := e.postJSON("/register", big, nil).StatusCode; st != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d; want 413", st)
		}
	})
	t.Run("registrations from many addresses stop at the per-minute total", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RegistrationsPerMinuteAll = 3 })
		body := `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`
		var codes []int
		for i := range 5 {
			req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
			req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1", i+1)
			rec := httptest.NewRecorder()
			e.srv.handleRegister(rec, req)
			codes = append(codes, rec.Code)
		}
		e.clock.Advance(61e9)
		req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
		req.RemoteAddr = "192.0.2.99:1"
		rec := httptest.NewRecorder()
		e.srv.handleRegister(rec, req)
		codes = append(codes, rec.Code)
		if diff := cmp.Diff([]int{201, 201, 201, 429, 429, 201}, codes); diff != "" {
			t.Errorf("statuses, the last a minute later (-want +got):\n%s", diff)
		}
	})
	t.Run("addresses in one IPv6 /64 share the registration limit", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RegistrationsPerMinute = 1 })
		body := `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`
		var codes []int
		for _, remote := range []string{"[2001:db8::1]:1234", "[2001:db8::2]:1234", "[2001:db8:0:1::1]:1234", "192.0.2.1:1", "192.0.2.2:1"} {
			req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
			req.RemoteAddr = remote
			rec := httptest.NewRecorder()
			e.srv.handleRegister(rec, req)
			codes = append(codes, rec.Code)
		}
		if diff := cmp.Diff([]int{201, 429, 201, 201, 201}, codes); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
	})
	t.Run("X-Forwarded-For is ignored from untrusted peers", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RegistrationsPerMinute = 1 })
		body := `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`
		var codes []int
		for _, xff := range []string{"203.0.113.1", "203.0.113.2"} {
			req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
			req.Header.Set("X-Forwarded-For", xff)
			rec := httptest.NewRecorder()
			e.srv.handleRegister(rec, req)
			codes = append(codes, rec.Code)
		}
		if diff := cmp.Diff([]int{201, 429}, codes); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
	})
}

func TestNewClientIDIsSafeOnACommandLine(t *testing.T) {
	// A base64url id starts with "-" about one time in 64, and
	// `mcpd client revoke -Xyz…` then reads it as a flag.
	for range 2000 {
		id := newClientID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("newClientID() = %q; want 32 lower-case hex digits", id)
		}
	}
}
