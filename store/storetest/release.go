package storetest

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ReleaseV1 is the database written by release v1 (commit 2f7baa7) that
// scripts/release-fixture.sh made, store/testdata/release-v1.db.gz, with
// the secrets that use its records (store/testdata/release-v1.json). Every
// backend's upgrade or migration test starts from it.
type ReleaseV1 struct {
	Release  string            `json:"release"`
	Issuer   string            `json:"issuer"` // the tokens' audience is Issuer + "/mcp"
	Users    map[string]string `json:"users"`  // name → password
	Clients  []ReleaseClient   `json:"clients"`
	Grants   []ReleaseGrant    `json:"grants"`
	Notes    []ReleaseNote     `json:"notes"`
	Codes    []ReleaseCode     `json:"codes"`
	Consents []ReleaseConsent  `json:"consents"`
	JTIs     []string          `json:"jtis"` // the first is live, the second expired
}

// ReleaseClient is a registered client; Source is dynamic, metadata or
// static.
type ReleaseClient struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Source string `json:"source"`
	Secret string `json:"secret,omitempty"`
}

// ReleaseGrant is a grant's tokens as the release left them. Rotated is a
// refresh token of the grant that was rotated, RotatedResponse what its
// rotation answered; Revoked grants were ended through /revoke; Expired
// ones were issued with the default lifetimes and are long expired.
type ReleaseGrant struct {
	Name            string          `json:"name"`
	ClientID        string          `json:"client_id"`
	Subject         string          `json:"subject"`
	Scope           string          `json:"scope"`
	Access          string          `json:"access_token"`
	Refresh         string          `json:"refresh_token,omitempty"`
	Rotated         string          `json:"rotated_refresh_token,omitempty"`
	RotatedResponse json.RawMessage `json:"rotated_response,omitempty"`
	Revoked         bool            `json:"revoked,omitempty"`
	Expired         bool            `json:"expired,omitempty"`
	AccessUntil     time.Time       `json:"access_token_expires_at"`
}

// ReleaseNote is a saved note.
type ReleaseNote struct {
	Owner string   `json:"owner"`
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Body  string   `json:"body"`
	Tags  []string `json:"tags,omitempty"`
}

// ReleaseCode is an authorization code; unless Used it was never
// exchanged.
type ReleaseCode struct {
	ClientID    string `json:"client_id"`
	Code        string `json:"code"`
	Verifier    string `json:"code_verifier"`
	RedirectURI string `json:"redirect_uri"`
	Used        bool   `json:"used"`
}

// ReleaseConsent is a remembered consent.
type ReleaseConsent struct {
	User     string `json:"user"`
	ClientID string `json:"client_id"`
}

// Signature is what fosite's HMAC strategy keys a token by: the part after
// the dot.
func Signature(token string) string {
	_, sig, _ := strings.Cut(token, ".")
	return sig
}

// testdata is store/testdata, found from this file's path so that tests of
// any package can read it.
func testdata(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("storetest: cannot find its own source")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// LoadReleaseV1 reads the secrets of the release v1 fixture and unpacks its
// database into dir/mcpd.db (mode 0600), returning the path.
func LoadReleaseV1(t testing.TB, dir string) (*ReleaseV1, string) {
	t.Helper()
	td := testdata(t)
	raw, err := os.ReadFile(filepath.Join(td, "release-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx ReleaseV1
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("release-v1.json: %v", err)
	}
	in, err := os.Open(filepath.Join(td, "release-v1.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mcpd.db")
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return &fx, path
}

// Grant returns the grant of that name; the test fails without one.
func (fx *ReleaseV1) Grant(t testing.TB, name string) ReleaseGrant {
	t.Helper()
	for _, g := range fx.Grants {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("release v1 fixture has no grant %q", name)
	return ReleaseGrant{}
}
