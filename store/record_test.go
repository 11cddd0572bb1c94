package store

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
)

// leanRecords are records of every shape the store writes.
func leanRecords() map[string]*requestRecord {
	at := time.Date(2026, 11, 28, 23, 59, 21, 464461771, time.UTC)
	exp := at.Add(time.Hour).Round(time.Second)
	return map[string]*requestRecord{
		"client_credentials access token": {
			ID: "c12535e5-4ed0-457f-aee9-db67d7784d7d", ClientID: "00fTbaTFh1iggkjH_F8VAg", Subject: "client:00fTbaTFh1iggkjH_F8VAg",
			RequestedAt: at, GrantedScopes: []string{"notes:read", "notes:write"},
			GrantedAudience: []string{"http://127.0.0.1:38383/mcp"},
			Form:            url.Values{"grant_type": {"client_credentials"}},
			Session: storedSession{Default: &fosite.DefaultSession{
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: exp},
				Username:  "client:00fTbaTFh1iggkjH_F8VAg", Subject: "client:00fTbaTFh1iggkjH_F8VAg",
			}},
			Active: true, ExpiresAt: exp,
		},
		"refresh-flow access token": {
			ID: "1774f990-efea-497d-9073-939b1a4f3da0", ClientID: "usreG4uGydMOfoKuQXWiIg", Subject: "admin",
			RequestedAt: at, RequestedScopes: []string{"notes:read", "notes:write"}, GrantedScopes: []string{"notes:read", "notes:write"},
			GrantedAudience: []string{"http://127.0.0.1:41045/mcp"},
			Form:            url.Values{"client_id": {"usreG4uGydMOfoKuQXWiIg"}, "grant_type": {"refresh_token"}},
			Session: storedSession{Default: &fosite.DefaultSession{
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: exp, fosite.AuthorizeCode: at.Add(time.Minute), fosite.RefreshToken: at.Add(720 * time.Hour)},
				Username:  "admin", Subject: "admin", Extra: map[string]any{"grant_start": float64(1795911049)},
			}},
			Active: true, ExpiresAt: exp,
		},
		"authorization code": {
			ID: "6c8fcb93-f7f5-42cc-8fd5-edf1ffd73d80", ClientID: "https://app.example/client.json", Subject: "alice",
			RequestedAt: at, RequestedScopes: []string{"notes:read", "api:call"}, GrantedScopes: []string{"notes:read"},
			RequestedAudience: []string{"https://mcp.example/mcp/"}, GrantedAudience: []string{"https://mcp.example/mcp"},
			Form: url.Values{"client_id": {"another"}, "redirect_uri": {"http://127.0.0.1:49152/callback"}, "response_type": {"code"},
				"scope": {"notes:read api:call"}, "empty": {""}, "twice": {"b", "a"}},
			Session: storedSession{Default: &fosite.DefaultSession{
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AuthorizeCode: at.Add(time.Minute), "device_code": {}},
				Username:  "someone else", Subject: "alice", Extra: map[string]any{},
			}},
			Active: true, ExpiresAt: at.Add(time.Minute),
		},
		"DPoP-bound access token": {
			ID: "1774f990-efea-497d-9073-939b1a4f3da0", ClientID: "usreG4uGydMOfoKuQXWiIg", Subject: "admin",
			RequestedAt: at, GrantedScopes: []string{"notes:read"}, GrantedAudience: []string{"http://127.0.0.1:41045/mcp"},
			Form: url.Values{"grant_type": {"authorization_code"}},
			Session: storedSession{Default: &fosite.DefaultSession{
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: exp},
				Subject:   "admin", Username: "admin",
				Extra: map[string]any{"grant_start": float64(1795911049), "cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
			}},
			ConfirmationJKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
			Active:          true, ExpiresAt: exp,
		},
		"record with a session of another type": {
			ID: "g", ClientID: "c", Subject: "s", RequestedAt: at,
			Session: storedSession{JSON: json.RawMessage(`{"subject":"s","extra":{"a":[1,{"b":"}"}]}}`)},
		},
		"record without session or expiry": {ID: "g", ClientID: "c", RequestedAt: at, Active: true},
		"session with empty maps": {ID: "g", ClientID: "c", Subject: "s", RequestedAt: at, Active: true,
			Session: storedSession{Default: &fosite.DefaultSession{ExpiresAt: map[fosite.TokenType]time.Time{}, Subject: "s", Extra: map[string]any{}}}},
		"tombstone": {ID: "1774f990-efea-497d-9073-939b1a4f3da0", ClientID: "usreG4uGydMOfoKuQXWiIg", Subject: "admin", Tombstone: true, Seq: 1234, ExpiresAt: exp,
			Session: storedSession{Default: &fosite.DefaultSession{Subject: "admin", Username: "admin", Extra: map[string]any{"grant_start": float64(1795911049)}}}},
		"tombstone of a DPoP-bound token": {ID: "1774f990-efea-497d-9073-939b1a4f3da0", ClientID: "usreG4uGydMOfoKuQXWiIg", Subject: "admin", Tombstone: true, Seq: 7, ExpiresAt: exp,
			ConfirmationJKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
			Session: storedSession{Default: &fosite.DefaultSession{Subject: "admin", Username: "admin",
				Extra: map[string]any{"grant_start": float64(1795911049), "cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}}}},
		"record before 1970 and after 2262": {
			ID: "g", ClientID: "c", RequestedAt: time.Date(1, 2, 3, 4, 5, 6, 7, time.UTC),
			Session: storedSession{Default: &fosite.DefaultSession{ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: time.Date(9999, 1, 1, 0, 0, 0, 1, time.UTC)}}},
		},
	}
}

func TestLeanRecordRoundTrip(t *testing.T) {
	for name, rec := range leanRecords() {
		t.Run(name, func(t *testing.T) {
			v, err := encodeRequest(rec)
			if err != nil {
				t.Fatal(err)
			}
			if v[8] != recordV2 {
				t.Fatalf("first byte after the prefix = %#x; want the lean form %#x", v[8], recordV2)
			}
			got, err := decodeRequest(v)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(rec, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decoded record (-written +read):\n%s", diff)
			}
			// A nil map and an empty one decode differently into a session.
			if diff := cmp.Diff(rec.Session, got.Session); diff != "" {
				t.Errorf("decoded session, empty and nil maps apart (-written +read):\n%s", diff)
			}
			again, err := encodeRequest(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(v, again) {
				t.Errorf("re-encoding the decoded record changed it:\n%x\n%x", v, again)
			}
			h, err := peekRequest(v)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(recordHeader{ID: rec.ID, ClientID: rec.ClientID, Subject: rec.Subject, Active: rec.Active, Seq: rec.Seq}, h); diff != "" {
				t.Errorf("peekRequest (-want +got):\n%s", diff)
			}
		})
	}
}

// The lean form is what keeps a file small: an access token of any of
// mcpd's grants is at most 300 bytes with its key, against about 650 as
// release v1 wrote it (JSON), and a tombstone under 100.
func TestLeanRecordSize(t *testing.T) {
	recs := leanRecords()
	for _, c := range []struct {
		name string
		max  int
	}{
		{"client_credentials access token", 300},
		{"refresh-flow access token", 300},
		{"authorization code", 400},
		{"tombstone", 150},
		{"tombstone of a DPoP-bound token", 200},
		{"DPoP-bound access token", 300},
	} {
		rec := recs[c.name]
		lean, err := encodeRequest(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec.Session.JSON, _ = json.Marshal(rec.Session.Default)
		legacy, err := encodeLegacy(rec)
		if err != nil {
			t.Fatal(err)
		}
		stored := len(lean) + len(sighash("x"))
		t.Logf("%s: %d bytes with its 32-byte key (release v1: %d)", c.name, stored, len(legacy)+32)
		if stored > c.max {
			t.Errorf("%s takes %d bytes with its key; want at most %d", c.name, stored, c.max)
		}
	}
}

// A DefaultSession stored field by field decodes into a DefaultSession
// as it was, and into any other session type through its JSON, as a
// record of release v1 did.
func TestLeanSessionDecodesIntoEverySessionType(t *testing.T) {
	rec := leanRecords()["refresh-flow access token"]
	v, err := encodeRequest(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(v)
	if err != nil {
		t.Fatal(err)
	}
	var ds fosite.DefaultSession
	if err := got.Session.decodeInto(&ds); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec.Session.Default, &ds); diff != "" {
		t.Errorf("DefaultSession (-stored +decoded):\n%s", diff)
	}
	// Another type gets what encoding/json makes of the DefaultSession's
	// JSON, as from a record of release v1.
	raw, err := json.Marshal(rec.Session.Default)
	if err != nil {
		t.Fatal(err)
	}
	want := &oauth2.JWTSession{JWTClaims: &jwt.JWTClaims{}}
	if err := json.Unmarshal(raw, want); err != nil {
		t.Fatal(err)
	}
	js := &oauth2.JWTSession{JWTClaims: &jwt.JWTClaims{}}
	if err := got.Session.decodeInto(js); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, js); diff != "" {
		t.Errorf("JWTSession (-as from JSON +decoded):\n%s", diff)
	}
	if js.Subject != "admin" {
		t.Errorf("JWTSession subject %q; want admin", js.Subject)
	}
}

// Records of release v1 (JSON) are read as they were written.
func TestLegacyRecordIsRead(t *testing.T) {
	rec := leanRecords()["refresh-flow access token"]
	rec.Session = storedSession{JSON: json.RawMessage(`{"expires_at":{"access_token":"2026-11-29T00:59:21Z"},"username":"admin","subject":"admin","extra":{"grant_start":1795911049}}`)}
	v, err := encodeLegacy(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(v)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("legacy record (-written +read):\n%s", diff)
	}
	var ds fosite.DefaultSession
	if err := got.Session.decodeInto(&ds); err != nil {
		t.Fatal(err)
	}
	if ds.Subject != "admin" || ds.Extra["grant_start"] != float64(1795911049) {
		t.Errorf("legacy session decoded to %+v", ds)
	}
}

// FuzzDecodeLeanRecord feeds decodeRequest bytes as they may be found on a
// damaged disk: it must fail cleanly or return a record that encodes back
// to a record that decodes the same, and decodeAccessTokenInfo must agree
// with it.
func FuzzDecodeLeanRecord(f *testing.F) {
	for _, rec := range leanRecords() {
		v, err := encodeRequest(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := decodeRequest(v)
		if err != nil || len(v) < 9 || v[8] != recordV2 {
			return
		}
		again, err := encodeRequest(rec)
		if err != nil {
			t.Fatalf("encodeRequest of a decoded record: %v", err)
		}
		rec2, err := decodeRequest(again)
		if err != nil {
			t.Fatalf("decodeRequest of a re-encoded record: %v", err)
		}
		if diff := cmp.Diff(rec, rec2, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("re-encoded record differs (-first +second):\n%s", diff)
		}
		info, err := decodeAccessTokenInfo(again)
		if err != nil {
			t.Fatalf("decodeAccessTokenInfo of an encoded record: %v", err)
		}
		if diff := cmp.Diff(infoOf(rec2), info, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("decodeAccessTokenInfo differs from decodeRequest (-decodeRequest +got):\n%s", diff)
		}
	})
}

// fosite reads a code's session into the request's session after setting
// the new tokens' expiries in it: the stored session is merged in, as
// encoding/json merges a session's JSON into the maps already there.
func TestLeanSessionMergesLikeJSON(t *testing.T) {
	rec := leanRecords()["authorization code"]
	rec.Session.Default.Extra = map[string]any{"grant_start": float64(7)}
	v, err := encodeRequest(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRequest(v)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	into := func() *fosite.DefaultSession {
		return &fosite.DefaultSession{
			ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: at, fosite.AuthorizeCode: at},
			Username:  "old", Subject: "old", Extra: map[string]any{"kept": "yes", "grant_start": float64(1)},
		}
	}
	want := into()
	raw, err := json.Marshal(rec.Session.Default)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, want); err != nil {
		t.Fatal(err)
	}
	ds := into()
	if err := got.Session.decodeInto(ds); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, ds); diff != "" {
		t.Errorf("merged session (-encoding/json +lean):\n%s", diff)
	}
}
