package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Renderer renders the login, consent and error pages. Templates are parsed
// once by New; a broken or missing template makes New fail.
type Renderer struct {
	login   *template.Template
	consent *template.Template
	errPage *template.Template
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
	ClientSource string // dynamic, metadata or static
	ClientHost   string // host of the client metadata document URL, if any
	RedirectHost string
	Scopes       []ScopeChoice
	RememberDays int
}

// ErrorData is what an error page shows.
type ErrorData struct {
	Title   string
	Message string
}

// New parses the embedded templates.
func New() (*Renderer, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", name, err)
		}
		return t, nil
	}
	var r Renderer
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
	return &r, nil
}

// SecurityHeaders sets the headers every page carries: no framing, no
// inline script, no referrer, no caching.
func SecurityHeaders(h http.Header) {
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'")
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

// StaticHandler serves the embedded CSS under /static/.
func (r *Renderer) StaticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
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
	w.Write(buf.Bytes())
}
