package mcp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/mux"
	"github.com/mcpd/mcpd/mcp"
	"github.com/modelcontextprotocol/go-sdk/auth"
)

// unusedNotes stands in for a real NotesStore; this example never reaches
// a note.
type unusedNotes struct{ mcp.NotesStore }

// A client's first request carries no token: it is answered 401 with a
// challenge that points at the protected-resource metadata and names the
// scopes to ask for.
func ExampleNew() {
	srv, err := mcp.New(mcp.Config{
		Issuer: "http://127.0.0.1:8080",
		Verifier: func(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
			return nil, auth.ErrInvalidToken
		},
		Notes: unusedNotes{},
	})
	if err != nil {
		panic(err)
	}
	r := mux.NewRouter()
	srv.Register(r)

	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize"}`))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	fmt.Println(rec.Header().Get("WWW-Authenticate"))
	// Output:
	// 401
	// Bearer resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp", scope="notes:read notes:write api:call"
}
