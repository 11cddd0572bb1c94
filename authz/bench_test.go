package authz

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

// benchHandler returns the server's router for in-process benchmarks.
func benchHandler(e *env) http.Handler {
	r := mux.NewRouter()
	e.srv.Register(r)
	return r
}

func BenchmarkVerify(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) })
	reg := e.registerConfidential("notes:read")
	_, out, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, reg.ClientID, reg.ClientSecret)
	token := out["access_token"].(string)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.srv.Verify(ctx, token, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClientCredentialsToken(b *testing.B) {
	e := newEnv(b, nil)
	reg := e.registerConfidential("notes:read")
	h := benchHandler(e)
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(reg.ClientID, reg.ClientSecret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

func BenchmarkRefreshRotation(b *testing.B) {
	e := newEnv(b, nil)
	reg := e.registerPublic("http://127.0.0.1/cb")
	tok := e.codeFlow(e.browser(), reg.ClientID, "http://127.0.0.1:9300/cb", "notes:read")
	h := benchHandler(e)
	refresh := tok.RefreshToken
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {reg.ClientID}}.Encode()
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var out struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := jsonDecode(rec.Body, &out); err != nil {
			b.Fatal(err)
		}
		refresh = out.RefreshToken
	}
}
