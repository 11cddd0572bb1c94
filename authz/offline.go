package authz

import "slices"

// scopeOfflineAccess is the scope OpenID Connect defined for asking for a
// refresh token. MCP 2026-07-28 (SEP-2207) lets clients add it when they
// want one. mcpd gives a refresh token to every authorization-code client
// whether it asks or not, so offline_access is accepted when asked,
// granted as asked (the token response's scope says so), never required,
// and never advertised: listed in scopes_supported it would make clients
// that follow SEP-2207 add it together with prompt=consent, which would
// cost users their remembered consent for nothing. The resource server
// never sees it (Verify drops it), so it is never part of a 403 challenge.
const scopeOfflineAccess = "offline_access"

func isOfflineAccess(scope string) bool { return scope == scopeOfflineAccess }

// withoutOfflineAccess returns scopes without offline_access, as a new
// slice when it was there.
func withoutOfflineAccess(scopes []string) []string {
	if !slices.Contains(scopes, scopeOfflineAccess) {
		return scopes
	}
	return slices.DeleteFunc(slices.Clone(scopes), isOfflineAccess)
}
