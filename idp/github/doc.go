// Package github is mcpd's connector to GitHub (github.com or GitHub
// Enterprise Server): the OAuth authorization-code flow with state and
// PKCE, then the user, emails and organisations APIs for who signed in.
// The email is the primary address, and counts as verified only when
// GitHub says it is; organisations are read only when asked for (an
// allow-list needs them, and the read:org scope).
//
// Base URLs are configurable, so tests point them at a local stand-in. It
// keeps no state between calls and never logs a token or secret.
package github
