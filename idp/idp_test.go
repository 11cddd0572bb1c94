package idp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/idp"
)

func TestTokenError(t *testing.T) {
	retrieve := func(status int, code, body string) error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, Body: []byte(body), ErrorCode: code}
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"invalid_grant is the grant refused", retrieve(400, "invalid_grant", ""), idp.ErrRejected},
		{"GitHub's bad_verification_code (status 200) is the code refused", retrieve(200, "bad_verification_code", ""), idp.ErrRejected},
		{"GitHub's bad_refresh_token is the grant refused", retrieve(200, "bad_refresh_token", ""), idp.ErrRejected},
		{"429 is throttling, not a dead grant", retrieve(429, "", ""), idp.ErrUnavailable},
		{"429 with invalid_grant is still throttling", retrieve(429, "invalid_grant", ""), idp.ErrUnavailable},
		{"invalid_client (a rotated secret) is mcpd's problem, not the grant's", retrieve(401, "invalid_client", ""), idp.ErrUnavailable},
		{"GitHub's incorrect_client_credentials is mcpd's problem", retrieve(200, "incorrect_client_credentials", ""), idp.ErrUnavailable},
		{"invalid_request is mcpd's problem", retrieve(400, "invalid_request", ""), idp.ErrUnavailable},
		{"a 4xx without an error code does not say the grant is dead", retrieve(403, "", "<html>forbidden</html>"), idp.ErrUnavailable},
		{"a 5xx is unavailable", retrieve(503, "invalid_grant", ""), idp.ErrUnavailable},
		{"no answer is unavailable", errors.New("dial tcp: connection refused"), idp.ErrUnavailable},
		{"a timeout is unavailable and stays recognisable", fmt.Errorf("post: %w", context.DeadlineExceeded), context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := idp.TokenError(tt.err)
			if !errors.Is(got, tt.want) {
				t.Errorf("TokenError = %v; want %v", got, tt.want)
			}
			if errors.Is(got, idp.ErrRejected) && errors.Is(got, idp.ErrUnavailable) {
				t.Errorf("TokenError = %v is in two classes", got)
			}
		})
	}

	t.Run("the body and a garbled error code stay out of the error", func(t *testing.T) {
		got := idp.TokenError(retrieve(400, "<script>", "refresh_token=rt-secret")).Error()
		if strings.Contains(got, "rt-secret") || strings.Contains(got, "<script>") {
			t.Errorf("TokenError = %q", got)
		}
	})
}
