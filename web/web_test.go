package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

func newTestRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := New()
	if err != nil {
		t.Fatalf("New() = %v; want the embedded templates to parse", err)
	}
	return r
}

func sampleConsent() ConsentData {
	return ConsentData{
		Action:       "/authorize/consent",
		CSRFToken:    "csrf-consent-123",
		RequestID:    "req-456",
		User:         "alice",
		ClientName:   "Visual Studio Code",
		ClientID:     "0b9e7c1a",
		ClientSource: "dynamic",
		RedirectHost: "127.0.0.1:33418",
		RememberDays: 30,
		Scopes: []ScopeChoice{
			{Name: "notes:read", Description: "Read your notes", Checked: true, Required: true},
			{Name: "notes:write", Description: "Create, change and delete your notes", Checked: true},
			{Name: "api:call", Description: "Call upstream APIs on your behalf"},
		},
	}
}

func sampleLogin() LoginData {
	return LoginData{
		Action:     "/login",
		CSRFToken:  "csrf-login-123",
		RequestID:  "req-456",
		ClientName: "Claude Code",
		Username:   "bob",
		Error:      "Wrong user name or password.",
		Password:   true,
		Links:      []LoginLink{{Label: "Sign in with Example", Href: "https://mcpd.example/login/idp/example?request_id=req-456"}},
	}
}

func sampleAccount() AccountData {
	allowed := time.Date(2026, 7, 1, 9, 30, 0, 0, time.UTC)
	return AccountData{
		User:   "alice",
		Action: "/account",
		Notice: "The application is disconnected.",
		Apps: []AccountApp{
			{ClientID: "c-vscode", Name: "Visual Studio Code", Registration: "metadata", MetadataHost: "vscode.dev",
				Scopes: []string{"Read your notes", "Create, change and delete your notes"}, AllowedAt: allowed, LastUsedAt: allowed.Add(time.Hour)},
			{ClientID: "c-inspector", Name: "", Registration: "dynamic", AllowedAt: allowed, Remembered: true},
		},
		Revoke: Form{CSRFToken: "csrf-revoke-1"},
		Passkeys: AccountPasskeys{
			List: []AccountPasskey{
				{ID: "cred-laptop", Name: "Laptop", CreatedAt: allowed, LastUsedAt: allowed.Add(2 * time.Hour)},
				{ID: "cred-phone", Name: "Phone", CreatedAt: allowed, Synced: true},
			},
			Add: Form{CSRFToken: "csrf-passkey-add"}, BeginURL: "/account/passkeys/begin",
			Rename: Form{CSRFToken: "csrf-passkey-rename"}, Remove: Form{CSRFToken: "csrf-passkey-remove"},
		},
		Password: &Form{CSRFToken: "csrf-password-1"},
		SignOut:  Form{CSRFToken: "csrf-signout-1"},

		SignOutEverywhere: Form{CSRFToken: "csrf-signout-all-1"},
	}
}

func sampleError() ErrorData {
	return ErrorData{Title: "Unknown application", Message: "No application with this client ID is registered here."}
}

// page is one rendered page: the recorder and the parsed document.
type page struct {
	resp *httptest.ResponseRecorder
	doc  *html.Node
}

func render(t *testing.T, do func(w http.ResponseWriter)) page {
	t.Helper()
	w := httptest.NewRecorder()
	do(w)
	doc, err := html.Parse(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("html.Parse: %v", err)
	}
	return page{resp: w, doc: doc}
}

// allPages renders each page with representative data.
func allPages(t *testing.T, r *Renderer) map[string]page {
	return map[string]page{
		"login":   render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, sampleLogin()) }),
		"consent": render(t, func(w http.ResponseWriter) { r.Consent(w, sampleConsent()) }),
		"account": render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, sampleAccount()) }),
		"error":   render(t, func(w http.ResponseWriter) { r.Error(w, http.StatusBadRequest, sampleError()) }),
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// match selects elements by tag and by attribute values; a value of "*"
// only requires the attribute to be present.
func match(tag atom.Atom, kv ...string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		if n.Type != html.ElementNode || (tag != 0 && n.DataAtom != tag) {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v, ok := attr(n, kv[i])
			if !ok || (kv[i+1] != "*" && v != kv[i+1]) {
				return false
			}
		}
		return true
	}
}

func findAll(n *html.Node, pred func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if pred(d) {
			out = append(out, d)
		}
	}
	return out
}

func findOne(t *testing.T, n *html.Node, what string, pred func(*html.Node) bool) *html.Node {
	t.Helper()
	got := findAll(n, pred)
	if len(got) != 1 {
		t.Fatalf("found %d of %s; want exactly 1", len(got), what)
	}
	return got[0]
}

// text is the visible text of n with runs of white space folded.
func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
			b.WriteByte(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// submitted lists the values of field name that a browser would submit
// from form, following HTML's rules: disabled controls and unchecked
// checkboxes are not submitted.
func submitted(form *html.Node, name string) []string {
	var out []string
	for _, in := range findAll(form, match(atom.Input, "name", name)) {
		if _, disabled := attr(in, "disabled"); disabled {
			continue
		}
		typ, _ := attr(in, "type")
		if _, checked := attr(in, "checked"); (typ == "checkbox" || typ == "radio") && !checked {
			continue
		}
		v, _ := attr(in, "value")
		out = append(out, v)
	}
	return out
}

func TestNew(t *testing.T) {
	good := func() fstest.MapFS {
		m := fstest.MapFS{}
		err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(templateFS, path)
			m[path] = &fstest.MapFile{Data: b}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name    string
		change  func(fstest.MapFS)
		wantErr string
	}{
		{"the embedded templates parse", func(fstest.MapFS) {}, ""},
		{"an unclosed action fails start-up", func(m fstest.MapFS) {
			m["templates/login.html"] = &fstest.MapFile{Data: []byte(`{{define "title"}}x{{end}}{{define "content"}}{{.Username{{end}}`)}
		}, "parse login.html"},
		{"a missing page template fails start-up", func(m fstest.MapFS) {
			delete(m, "templates/consent.html")
		}, "parse consent.html"},
		{"a missing layout fails start-up", func(m fstest.MapFS) {
			delete(m, "templates/layout.html")
		}, "parse login.html"},
		{"a reference to an undefined template fails start-up", func(m fstest.MapFS) {
			m["templates/error.html"] = &fstest.MapFile{Data: []byte(`{{define "title"}}x{{end}}{{define "content"}}{{template "nowhere" .}}{{end}}`)}
		}, "execute error.html"},
		{"a field the data does not have fails start-up", func(m fstest.MapFS) {
			m["templates/error.html"] = &fstest.MapFile{Data: []byte(`{{define "title"}}x{{end}}{{define "content"}}{{.NoSuchField}}{{end}}`)}
		}, "execute error.html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := good()
			tt.change(fsys)
			r, err := newRenderer(fsys, options{})
			if tt.wantErr == "" {
				if err != nil || r == nil {
					t.Fatalf("newRenderer() = %v, %v; want a renderer", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("newRenderer() error = %v; want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoginPage(t *testing.T) {
	r := newTestRenderer(t)
	p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusUnauthorized, sampleLogin()) })
	if p.resp.Code != http.StatusUnauthorized {
		t.Errorf("status = %d; want %d", p.resp.Code, http.StatusUnauthorized)
	}
	if got, want := p.resp.Header().Get("Content-Type"), "text/html; charset=utf-8"; got != want {
		t.Errorf("Content-Type = %q; want %q", got, want)
	}
	form := findOne(t, p.doc, "form", match(atom.Form))
	got := map[string]string{}
	for _, k := range []string{"method", "action"} {
		got[k], _ = attr(form, k)
	}
	for _, name := range []string{"csrf_token", "request_id", "username"} {
		in := findOne(t, form, "input "+name, match(atom.Input, "name", name))
		got[name], _ = attr(in, "value")
	}
	pw := findOne(t, form, "input password", match(atom.Input, "name", "password"))
	got["password type"], _ = attr(pw, "type")
	if _, ok := attr(pw, "value"); ok {
		t.Error("the password field carries a value; a password must never be echoed back")
	}
	findOne(t, form, "submit button", match(atom.Button, "type", "submit"))
	got["alert"] = text(findOne(t, p.doc, "alert", match(0, "role", "alert")))
	want := map[string]string{
		"method":        "post",
		"action":        "/login",
		"csrf_token":    "csrf-login-123",
		"request_id":    "req-456",
		"username":      "bob",
		"password type": "password",
		"alert":         "Wrong user name or password.",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("login form (-want +got):\n%s", diff)
	}
	if !strings.Contains(text(p.doc), "Claude Code wants to connect") {
		t.Errorf("page text %q does not name the client", text(p.doc))
	}
	t.Run("the password field has focus after a failed attempt for a known user name", func(t *testing.T) {
		if _, ok := attr(pw, "autofocus"); !ok {
			t.Error("password input has no autofocus")
		}
	})
	t.Run("the user name field has focus on a fresh form", func(t *testing.T) {
		p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, LoginData{Action: "/login", Password: true}) })
		in := findOne(t, p.doc, "input username", match(atom.Input, "name", "username"))
		if _, ok := attr(in, "autofocus"); !ok {
			t.Error("username input has no autofocus")
		}
		if got := findAll(p.doc, match(0, "role", "alert")); len(got) != 0 {
			t.Errorf("a fresh form shows %d alerts; want none", len(got))
		}
	})
}

func TestLoginPageMethods(t *testing.T) {
	r := newTestRenderer(t)
	t.Run("each extra method is a link button with its address", func(t *testing.T) {
		p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, sampleLogin()) })
		a := findOne(t, p.doc, "link", match(atom.A, "class", "button"))
		href, _ := attr(a, "href")
		if got := [2]string{text(a), href}; got != [2]string{"Sign in with Example", "https://mcpd.example/login/idp/example?request_id=req-456"} {
			t.Errorf("link = %q; want the label and the address given", got)
		}
	})
	t.Run("without password login there is no password form", func(t *testing.T) {
		d := sampleLogin()
		d.Password = false
		p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, d) })
		if got := findAll(p.doc, match(atom.Input, "name", "password")); len(got) != 0 {
			t.Errorf("found %d password inputs; want none", len(got))
		}
		if got := findAll(p.doc, match(atom.Input, "name", "username")); len(got) != 0 {
			t.Errorf("found %d user name inputs; want none", len(got))
		}
	})
	t.Run("a page with no way to sign in says so", func(t *testing.T) {
		p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, LoginData{}) })
		if got := text(findOne(t, p.doc, "alert", match(0, "role", "alert"))); !strings.Contains(got, "no way to sign in") {
			t.Errorf("alert %q; want it to say there is no way to sign in", got)
		}
	})
}

// formOf returns the form element n is in.
func formOf(t *testing.T, n *html.Node) *html.Node {
	t.Helper()
	for f := n.Parent; f != nil; f = f.Parent {
		if f.DataAtom == atom.Form {
			return f
		}
	}
	t.Fatal("element is in no form")
	return nil
}

func TestAccountPageApps(t *testing.T) {
	r := newTestRenderer(t)
	p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, sampleAccount()) })
	buttons := findAll(p.doc, match(atom.Button, "name", "action", "value", "revoke"))
	if len(buttons) != 2 {
		t.Fatalf("found %d revoke buttons; want one per app (2)", len(buttons))
	}
	for i, want := range []string{"c-vscode", "c-inspector"} {
		t.Run("the revoke form of row "+want+" carries its client_id and the CSRF token", func(t *testing.T) {
			form := formOf(t, buttons[i])
			got := map[string]string{}
			got["method"], _ = attr(form, "method")
			got["action"], _ = attr(form, "action")
			got["client_id"], _ = attr(findOne(t, form, "client_id", match(atom.Input, "name", "client_id")), "value")
			got["csrf_token"], _ = attr(findOne(t, form, "csrf_token", match(atom.Input, "name", "csrf_token")), "value")
			wantForm := map[string]string{"method": "post", "action": "/account", "client_id": want, "csrf_token": "csrf-revoke-1"}
			if diff := cmp.Diff(wantForm, got); diff != "" {
				t.Errorf("revoke form (-want +got):\n%s", diff)
			}
		})
	}
	rows := findAll(p.doc, match(atom.Li, "class", "app"))
	t.Run("a row names the client, how it is known, its scopes and its times", func(t *testing.T) {
		got := text(rows[0])
		for _, want := range []string{"Visual Studio Code", "client metadata document at vscode.dev", "Read your notes; Create, change and delete your notes", "1 Jul 2026, 09:30 UTC", "1 Jul 2026, 10:30 UTC"} {
			if !strings.Contains(got, want) {
				t.Errorf("row %q lacks %q", got, want)
			}
		}
	})
	t.Run("an unnamed dynamic client is called so, never used, and marked remembered", func(t *testing.T) {
		got := text(rows[1])
		for _, want := range []string{"An unnamed application", "Registered itself", "not verified", "remembered", "Last used never"} {
			if !strings.Contains(got, want) {
				t.Errorf("row %q lacks %q", got, want)
			}
		}
	})
	t.Run("no apps says so", func(t *testing.T) {
		d := sampleAccount()
		d.Apps = nil
		p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, d) })
		if !strings.Contains(text(p.doc), "No application can act for you") {
			t.Errorf("empty list not explained: %q", text(p.doc))
		}
	})
}

// fields returns the name=value pairs of the inputs of form.
func fields(form *html.Node) map[string]string {
	out := map[string]string{}
	for _, in := range findAll(form, match(atom.Input)) {
		n, _ := attr(in, "name")
		v, _ := attr(in, "value")
		out[n] = v
	}
	return out
}

func TestAccountPagePasskeys(t *testing.T) {
	r := newTestRenderer(t)
	p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, sampleAccount()) })
	t.Run("each passkey has a rename and a remove form naming it", func(t *testing.T) {
		renames := findAll(p.doc, match(atom.Button, "name", "action", "value", "passkey-rename"))
		removes := findAll(p.doc, match(atom.Button, "name", "action", "value", "passkey-remove"))
		if len(renames) != 2 || len(removes) != 2 {
			t.Fatalf("found %d rename and %d remove buttons; want 2 each", len(renames), len(removes))
		}
		got := []map[string]string{fields(formOf(t, renames[0])), fields(formOf(t, removes[1]))}
		want := []map[string]string{
			{"csrf_token": "csrf-passkey-rename", "passkey_id": "cred-laptop", "name": "Laptop"},
			{"csrf_token": "csrf-passkey-remove", "passkey_id": "cred-phone"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("passkey forms (-want +got):\n%s", diff)
		}
	})
	t.Run("a passkey shows when it was added and last used", func(t *testing.T) {
		got := text(findAll(p.doc, match(atom.Li, "class", "passkey"))[0])
		for _, want := range []string{"Laptop", "Added 1 Jul 2026, 09:30 UTC", "Last used 1 Jul 2026, 11:30 UTC"} {
			if !strings.Contains(got, want) {
				t.Errorf("passkey row %q lacks %q", got, want)
			}
		}
	})
	t.Run("the add form is run by the script and posts the ceremony", func(t *testing.T) {
		form := findOne(t, p.doc, "add form", match(atom.Form, "data-passkey", "register"))
		begin, _ := attr(form, "data-begin")
		got := fields(form)
		want := map[string]string{"csrf_token": "csrf-passkey-add", "action": "passkey-add", "ceremony": "", "credential": "", "name": "Passkey"}
		if diff := cmp.Diff(want, got); diff != "" || begin != "/account/passkeys/begin" {
			t.Errorf("add form begins at %q (-want +got):\n%s", begin, diff)
		}
	})
	t.Run("a session that signed in too long ago gets a sign-in-again button instead of the add form", func(t *testing.T) {
		d := sampleAccount()
		d.Passkeys.SignInAgain = &Form{CSRFToken: "csrf-reauth"}
		p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, d) })
		if got := findAll(p.doc, match(atom.Form, "data-passkey", "register")); len(got) != 0 {
			t.Errorf("found %d add forms; want none", len(got))
		}
		button := findOne(t, p.doc, "sign-in-again button", match(atom.Button, "name", "action", "value", "reauth"))
		if diff := cmp.Diff(map[string]string{"csrf_token": "csrf-reauth"}, fields(formOf(t, button))); diff != "" {
			t.Errorf("sign-in-again form (-want +got):\n%s", diff)
		}
	})
	t.Run("where passkeys cannot work the page says why and offers no add form", func(t *testing.T) {
		d := sampleAccount()
		d.Passkeys.Unavailable = "Passkeys need a secure connection."
		p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, d) })
		if got := findAll(p.doc, match(atom.Form, "data-passkey", "*")); len(got) != 0 {
			t.Errorf("found %d passkey script forms; want none", len(got))
		}
		if !strings.Contains(text(p.doc), "Passkeys need a secure connection.") {
			t.Error("the reason is not shown")
		}
	})
}

func TestLoginPagePasskey(t *testing.T) {
	r := newTestRenderer(t)
	d := sampleLogin()
	d.Passkey = &PasskeyLogin{Action: "/login/passkey", BeginURL: "/login/passkey/begin"}
	p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, d) })
	form := findOne(t, p.doc, "passkey form", match(atom.Form, "data-passkey", "login"))
	action, _ := attr(form, "action")
	begin, _ := attr(form, "data-begin")
	got := fields(form)
	got["action attribute"], got["begin"] = action, begin
	want := map[string]string{"csrf_token": "csrf-login-123", "request_id": "req-456", "ceremony": "", "credential": "", "action attribute": "/login/passkey", "begin": "/login/passkey/begin"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("passkey form (-want +got):\n%s", diff)
	}
	if !strings.Contains(text(form), "Sign in with a passkey") {
		t.Errorf("button text %q", text(form))
	}
	t.Run("the password form stays the first form, so clients that post the first form keep working", func(t *testing.T) {
		forms := findAll(p.doc, match(atom.Form))
		if len(findAll(forms[0], match(atom.Input, "name", "password"))) != 1 {
			t.Error("the first form is not the password form")
		}
	})
	t.Run("without passkeys the page says why, and offers no passkey form", func(t *testing.T) {
		d := sampleLogin()
		d.PasskeyOff = "Passkeys need this server to be reached by a host name."
		p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, d) })
		if got := findAll(p.doc, match(atom.Form, "data-passkey", "*")); len(got) != 0 {
			t.Errorf("found %d passkey forms; want none", len(got))
		}
		note := findOne(t, p.doc, "the reason", match(0, "id", "passkey-off"))
		if !strings.Contains(text(note), "reached by a host name") {
			t.Errorf("note %q; want the reason", text(note))
		}
	})
	t.Run("passkey sign-in alone is a way in", func(t *testing.T) {
		d := LoginData{Passkey: &PasskeyLogin{Action: "/login/passkey", BeginURL: "/b"}}
		p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, d) })
		if got := findAll(p.doc, match(0, "role", "alert")); len(got) != 0 {
			t.Errorf("found %d alerts; want none", len(got))
		}
	})
}

func TestAccountPagePassword(t *testing.T) {
	r := newTestRenderer(t)
	p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, sampleAccount()) })
	form := formOf(t, findOne(t, p.doc, "change button", match(atom.Button, "name", "action", "value", "password")))
	for _, name := range []string{"current_password", "new_password", "new_password_again"} {
		in := findOne(t, form, name, match(atom.Input, "name", name))
		if typ, _ := attr(in, "type"); typ != "password" {
			t.Errorf("%s type %q; want password", name, typ)
		}
	}
	if got, _ := attr(findOne(t, form, "csrf_token", match(atom.Input, "name", "csrf_token")), "value"); got != "csrf-password-1" {
		t.Errorf("csrf_token %q; want csrf-password-1", got)
	}
	t.Run("no password form when there is none to change", func(t *testing.T) {
		d := sampleAccount()
		d.Password = nil
		p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, d) })
		if got := findAll(p.doc, match(atom.Input, "type", "password")); len(got) != 0 {
			t.Errorf("found %d password inputs; want none", len(got))
		}
	})
}

func TestAccountPageSignOut(t *testing.T) {
	r := newTestRenderer(t)
	p := render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, sampleAccount()) })
	btn := findOne(t, p.doc, "sign-out button", match(atom.Button, "name", "action", "value", "signout"))
	form := btn.Parent
	for form != nil && form.DataAtom != atom.Form {
		form = form.Parent
	}
	if form == nil {
		t.Fatal("the sign-out button is in no form")
	}
	got := map[string]string{}
	got["method"], _ = attr(form, "method")
	got["action"], _ = attr(form, "action")
	got["csrf_token"], _ = attr(findOne(t, form, "csrf_token", match(atom.Input, "name", "csrf_token")), "value")
	want := map[string]string{"method": "post", "action": "/account", "csrf_token": "csrf-signout-1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sign-out form (-want +got):\n%s", diff)
	}
	if !strings.Contains(text(p.doc), "Signed in as alice") {
		t.Errorf("page does not name the user: %q", text(p.doc))
	}
	all := findOne(t, p.doc, "sign-out-everywhere button", match(atom.Button, "name", "action", "value", "signout-all"))
	if diff := cmp.Diff(map[string]string{"csrf_token": "csrf-signout-all-1"}, fields(formOf(t, all))); diff != "" {
		t.Errorf("sign-out-everywhere form (-want +got):\n%s", diff)
	}
}

func TestConsentPage(t *testing.T) {
	r := newTestRenderer(t)
	p := render(t, func(w http.ResponseWriter) { r.Consent(w, sampleConsent()) })
	if p.resp.Code != http.StatusOK {
		t.Errorf("status = %d; want 200", p.resp.Code)
	}
	form := findOne(t, p.doc, "form", match(atom.Form))
	got := map[string]string{}
	got["method"], _ = attr(form, "method")
	got["action"], _ = attr(form, "action")
	for _, name := range []string{"csrf_token", "request_id"} {
		got[name], _ = attr(findOne(t, form, "input "+name, match(atom.Input, "name", name, "type", "hidden")), "value")
	}
	got["h1"] = text(findOne(t, p.doc, "h1", match(atom.H1)))
	got["redirect host"] = text(findOne(t, p.doc, "redirect host", func(n *html.Node) bool {
		c, _ := attr(n, "class")
		return n.Type == html.ElementNode && strings.Contains(c, "redirect-host")
	}))
	got["allow"] = text(findOne(t, form, "allow button", match(atom.Button, "name", "action", "value", "allow")))
	got["deny"] = text(findOne(t, form, "deny button", match(atom.Button, "name", "action", "value", "deny")))
	remember := findOne(t, form, "remember checkbox", match(atom.Input, "name", "remember", "type", "checkbox"))
	id, _ := attr(remember, "id")
	got["remember label"] = text(findOne(t, form, "remember label", match(atom.Label, "for", id)))
	var scopeLabels []string
	for _, l := range findAll(form, match(atom.Label)) {
		if f, _ := attr(l, "for"); strings.HasPrefix(f, "scope-") {
			scopeLabels = append(scopeLabels, text(l))
		}
	}
	got["scope labels"] = strings.Join(scopeLabels, " | ")
	want := map[string]string{
		"method":         "post",
		"action":         "/authorize/consent",
		"csrf_token":     "csrf-consent-123",
		"request_id":     "req-456",
		"h1":             "Allow Visual Studio Code to use your mcpd account?",
		"redirect host":  "127.0.0.1:33418",
		"allow":          "Allow",
		"deny":           "Deny",
		"remember label": "Remember this decision for 30 days",
		"scope labels":   "Read your notes required | Create, change and delete your notes | Call upstream APIs on your behalf",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("consent page (-want +got):\n%s", diff)
	}
	for _, s := range []string{"Signed in as alice", "Client ID 0b9e7c1a", "notes:read", "notes:write", "api:call"} {
		if !strings.Contains(text(p.doc), s) {
			t.Errorf("page text does not contain %q", s)
		}
	}

	t.Run("pressing Enter denies: Deny is the first submit button", func(t *testing.T) {
		buttons := findAll(form, match(atom.Button, "type", "submit"))
		if len(buttons) == 0 {
			t.Fatal("no submit buttons")
		}
		if v, _ := attr(buttons[0], "value"); v != "deny" {
			t.Errorf("first submit button value = %q; want deny", v)
		}
	})
	t.Run("remember is offered only when a duration is configured", func(t *testing.T) {
		d := sampleConsent()
		d.RememberDays = 0
		p := render(t, func(w http.ResponseWriter) { r.Consent(w, d) })
		if got := findAll(p.doc, match(atom.Input, "name", "remember")); len(got) != 0 {
			t.Errorf("found %d remember inputs; want none", len(got))
		}
	})
	t.Run("a client without a name is called unnamed, not left blank", func(t *testing.T) {
		d := sampleConsent()
		d.ClientName = ""
		p := render(t, func(w http.ResponseWriter) { r.Consent(w, d) })
		if got, want := text(findOne(t, p.doc, "h1", match(atom.H1))), "Allow an unnamed application to use your mcpd account?"; got != want {
			t.Errorf("h1 = %q; want %q", got, want)
		}
	})
}

func TestConsentPageSaysHowTheClientIsKnown(t *testing.T) {
	r := newTestRenderer(t)
	tests := []struct {
		name, source, host string
		want               string
		wantClass          string
	}{
		{"a dynamically registered client is marked as not verified", "dynamic", "", "dynamically registered, not verified", "source-dynamic"},
		{"a metadata-document client shows its verified https origin", "metadata", "https://vscode.dev", "verified by its https origin, https://vscode.dev", "source-metadata"},
		{"a static client is configured by the operator", "static", "", "configured by the operator", "source-static"},
		{"an unknown source is treated as not verified", "", "", "dynamically registered, not verified", "source-dynamic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sampleConsent()
			d.ClientSource, d.ClientOrigin = tt.source, tt.host
			p := render(t, func(w http.ResponseWriter) { r.Consent(w, d) })
			dd := findOne(t, p.doc, "source", func(n *html.Node) bool {
				c, _ := attr(n, "class")
				return n.DataAtom == atom.Dd && strings.Contains(c, "source ")
			})
			if got := text(dd); !strings.Contains(got, tt.want) {
				t.Errorf("source text = %q; want it to contain %q", got, tt.want)
			}
			if c, _ := attr(dd, "class"); !strings.Contains(c, tt.wantClass) {
				t.Errorf("source class = %q; want %q", c, tt.wantClass)
			}
		})
	}
}

func TestConsentPageSubmitsTheScopesThatStayChecked(t *testing.T) {
	r := newTestRenderer(t)
	tests := []struct {
		name   string
		scopes []ScopeChoice
		want   []string
	}{
		{
			name: "a required scope is submitted although its checkbox is disabled",
			scopes: []ScopeChoice{
				{Name: "notes:read", Description: "Read your notes", Checked: true, Required: true},
			},
			want: []string{"notes:read"},
		},
		{
			name: "checked optional scopes are submitted and unchecked ones are not",
			scopes: []ScopeChoice{
				{Name: "notes:read", Description: "Read your notes", Checked: true, Required: true},
				{Name: "notes:write", Description: "Change your notes", Checked: true},
				{Name: "api:call", Description: "Call upstream APIs"},
			},
			want: []string{"notes:read", "notes:write"},
		},
		{
			name:   "no scopes submits none",
			scopes: nil,
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sampleConsent()
			d.Scopes = tt.scopes
			p := render(t, func(w http.ResponseWriter) { r.Consent(w, d) })
			form := findOne(t, p.doc, "form", match(atom.Form))
			if diff := cmp.Diff(tt.want, submitted(form, "scope")); diff != "" {
				t.Errorf("submitted scopes (-want +got):\n%s", diff)
			}
			for _, in := range findAll(form, match(atom.Input, "type", "checkbox")) {
				id, _ := attr(in, "id")
				if !strings.HasPrefix(id, "scope-") {
					continue
				}
				_, disabled := attr(in, "disabled")
				_, checked := attr(in, "checked")
				if disabled && !checked {
					t.Errorf("checkbox %s is disabled but unchecked; a required scope must show as granted", id)
				}
			}
		})
	}
}

func TestHostileLoginLinkIsEscaped(t *testing.T) {
	r := newTestRenderer(t)
	const evil = `"><script>alert(1)</script>`
	l := sampleLogin()
	l.Links = []LoginLink{{Label: evil, Href: "javascript:alert(1)"}}
	p := render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, l) })
	if got := findAll(p.doc, match(atom.Script)); len(got) != 0 {
		t.Errorf("found %d <script> elements; want none", len(got))
	}
	a := findOne(t, p.doc, "link", match(atom.A))
	if href, _ := attr(a, "href"); strings.HasPrefix(strings.ToLower(href), "javascript:") {
		t.Errorf("link href %q runs script", href)
	}
	if text(a) != evil {
		t.Errorf("link label %q; want the hostile text shown as text", text(a))
	}
}

func TestHostileValuesAreEscaped(t *testing.T) {
	r := newTestRenderer(t)
	const evil = `"><script>alert(1)</script><img src=x onerror=alert(1)><a href="https://evil.example">x</a>`
	d := sampleConsent()
	d.ClientName, d.ClientID, d.RedirectHost, d.ClientOrigin, d.User = evil, evil, evil, evil, evil
	d.ClientSource, d.RedirectLoopback = "metadata", true
	d.Scopes = append(d.Scopes, ScopeChoice{Name: evil, Description: evil})
	l := sampleLogin()
	l.ClientName, l.Username, l.Error, l.Notice, l.Action = evil, evil, evil, evil, "javascript:alert(1)"
	l.Links = nil
	a := sampleAccount()
	a.User, a.Notice, a.Error, a.Action = evil, evil, evil, "javascript:alert(1)"
	a.Apps = []AccountApp{{ClientID: evil, Name: evil, Registration: "metadata", MetadataHost: evil, Scopes: []string{evil}}}
	a.Passkeys = AccountPasskeys{Unavailable: evil, List: []AccountPasskey{{ID: evil, Name: evil}}}
	pages := map[string]page{
		"consent": render(t, func(w http.ResponseWriter) { r.Consent(w, d) }),
		"login":   render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, l) }),
		"account": render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, a) }),
		"error": render(t, func(w http.ResponseWriter) {
			r.Error(w, http.StatusBadRequest, ErrorData{Title: evil, Message: evil, Hint: evil, Command: evil})
		}),
	}
	for name, p := range pages {
		t.Run(name+" page shows a hostile value as text, never as markup", func(t *testing.T) {
			for _, tag := range []atom.Atom{atom.Script, atom.Img, atom.A} {
				if got := findAll(p.doc, match(tag)); len(got) != 0 {
					t.Errorf("found %d <%s> elements; want none", len(got), tag)
				}
			}
			for n := range p.doc.Descendants() {
				for _, a := range n.Attr {
					if strings.HasPrefix(a.Key, "on") {
						t.Errorf("<%s> has event handler attribute %s", n.Data, a.Key)
					}
				}
			}
			body := findOne(t, p.doc, "body", match(atom.Body))
			if !strings.Contains(text(body), "<script>alert(1)</script>") {
				t.Errorf("the hostile value is not shown literally in %q", text(body))
			}
			for _, f := range findAll(p.doc, match(atom.Form)) {
				if a, _ := attr(f, "action"); strings.HasPrefix(a, "javascript:") {
					t.Errorf("form action = %q; want a javascript: URL neutralised", a)
				}
			}
		})
	}
}

func TestPagesAreValidUTF8WhateverTheValues(t *testing.T) {
	r := newTestRenderer(t)
	const broken = "a\xff\xfe\x00b\xed\xa0\x80c\xe2\x82"
	d := sampleConsent()
	d.ClientName, d.ClientID, d.RedirectHost, d.User = broken, broken, broken, broken
	l := sampleLogin()
	l.ClientName, l.Username, l.Error = broken, broken, broken
	pages := map[string]page{
		"consent": render(t, func(w http.ResponseWriter) { r.Consent(w, d) }),
		"login":   render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, l) }),
		"error": render(t, func(w http.ResponseWriter) {
			r.Error(w, http.StatusBadRequest, ErrorData{Title: broken, Message: broken})
		}),
	}
	for name, p := range pages {
		t.Run(name+" page is valid UTF-8 when a value is not", func(t *testing.T) {
			if b := p.resp.Body.Bytes(); !utf8.Valid(b) {
				t.Errorf("the page is not valid UTF-8: %q", b)
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	r := newTestRenderer(t)
	policies := map[string]string{
		"consent": ContentSecurityPolicy,
		"error":   ContentSecurityPolicy,
		"login":   ScriptContentSecurityPolicy, // the passkey script
		"account": ScriptContentSecurityPolicy,
	}
	for name, p := range allPages(t, r) {
		t.Run(name+" page carries every security header", func(t *testing.T) {
			want := map[string]string{
				"X-Frame-Options":         "DENY",
				"Content-Security-Policy": policies[name],
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           "no-store",
				"X-Content-Type-Options":  "nosniff",
			}
			got := map[string]string{}
			for k := range want {
				got[k] = p.resp.Header().Get(k)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}

	directivesOf := func(policy string) map[string]string {
		directives := map[string]string{}
		for _, d := range strings.Split(policy, ";") {
			f := strings.Fields(d)
			if len(f) > 0 {
				directives[f[0]] = strings.Join(f[1:], " ")
			}
		}
		return directives
	}
	common := []struct {
		name, directive, want string
	}{
		{"framing is refused", "frame-ancestors", "'none'"},
		{"nothing loads by default", "default-src", "'none'"},
		{"only the stylesheet from this origin is allowed", "style-src", "'self'"},
		{"no base element can redirect relative URLs", "base-uri", "'none'"},
		// After Allow the form POST is answered with a redirect to the
		// client's loopback, https or custom-scheme redirect URI, and
		// browsers check form-action on every hop of it.
		{"form-action is absent so the redirect to any client scheme is not blocked", "form-action", ""},
	}
	for _, pol := range []struct {
		name, policy string
		extra        []struct{ name, directive, want string }
	}{
		{"page without script", ContentSecurityPolicy, []struct{ name, directive, want string }{
			{"no script source is allowed", "script-src", ""},
			{"no request from script is allowed", "connect-src", ""},
		}},
		{"page with the passkey script", ScriptContentSecurityPolicy, []struct{ name, directive, want string }{
			{"scripts come from this origin only", "script-src", "'self'"},
			{"script requests go to this origin only", "connect-src", "'self'"},
		}},
	} {
		directives := directivesOf(pol.policy)
		for _, rule := range append(common, pol.extra...) {
			t.Run(pol.name+": "+rule.name, func(t *testing.T) {
				if got := directives[rule.directive]; got != rule.want {
					t.Errorf("%s = %q; want %q", rule.directive, got, rule.want)
				}
			})
		}
		t.Run(pol.name+": the CSP never allows inline code", func(t *testing.T) {
			if strings.Contains(pol.policy, "unsafe-") || strings.Contains(pol.policy, "data:;") && strings.Contains(directives["script-src"], "data:") {
				t.Errorf("CSP %q allows inline or data: code", pol.policy)
			}
		})
	}
}

func TestPasskeyScriptOnlyWithPasskeyForms(t *testing.T) {
	r := newTestRenderer(t)
	scripts := func(p page) []string {
		var out []string
		for _, n := range findAll(p.doc, match(atom.Script)) {
			src, _ := attr(n, "src")
			out = append(out, src)
		}
		return out
	}
	withPasskey := sampleLogin()
	withPasskey.Passkey = &PasskeyLogin{Action: "/login/passkey", BeginURL: "/login/passkey/begin"}
	noPasskeys := sampleAccount()
	noPasskeys.Passkeys.Unavailable = "Passkeys need a secure connection."
	for _, tc := range []struct {
		name string
		page page
		want []string
	}{
		{"a login page with passkey sign-in loads the script", render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, withPasskey) }), []string{"/static/passkey.js"}},
		{"a login page without it loads none", render(t, func(w http.ResponseWriter) { r.Login(w, http.StatusOK, sampleLogin()) }), nil},
		{"an account page where passkeys work loads the script", render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, sampleAccount()) }), []string{"/static/passkey.js"}},
		{"an account page where they cannot loads none", render(t, func(w http.ResponseWriter) { r.Account(w, http.StatusOK, noPasskeys) }), nil},
		{"the consent page loads none", render(t, func(w http.ResponseWriter) { r.Consent(w, sampleConsent()) }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, scripts(tc.page)); diff != "" {
				t.Errorf("scripts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPagesFitTheCSPAndAreAccessible checks what the CSP and accessibility
// demand of the markup itself.
func TestPagesFitTheCSPAndAreAccessible(t *testing.T) {
	r := newTestRenderer(t)
	for name, p := range allPages(t, r) {
		t.Run(name+" page has no inline script or style", func(t *testing.T) {
			if got := findAll(p.doc, match(atom.Style)); len(got) != 0 {
				t.Errorf("found %d <style>; the CSP forbids them", len(got))
			}
			for _, sc := range findAll(p.doc, match(atom.Script)) {
				if src, _ := attr(sc, "src"); src != "/static/passkey.js" || sc.FirstChild != nil {
					t.Errorf("found a <script> other than the passkey script from this origin (src %q)", src)
				}
			}
			for n := range p.doc.Descendants() {
				for _, a := range n.Attr {
					if strings.HasPrefix(a.Key, "on") {
						t.Errorf("<%s> has an inline event handler %s", n.Data, a.Key)
					}
				}
			}
			if got := findAll(p.doc, match(0, "style", "*")); len(got) != 0 {
				t.Errorf("found %d style attributes; the CSP forbids them", len(got))
			}
		})
		t.Run(name+" page loads its stylesheet from this origin", func(t *testing.T) {
			links := findAll(p.doc, match(atom.Link, "rel", "stylesheet"))
			if len(links) != 1 {
				t.Fatalf("found %d stylesheets; want 1", len(links))
			}
			if href, _ := attr(links[0], "href"); href != "/static/style.css" {
				t.Errorf("stylesheet href = %q; want /static/style.css", href)
			}
		})
		t.Run(name+" page behind a path prefix loads its stylesheet under the prefix", func(t *testing.T) {
			pr, err := New(WithBasePath("/mcpd"))
			if err != nil {
				t.Fatal(err)
			}
			links := findAll(allPages(t, pr)[name].doc, match(atom.Link, "rel", "stylesheet"))
			if len(links) != 1 {
				t.Fatalf("found %d stylesheets; want 1", len(links))
			}
			if href, _ := attr(links[0], "href"); href != "/mcpd/static/style.css" {
				t.Errorf("stylesheet href = %q; want /mcpd/static/style.css", href)
			}
		})
		t.Run(name+" page declares its language and has a title and one heading", func(t *testing.T) {
			htm := findOne(t, p.doc, "html", match(atom.Html))
			if lang, _ := attr(htm, "lang"); lang != "en" {
				t.Errorf("lang = %q; want en", lang)
			}
			if got := text(findOne(t, p.doc, "title", match(atom.Title))); !strings.HasSuffix(got, "· mcpd") || len(got) < len("x · mcpd") {
				t.Errorf("title = %q; want a page title ending in · mcpd", got)
			}
			findOne(t, p.doc, "h1", match(atom.H1))
		})
		t.Run(name+" page labels every visible control", func(t *testing.T) {
			for _, in := range findAll(p.doc, match(atom.Input)) {
				if typ, _ := attr(in, "type"); typ == "hidden" {
					continue
				}
				if _, hidden := attr(in, "hidden"); hidden {
					continue // e.g. the user name a password manager files a new password under
				}
				id, _ := attr(in, "id")
				if id == "" || len(findAll(p.doc, match(atom.Label, "for", id))) != 1 {
					t.Errorf("input %v has no label of its own", in.Attr)
				}
			}
		})
		t.Run(name+" page keeps the natural focus order", func(t *testing.T) {
			if got := findAll(p.doc, match(0, "tabindex", "*")); len(got) != 0 {
				t.Errorf("found %d tabindex attributes; want the document order", len(got))
			}
		})
	}
}

func TestErrorPageNeverRedirects(t *testing.T) {
	r := newTestRenderer(t)
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusInternalServerError} {
		t.Run(http.StatusText(status)+" keeps its status and sends nowhere", func(t *testing.T) {
			p := render(t, func(w http.ResponseWriter) { r.Error(w, status, sampleError()) })
			if p.resp.Code != status {
				t.Errorf("status = %d; want %d", p.resp.Code, status)
			}
			if loc := p.resp.Header().Get("Location"); loc != "" {
				t.Errorf("Location = %q; want none", loc)
			}
			for _, tag := range []atom.Atom{atom.Meta, atom.A, atom.Form} {
				for _, n := range findAll(p.doc, match(tag)) {
					if eq, _ := attr(n, "http-equiv"); tag != atom.Meta || strings.EqualFold(eq, "refresh") {
						t.Errorf("found <%s %v>; an error page must not send the browser anywhere", n.Data, n.Attr)
					}
				}
			}
			got := []string{text(findOne(t, p.doc, "h1", match(atom.H1))), text(findOne(t, p.doc, "alert", match(0, "role", "alert")))}
			want := []string{"Unknown application", "No application with this client ID is registered here."}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("error page (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorPageHintAndCommand(t *testing.T) {
	r := newTestRenderer(t)
	t.Run("a hint and a command are shown below the message", func(t *testing.T) {
		d := sampleError()
		d.Hint, d.Command = "Switch documents off.", "mcpd serve --client-metadata-documents false"
		p := render(t, func(w http.ResponseWriter) { r.Error(w, http.StatusBadRequest, d) })
		if got := text(findOne(t, p.doc, "hint", match(atom.P, "class", "hint"))); got != d.Hint {
			t.Errorf("hint = %q; want %q", got, d.Hint)
		}
		if got := text(findOne(t, p.doc, "command", match(atom.Code))); got != d.Command {
			t.Errorf("command = %q; want %q", got, d.Command)
		}
	})
	t.Run("without them the page has neither", func(t *testing.T) {
		p := render(t, func(w http.ResponseWriter) { r.Error(w, http.StatusBadRequest, sampleError()) })
		if n := len(findAll(p.doc, match(atom.P, "class", "hint"))) + len(findAll(p.doc, match(atom.Pre))); n != 0 {
			t.Errorf("found %d hint or command elements; want none", n)
		}
	})
}

func TestStaticHandler(t *testing.T) {
	r := newTestRenderer(t)
	h := r.StaticHandler()
	tests := []struct {
		name, path  string
		wantStatus  int
		wantType    string
		wantContent string
	}{
		{"the stylesheet is served as CSS", "/static/style.css", http.StatusOK, "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"an unknown file is not found", "/static/nope.js", http.StatusNotFound, "", ""},
		{"the directory is not listed", "/static/", http.StatusNotFound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != tt.wantStatus {
				t.Fatalf("GET %s = %d; want %d", tt.path, w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q; want nosniff", got)
			}
			if tt.wantType == "" {
				return
			}
			if got := w.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q; want %q", got, tt.wantType)
			}
			if !strings.Contains(w.Body.String(), tt.wantContent) {
				t.Errorf("body does not contain %q", tt.wantContent)
			}
		})
	}
}
