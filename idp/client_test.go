package idp_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpd/mcpd/idp"
)

func TestBoundedClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		io.WriteString(w, strings.Repeat("x", n))
	}))
	t.Cleanup(srv.Close)
	hc := idp.BoundedClient(nil, 5*time.Second)

	tests := []struct {
		name    string
		method  string
		query   string
		wantLen int
		wantErr error
	}{
		{"an answer of exactly the limit is read whole", http.MethodGet, "n=" + strconv.Itoa(idp.MaxResponseBytes), idp.MaxResponseBytes, nil},
		{"one byte past the limit fails", http.MethodGet, "n=" + strconv.Itoa(idp.MaxResponseBytes+1), idp.MaxResponseBytes, idp.ErrResponseTooLarge},
		{"a GET's error answer is not read", http.MethodGet, "n=100&status=401", 0, nil},
		{"a POST's error answer is read, for its OAuth error code", http.MethodPost, "n=100&status=400", 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+"?"+tt.query, nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if len(body) != tt.wantLen || !errors.Is(err, tt.wantErr) {
				t.Errorf("read %d bytes, %v; want %d, %v", len(body), err, tt.wantLen, tt.wantErr)
			}
		})
	}

	t.Run("a client's own timeout is kept, and one without gets the default", func(t *testing.T) {
		if got := idp.BoundedClient(&http.Client{Timeout: time.Second}, time.Minute).Timeout; got != time.Second {
			t.Errorf("timeout %v; want 1s", got)
		}
		if got := idp.BoundedClient(&http.Client{}, time.Minute).Timeout; got != time.Minute {
			t.Errorf("timeout %v; want 1m", got)
		}
	})
}
