package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Renderer renders the login, consent, account and error pages. Templates
// are parsed once by New; a broken or missing template makes New fail.
type Renderer struct {
	basePath string
	login    *template.Template
	consent  *template.Template
	account  *template.Template
	errPage  *template.Template
}

// LoginData is what the login page shows.
type LoginData struct {
	Action     string // password form action URL
	CSRFToken  string // hidden field csrf_token
	RequestID  string // hidden field request_id: the pending authorization, "" for the account page
	ClientName string // the application asking; "" when signing in to the account page
	Username   string // prefilled after a failed attempt
	Error      string // shown above the form
	Notice     string // what just happened, such as signing out
	Password   bool   // offer the user name and password form
	Passkey    *PasskeyLogin
	// PasskeyOff says, when Passkey is nil, why this server offers no
	// passkey sign-in (its address is not one browsers allow them on).
	PasskeyOff string
	Links      []LoginLink
}

// PasskeyLogin is the "Sign in with a passkey" form of the login page; nil
// hides it. Its script (static/passkey.js) asks BeginURL for the options,
// lets the browser's authenticator sign, and posts the form to Action.
type PasskeyLogin struct {
	Action   string
	BeginURL string
}

// LoginLink is a way to sign in that the login page offers as a link
// button, such as an upstream identity provider.
type LoginLink struct {
	Label string // e.g. "Sign in with GitHub"
	Href  string // absolute URL on this server
}

// AccountData is what the account page shows to the signed-in user.
type AccountData struct {
	User   string
	Action string // URL every account form posts to
	Notice string // what the last action did, shown at the top
	Error  string // why the last action failed

	Apps   []AccountApp
	Revoke Form // the revoke form of every app row

	Passkeys AccountPasskeys

	// Password is the password change form; nil hides it (password login
	// off, or a user without a password).
	Password *Form

	SignOut Form
	// SignOutEverywhere ends every session of the user (action
	// signout-all), for a user with no password to change.
	SignOutEverywhere Form
}

// AccountPasskeys is the passkeys section of the account page.
type AccountPasskeys struct {
	// Unavailable says why this server cannot offer passkeys (its address
	// is not a secure context); "" when it can.
	Unavailable string
	List        []AccountPasskey
	Add         Form   // the form that adds one (its script begins at BeginURL)
	BeginURL    string // where the add form's script gets its options
	Rename      Form
	Remove      Form
	Full        bool // the user has as many passkeys as an account may
	// SignInAgain replaces the add form when the session signed in too
	// long ago to add a passkey: a button (action reauth) that signs out
	// so the user signs in afresh. nil offers the add form.
	SignInAgain *Form
}

// AccountPasskey is one passkey of the user.
type AccountPasskey struct {
	ID         string // base64url credential ID
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used
	Synced     bool      // backed up: a synced passkey
}

// AccountApp is one row of connected apps: an application that holds a
// live grant of the user or a remembered consent.
type AccountApp struct {
	ClientID     string
	Name         string
	Registration string // metadata, dynamic or static
	MetadataHost string // host of the client metadata document, for metadata
	Scopes       []string
	AllowedAt    time.Time
	LastUsedAt   time.Time // zero: no token yet
	Remembered   bool      // a remembered consent skips the consent page
}

// Form is one state-changing form of a page: its CSRF token, bound to the
// browser and to what the form does.
type Form struct {
	CSRFToken string
}

// ScopeChoice is one requested scope on the consent page.
type ScopeChoice struct {
	Name        string // e.g. notes:read; the checkbox value of field "scope"
	Description string // plain words
	Checked     bool
	Required    bool // cannot be unchecked
}

// ConsentData is what the consent page shows.
type ConsentData struct {
	Action       string
	CSRFToken    string
	RequestID    string
	User         string
	ClientName   string
	ClientID     string // shown in small print, so two clients of one name can be told apart
	ClientSource string // dynamic, metadata or static
	// ClientOrigin is, for a client known by its metadata document, the
	// https origin the document was fetched from (https://vscode.dev):
	// what vouches for the name shown.
	ClientOrigin string
	RedirectHost string
	// RedirectLoopback is true when the browser goes back to this
	// computer (127.0.0.1, [::1], localhost), where any program could be
	// listening: the page warns when the name is otherwise verified.
	RedirectLoopback bool
	Scopes           []ScopeChoice
	RememberDays     int
	// OfflineAccessDays is not 0 when the client asked for offline_access:
	// the page then says that it stays connected, for at most this long.
	OfflineAccessDays int
}

// HasOptional reports whether any requested scope may be unchecked.
func (d ConsentData) HasOptional() bool {
	for _, s := range d.Scopes {
		if !s.Required {
			return true
		}
	}
	return false
}

// ErrorData is what an error page shows.
type ErrorData struct {
	Title   string
	Message string // what went wrong, in plain words
	Hint    string // optional: what to do about it
	Command string // optional: a command line the hint refers to
}

// Option configures a Renderer.
type Option func(*options)

type options struct {
	basePath string
}

// WithBasePath makes pages load their static files from basePath +
// "/static/": the path of the issuer, e.g. "/mcpd" for
// https://host/mcpd, so that pages work behind a reverse proxy that
// serves mcpd under that path. The default is "" (the root).
func WithBasePath(basePath string) Option {
	return func(o *options) { o.basePath = strings.TrimSuffix(basePath, "/") }
}

// New parses the embedded templates.
func New(opts ...Option) (*Renderer, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return newRenderer(templateFS, o)
}

// newRenderer parses the templates in fsys, which holds templates/*.html.
// Tests pass a broken file system to prove that New fails loudly.
func newRenderer(fsys fs.FS, o options) (*Renderer, error) {
	funcs := templateFuncs()
	// static is the URL path of an embedded static file.
	funcs["static"] = func(name string) string { return o.basePath + "/static/" + name }
	parse := func(name string) (*template.Template, error) {
		t, err := template.New(name).Option("missingkey=error").Funcs(funcs).ParseFS(fsys, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", name, err)
		}
		return t, nil
	}
	r := Renderer{basePath: o.basePath}
	var err error
	if r.login, err = parse("login.html"); err != nil {
		return nil, err
	}
	if r.consent, err = parse("consent.html"); err != nil {
		return nil, err
	}
	if r.account, err = parse("account.html"); err != nil {
		return nil, err
	}
	if r.errPage, err = parse("error.html"); err != nil {
		return nil, err
	}
	// html/template escapes, and so finds context errors and undefined
	// templates, on first execution: do it now, so that a broken page fails
	// start-up instead of the first person who opens it.
	for _, dry := range []struct {
		t    *template.Template
		data any
	}{{r.login, LoginData{}}, {r.consent, ConsentData{}}, {r.account, AccountData{}}, {r.errPage, ErrorData{}}} {
		if err := dry.t.ExecuteTemplate(io.Discard, "layout", dry.data); err != nil {
			return nil, fmt.Errorf("web: execute %s: %w", dry.t.Name(), err)
		}
	}
	return &r, nil
}

// templateFuncs are the functions the templates may call.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"date":     formatDate,
		"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	}
}

// formatDate is how a page shows a time: in UTC, to the minute, or
// "never" for the zero time.
func formatDate(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// BasePath is the path WithBasePath set, "" for the root.
func (r *Renderer) BasePath() string { return r.basePath }

// ContentSecurityPolicy is the policy every page carries: nothing but the
// stylesheet from this origin, no script at all, no framing.
//
// It deliberately has no form-action directive. After Allow or Deny the
// server answers the form POST with a redirect to the client's redirect
// URI, which may be http://127.0.0.1:PORT, https://… or a custom scheme
// such as vscode:// or cursor://. Browsers apply form-action to every hop
// of that redirect chain, and the login POST can redirect straight to the
// client too when a remembered consent skips the page, so any form-action
// narrower than "anything" would break some client. form-action does not
// fall back to default-src, so leaving it out means "unrestricted"; the
// forms' targets come from the server, never from the request.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"

// ScriptContentSecurityPolicy is the policy of the pages that run the
// passkey script (login, account): ContentSecurityPolicy plus scripts and
// requests to this origin only, still no inline code.
const ScriptContentSecurityPolicy = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"

// SecurityHeaders sets the headers every page carries: no framing, no
// script, no referrer, no caching.
func SecurityHeaders(h http.Header) {
	securityHeaders(h, ContentSecurityPolicy)
}

func securityHeaders(h http.Header, csp string) {
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// Login renders the login page with the given status.
func (r *Renderer) Login(w http.ResponseWriter, status int, d LoginData) {
	r.render(w, status, r.login, ScriptContentSecurityPolicy, d)
}

// Consent renders the consent page.
func (r *Renderer) Consent(w http.ResponseWriter, d ConsentData) {
	r.render(w, http.StatusOK, r.consent, ContentSecurityPolicy, d)
}

// Account renders the account page with the given status.
func (r *Renderer) Account(w http.ResponseWriter, status int, d AccountData) {
	r.render(w, status, r.account, ScriptContentSecurityPolicy, d)
}

// Error renders an error page with the given status. It never redirects.
func (r *Renderer) Error(w http.ResponseWriter, status int, d ErrorData) {
	r.render(w, status, r.errPage, ContentSecurityPolicy, d)
}

// StaticHandler serves the embedded CSS and the passkey script under
// /static/ (the path mcpd receives, whatever WithBasePath says).
func (r *Renderer) StaticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if strings.HasSuffix(req.URL.Path, "/") {
			http.NotFound(w, req) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, req)
	})
}

func (r *Renderer) render(w http.ResponseWriter, status int, t *template.Template, csp string, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		SecurityHeaders(w.Header())
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header(), csp)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	page := buf.Bytes()
	if !utf8.Valid(page) {
		// A value from the request (a user name typed into the login
		// form) may hold bytes that are not UTF-8; html/template escapes
		// markup, not encodings. The page says it is UTF-8, so it is.
		page = bytes.ToValidUTF8(page, []byte("\uFFFD"))
	}
	w.Write(page)
}
