package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// findCheck returns the check named name, failing the test without it.
func findCheck(t *testing.T, checks []check, name string) check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q among %+v", name, checks)
	return check{}
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// TestDoctorClientMetadataDocuments: mcpd doctor tells whether the server
// can fetch the client ID metadata document VS Code names, and how to run
// without documents when it cannot (issue 12, VS Code offline).
func TestDoctorClientMetadataDocuments(t *testing.T) {
	ts := startServer(t)
	const name = "client metadata documents can be fetched from this machine"

	t.Run("a document this machine cannot fetch fails the check and says how to switch documents off", func(t *testing.T) {
		out, _, err := mcpd(t, "", "doctor", "--issuer", ts.URL, "--cimd-probe", "https://127.0.0.1:1/oauth/client-metadata.json")
		if err == nil {
			t.Errorf("doctor passed:\n%s", out)
		}
		for _, want := range []string{"FAIL " + name, "internal address", "--client-metadata-documents false"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("offline, the check names the DNS failure", func(t *testing.T) {
		d := doctor{base: ts.URL, hc: http.DefaultClient, cimdProbe: vscodeMetadataDocument,
			cimdClient: &http.Client{Transport: failingTransport{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "vscode.dev", IsNotFound: true}}}}}
		c := findCheck(t, d.run(context.Background()), name)
		if c.OK || !strings.Contains(c.Detail, "vscode.dev could not be resolved (DNS)") || !strings.Contains(c.Detail, "VS Code") {
			t.Errorf("check %+v; want a failure naming DNS and VS Code", c)
		}
	})

	t.Run("a document this machine can fetch passes", func(t *testing.T) {
		var docs *httptest.Server
		docs = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"client_id":%q,"client_name":"Visual Studio Code","redirect_uris":["http://127.0.0.1/"],"token_endpoint_auth_method":"none"}`, docs.URL+"/oauth/client-metadata.json")
		}))
		defer docs.Close()
		d := doctor{base: ts.URL, hc: http.DefaultClient, cimdProbe: docs.URL + "/oauth/client-metadata.json", cimdClient: docs.Client()}
		checks := d.run(context.Background())
		if c := findCheck(t, checks, name); !c.OK {
			t.Errorf("check %+v; want it passed", c)
		}
		for _, c := range checks {
			if !c.OK {
				t.Errorf("failed: %+v", c)
			}
		}
	})

	t.Run("with documents off there is nothing to fetch", func(t *testing.T) {
		off := startServer(t, "--client-metadata-documents", "false")
		out, _, err := mcpd(t, "", "doctor", "--issuer", off.URL, "--cimd-probe", "https://127.0.0.1:1/oauth/client-metadata.json")
		if err != nil || !strings.Contains(out, "ok   client metadata documents are off: clients register themselves") {
			t.Errorf("err=%v, output:\n%s", err, out)
		}
	})
}

// TestDoctorIssuerPath: behind a proxy serving mcpd under /mcpd, doctor
// checks every location clients try and names the proxy routes missing.
func TestDoctorIssuerPath(t *testing.T) {
	for _, tt := range []struct {
		name      string
		wellKnown bool
		wantFail  []string
	}{
		{"a proxy that forwards only /mcpd is told to forward the root well-known paths", false,
			[]string{"protected-resource metadata at the RFC 9728 location answers", "authorization-server metadata at the RFC 8414 location answers", "OpenID Connect discovery document at the path-inserted location answers"}},
		{"a proxy that also forwards the root well-known paths passes", true, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy := &pathProxy{prefix: "/mcpd", strip: true, wellKnown: tt.wellKnown}
			front := httptest.NewServer(proxy)
			defer front.Close()
			srv := startServer(t, "--issuer", front.URL+"/mcpd")
			proxy.backend, _ = url.Parse(srv.URL)
			d := doctor{base: front.URL + "/mcpd", hc: &http.Client{CheckRedirect: noRedirect}}
			var failed []string
			for _, c := range d.run(context.Background()) {
				if !c.OK {
					failed = append(failed, c.Name)
					if !strings.Contains(c.Detail, "must also forward") {
						t.Errorf("%s: detail %q does not say what to forward", c.Name, c.Detail)
					}
				}
			}
			if strings.Join(failed, "\n") != strings.Join(tt.wantFail, "\n") {
				t.Errorf("failed checks:\n%s\nwant:\n%s", strings.Join(failed, "\n"), strings.Join(tt.wantFail, "\n"))
			}
			// Clients still find the authorization server: the OpenID
			// Connect document by path appending was checked and passed.
			findCheck(t, d.checks, "OpenID Connect discovery document (path appended) has the members OpenID Connect requires")
		})
	}
}

func TestDoctorPlainHTTPOnANetwork(t *testing.T) {
	d := doctor{base: "http://192.0.2.10:8080", hc: &http.Client{Transport: failingTransport{fmt.Errorf("no network in tests")}}}
	c := findCheck(t, d.run(context.Background()), "issuer uses https, or http on loopback only")
	if c.OK || !strings.Contains(c.Detail, "https reverse proxy") {
		t.Errorf("check %+v; want a failure pointing at an https proxy", c)
	}
	for _, base := range []string{"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "https://mcp.example"} {
		d := doctor{base: base, hc: &http.Client{Transport: failingTransport{fmt.Errorf("no network in tests")}}}
		if c := findCheck(t, d.run(context.Background()), "issuer uses https, or http on loopback only"); !c.OK {
			t.Errorf("%s: %+v; want it passed", base, c)
		}
	}
}
