package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileText are the values every text field gets: each must be refused
// or stored safely, never crash the server, never make its output invalid.
var hostileText = []struct{ name, value string }{
	{"NUL", "a\x00b"},
	{"invalid UTF-8", "a\xff\xfeb"},
	{"a surrogate half", "a\xed\xa0\x80b"},
	{"a truncated sequence", "ab\xe2\x82"},
	{"a bidirectional override", "a\u202eb"},
	{"CR LF", "a\r\nSet-Cookie: x=y"},
	{"only NULs", "\x00\x00\x00"},
}

// jsonString quotes v as a JSON string the way a careless client would:
// quotes, backslashes and control characters escaped, bytes that are not
// UTF-8 left raw.
func jsonString(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// checkOutput fails the test when an answer is a 5xx, is not valid UTF-8,
// claims JSON and is not, or carries a header that is not clean.
func checkOutput(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode >= 500 {
		t.Errorf("%s: status %d: %.200q", what, resp.StatusCode, body)
	}
	if !utf8.Valid(body) {
		t.Errorf("%s: the answer is not valid UTF-8: %.300q", what, body)
	}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") && len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		t.Errorf("%s: the answer is not valid JSON: %.300q", what, body)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			if !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n") {
				t.Errorf("%s: header %s: %q", what, k, v)
			}
		}
	}
}

// sseData returns the JSON of the first data line of an event stream, or
// the body itself when it is JSON.
func sseData(body []byte) []byte {
	for _, line := range bytes.Split(body, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			return d
		}
	}
	return body
}

func send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	hc := &http.Client{CheckRedirect: noRedirect}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL.Path, err)
	}
	return resp, b
}

func TestHostileTextInEveryField(t *testing.T) {
	ts := startServer(t, "--registrations-per-minute", "100000")
	token, tokenClient := ccTokenAndClient(t, ts.URL)
	sid := rawMCPSession(t, ts.URL, token)
	pubID, _ := publicClient(t, ts.URL, "hostile")
	reg := registerClient(t, ts.URL, map[string]any{
		"client_name": "hostile cc", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_basic", "scope": "notes:read",
	})
	ccID, ccSecret := reg["client_id"].(string), reg["client_secret"].(string)

	registration := func(field, value string) string {
		base := map[string]string{
			"redirect_uris":              `["http://127.0.0.1/cb"]`,
			"token_endpoint_auth_method": `"none"`,
		}
		switch field {
		case "redirect_uris", "contacts", "grant_types", "response_types":
			base[field] = "[" + jsonString(value) + "]"
		case "redirect_uri suffix":
			base["redirect_uris"] = "[" + jsonString("http://127.0.0.1/cb"+value) + "]"
		default:
			base[field] = jsonString(value)
		}
		var parts []string
		for k, v := range base {
			parts = append(parts, jsonString(k)+":"+v)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	for _, h := range hostileText {
		t.Run(h.name, func(t *testing.T) {
			for _, field := range []string{"client_name", "redirect_uris", "redirect_uri suffix", "client_uri", "logo_uri", "contacts", "scope", "token_endpoint_auth_method", "grant_types", "response_types", "application_type"} {
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/register", strings.NewReader(registration(field, h.value)))
				req.Header.Set("Content-Type", "application/json")
				resp, body := send(t, req)
				checkOutput(t, "register "+field, resp, body)
				// Unknown scopes are dropped (the client gets the default
				// ones); every other field refuses the value.
				if want := http.StatusBadRequest; field != "scope" && resp.StatusCode != want {
					t.Errorf("register with %s %q: status %d; want %d", field, h.value, resp.StatusCode, want)
				}
				if resp.StatusCode != http.StatusCreated {
					continue
				}
				var out map[string]any
				json.Unmarshal(body, &out)
				id, _ := out["client_id"].(string)
				showOut := mustMcpd(t, "", "client", "show", "--json", "--data", ts.Data, "--", id)
				if !utf8.ValidString(showOut) || !json.Valid([]byte(showOut)) {
					t.Errorf("register %s: mcpd client show prints %q", field, showOut)
				}
				req, _ = http.NewRequest(http.MethodGet, ts.URL+"/register/"+url.PathEscape(id), nil)
				req.Header.Set("Authorization", "Bearer "+out["registration_access_token"].(string))
				resp, body = send(t, req)
				checkOutput(t, "read back the registration with "+field, resp, body)
			}

			for _, param := range []string{"client_id", "redirect_uri", "scope", "state", "code_challenge", "resource", "response_type", "code_challenge_method"} {
				q := url.Values{
					"response_type": {"code"}, "client_id": {pubID}, "redirect_uri": {"http://127.0.0.1:5000/callback"},
					"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
				}
				q.Set(param, h.value)
				req, _ := http.NewRequest(http.MethodGet, ts.URL+"/authorize?"+q.Encode(), nil)
				resp, body := send(t, req)
				checkOutput(t, "authorize "+param, resp, body)
			}

			for _, param := range []string{"grant_type", "scope", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id", "resource"} {
				form := url.Values{"grant_type": {"client_credentials"}}
				form.Set(param, h.value)
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(ccID, ccSecret)
				resp, body := send(t, req)
				checkOutput(t, "token "+param, resp, body)
			}
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(h.value, h.value)
			resp, body := send(t, req)
			checkOutput(t, "token basic auth", resp, body)
			for _, path := range []string{"/revoke", "/introspect"} {
				for _, param := range []string{"token", "token_type_hint"} {
					form := url.Values{"token": {"x"}}
					form.Set(param, h.value)
					req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(ccID, ccSecret)
					resp, body := send(t, req)
					checkOutput(t, path+" "+param, resp, body)
				}
			}

			// The login form echoes the user name back.
			b := newBrowser(t)
			q := url.Values{
				"response_type": {"code"}, "client_id": {pubID}, "redirect_uri": {"http://127.0.0.1:5000/callback"},
				"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
			}
			pageResp, page := b.get(ts.URL + "/authorize?" + q.Encode())
			form := parseForm(t, pageResp.Request.URL.String(), page)
			form.Fields.Set("username", h.value)
			form.Fields.Set("password", h.value)
			resp, body = b.post(form.Action, form.Fields)
			checkOutput(t, "login", resp, body)

			// MCP: the note tools' text fields.
			call := func(name, args string) (*http.Response, []byte) {
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+name+`","arguments":`+args+`}}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Mcp-Session-Id", sid)
				req.Header.Set("MCP-Protocol-Version", "2025-06-18")
				return send(t, req)
			}
			v := jsonString(h.value)
			// JSON is UTF-8: a request that is not is refused whole, with
			// a JSON-RPC parse error.
			notUTF8 := !utf8.ValidString(h.value)
			for _, c := range []struct {
				tool, args string
				refused    bool // a tool error
			}{
				// A title or tag is refused for a control character.
				{"note_save", `{"title":` + v + `,"body":"b"}`, strings.ContainsAny(h.value, "\x00\r\n")},
				{"note_save", `{"title":"t","body":"b","tags":[` + v + `]}`, strings.ContainsAny(h.value, "\x00\r\n")},
				{"note_save", `{"title":"t","body":"b","id":` + v + `}`, true},
				{"note_get", `{"id":` + v + `}`, true},
				{"note_delete", `{"id":` + v + `}`, true},
				{"note_search", `{"query":` + v + `}`, false},
			} {
				resp, body := call(c.tool, c.args)
				checkOutput(t, c.tool+" "+c.args, resp, body)
				if notUTF8 {
					if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("-32700")) {
						t.Errorf("%s %q: status %d %.200q; want 400 with a JSON-RPC parse error", c.tool, c.args, resp.StatusCode, body)
					}
					continue
				}
				if refused := bytes.Contains(body, []byte(`"isError":true`)); refused != c.refused {
					t.Errorf("%s %q: refused %v; want %v (%.200s)", c.tool, c.args, refused, c.refused, body)
				}
			}
			if !notUTF8 {
				// A note body is stored as sent and reads back the same: a
				// NUL is kept (escaped in JSON), never cutting the text.
				resp, body = call("note_save", `{"title":"t","body":`+v+`}`)
				checkOutput(t, "note_save body", resp, body)
				var saved struct {
					Result struct {
						StructuredContent struct {
							ID string `json:"id"`
						} `json:"structuredContent"`
					} `json:"result"`
				}
				if err := json.Unmarshal(sseData(body), &saved); err != nil || saved.Result.StructuredContent.ID == "" {
					t.Fatalf("note_save with a hostile body: %.300q (%v)", body, err)
				}
				resp, body = call("note_get", `{"id":"`+saved.Result.StructuredContent.ID+`"}`)
				checkOutput(t, "note_get", resp, body)
				var got struct {
					Result struct {
						StructuredContent struct {
							Body string `json:"body"`
						} `json:"structuredContent"`
					} `json:"result"`
				}
				json.Unmarshal(sseData(body), &got)
				if got.Result.StructuredContent.Body != h.value {
					t.Errorf("note body %q reads back as %q", h.value, got.Result.StructuredContent.Body)
				}
			}
			resp, body = call("note_list", `{}`)
			checkOutput(t, "note_list", resp, body)

			// The CLI: user names.
			_, stderr, err := mcpd(t, "pw\n", "user", "add", "u"+h.value, "--password-stdin", "--data", ts.Data)
			if err == nil {
				t.Errorf("user add %q was accepted; want it refused", "u"+h.value)
			}
			if !utf8.ValidString(stderr) {
				t.Errorf("user add: stderr %q", stderr)
			}
			list := mustMcpd(t, "", "user", "list", "--json", "--data", ts.Data)
			if !utf8.ValidString(list) || !json.Valid([]byte(list)) {
				t.Errorf("user list --json prints %q", list)
			}
		})
	}
	_ = tokenClient
	resp, _ := http.Get(ts.URL + "/healthz")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz after the hostile text: %d", resp.StatusCode)
	}
}
