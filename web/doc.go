// Package web holds the embedded templates and CSS of the pages a person
// sees (login, consent, account, error) and typed functions that render
// them with the security headers every page carries.
//
// The only script, static/passkey.js, runs the WebAuthn calls of the
// login and account pages; those two pages allow scripts from this origin
// (ScriptContentSecurityPolicy), the others none.
//
// It knows nothing of OAuth or storage: callers pass plain data.
package web
