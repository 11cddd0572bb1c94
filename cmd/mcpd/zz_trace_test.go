package main

import (
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/mcpd/mcpd/store/postgres/pgtest"
)

func BenchmarkTraceRefresh(t *testing.B) {
	db := pgtest.URL(t) + "&log_statement=all&application_name=tracer"
	issuer := benchServer(t, "--database", db, "--mcp-stateless", "true")
	clientID, tok := benchGrant(t, issuer)
	hc := &http.Client{}
	rt := tok.RefreshToken
	os.WriteFile("/tmp/p16f-mark", []byte("start"), 0o644)
	for range 3 {
		var next benchTokens
		benchPost(t, hc, issuer+"/token", "application/x-www-form-urlencoded",
			[]byte(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}}.Encode()),
			[2]string{}, http.StatusOK, &next)
		rt = next.RefreshToken
	}
}
