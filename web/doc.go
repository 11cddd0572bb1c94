// Package web holds the embedded templates and CSS of the pages a person
// sees (login, consent, account, error) and typed functions that render
// them with the security headers every page carries.
//
// It knows nothing of OAuth or storage: callers pass plain data.
package web
