package mcp

import (
	"net/http"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// requireScopes answers 403 insufficient_scope when a POSTed tools/call,
// resources/read or prompts/get needs a scope the token lacks. It reads the
// calls that readInbound decoded. A batch is refused when any of its calls
// would be. A body that is not JSON-RPC is left to the SDK to reject.
func (s *Server) requireScopes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		ti, err := verifiedTokenInfo(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if missing := s.missingScopes(inboundFrom(r.Context()).calls, ti); len(missing) > 0 {
			s.insufficientScope(w, r, stepUpScopes(ti.Scopes, missing))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// stepUpScopes is the scope a 403 challenge names: what the request needs
// and the token lacks, then every scope the token already has, so that a
// client that re-authorizes with it never loses a scope (SEP-2350).
func stepUpScopes(granted, missing []string) []string {
	want := slices.Clone(missing)
	for _, g := range granted {
		if !slices.Contains(want, g) {
			want = append(want, g)
		}
	}
	return want
}

// missingScopes returns the scopes that calls need and ti lacks, in the
// order first needed.
func (s *Server) missingScopes(calls []rpcCall, ti *auth.TokenInfo) []string {
	var missing []string
	for _, c := range calls {
		for _, sc := range s.scopesFor(c) {
			if !slices.Contains(ti.Scopes, sc) && !slices.Contains(missing, sc) {
				missing = append(missing, sc)
			}
		}
	}
	return missing
}

// scopesFor returns the scopes one JSON-RPC call needs. Unknown tools and
// prompts need none here: the SDK answers them with an error.
func (s *Server) scopesFor(c rpcCall) []string {
	switch c.Method {
	case "tools/call":
		if t, ok := s.tools[c.Params.Name]; ok && t.scope != "" {
			return []string{t.scope}
		}
	case "resources/read":
		return []string{resourceScope}
	case "prompts/get":
		if c.Params.Name == promptSummarizeNotes {
			return []string{promptScope}
		}
	}
	return nil
}
