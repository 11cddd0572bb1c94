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
	"unicode/utf8"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Renderer renders the login, consent and error pages. Templates are parsed
// once by New; a broken or missing template makes New fail.
type Renderer struct {
	basePath string
	login    *template.Template
	consent  *template.Template
	errPage  *template.Template
}

// LoginData is what the login page shows.
type LoginData struct {
	Action     string // form action URL
	CSRFToken  string // hidden field csrf_token
	RequestID  string // hidden field request_id: the pending authorization
	ClientName string
	Username   string // prefilled after a failed attempt
	Error      string // shown above the form
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
	funcs := template.FuncMap{
		// static is the URL path of an embedded static file.
		"static": func(name string) string { return o.basePath + "/static/" + name },
	}
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
	if r.errPage, err = parse("error.html"); err != nil {
		return nil, err
	}
	// html/template escapes, and so finds context errors and undefined
	// templates, on first execution: do it now, so that a broken page fails
	// start-up instead of the first person who opens it.
	for _, dry := range []struct {
		t    *template.Template
		data any
	}{{r.login, LoginData{}}, {r.consent, ConsentData{}}, {r.errPage, ErrorData{}}} {
		if err := dry.t.ExecuteTemplate(io.Discard, "layout", dry.data); err != nil {
			return nil, fmt.Errorf("web: execute %s: %w", dry.t.Name(), err)
		}
	}
	return &r, nil
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

// SecurityHeaders sets the headers every page carries: no framing, no
// script, no referrer, no caching.
func SecurityHeaders(h http.Header) {
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// Login renders the login page with the given status.
func (r *Renderer) Login(w http.ResponseWriter, status int, d LoginData) {
	r.render(w, status, r.login, d)
}

// Consent renders the consent page.
func (r *Renderer) Consent(w http.ResponseWriter, d ConsentData) {
	r.render(w, http.StatusOK, r.consent, d)
}

// Error renders an error page with the given status. It never redirects.
func (r *Renderer) Error(w http.ResponseWriter, status int, d ErrorData) {
	r.render(w, status, r.errPage, d)
}

// StaticHandler serves the embedded CSS under /static/ (the path mcpd
// receives, whatever WithBasePath says).
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

func (r *Renderer) render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		SecurityHeaders(w.Header())
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	SecurityHeaders(w.Header())
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
