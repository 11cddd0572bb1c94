package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
)

// infoOf is the AccessTokenInfo of a record decoded by decodeRequest.
func infoOf(rec *requestRecord) AccessTokenInfo {
	return AccessTokenInfo{
		Subject:         rec.Subject,
		ClientID:        rec.ClientID,
		GrantedScopes:   rec.GrantedScopes,
		GrantedAudience: rec.GrantedAudience,
		ExpiresAt:       rec.ExpiresAt,
		Active:          rec.Active,
		JKT:             rec.ConfirmationJKT,
	}
}

// decodeSeeds are record JSON texts: as encodeRequest writes them and as it
// does not (other order, white space, nulls, escaped keys, corrupt).
var decodeSeeds = []string{
	`{"id":"g","client_id":"c","subject":"alice","requested_at":"2026-01-02T03:04:05.0000006Z","requested_scopes":["notes:read"],"granted_scopes":["notes:read","notes:write"],"requested_audience":["http://127.0.0.1:8080/mcp"],"granted_audience":["http://127.0.0.1:8080/mcp"],"form":{"resource":["http://127.0.0.1:8080/mcp"]},"session":{"extra":{"k":["}","]","\"{"]},"expires_at":{"access_token":"2026-01-02T04:04:05Z"},"username":"","subject":"alice"},"active":true,"expires_at":"2026-01-02T04:04:05Z"}`,
	`{"id":"g","client_id":"c","requested_at":"0001-01-01T00:00:00Z","active":false,"expires_at":"0001-01-01T00:00:00Z"}`,
	`{"id":"g","client_id":"c","subject":"s","active":true,"expires_at":"2026-01-02T04:04:05Z","cnf_jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}`,
	` { "active" : true , "expires_at" : "2026-01-02T05:04:05+01:00", "granted_scopes" : [ "a" , "b" ] , "client_id" : "c\u003c\"d" , "form":null, "n": 1.5e3, "t": true, "f": false } `,
	`{"client_id":null,"subject":null,"granted_scopes":null,"granted_audience":[],"requested_at":null,"active":null}`,
	`{"client_id":"x","client_id":"y","subject":"\ud83d\ude00 \\ \/ \b\f\n\r\t"}`,
	`{"client\u005fid":"escaped key"}`,
	`{"Client_ID":"other case"}`,
	`{}`,
	``, `[]`, `null`, `{`, `{"client_id":}`, `{"client_id":"c"`, `{"client_id":"c"} x`,
	`{"active":"yes"}`, `{"granted_scopes":[1]}`, `{"requested_at":"yesterday"}`, `{"client_id":"c",}`,
	`{"subject":"bad` + "\x01" + `control"}`, `{"subject":"` + "\xff" + `"}`,
}

// encodeLegacy writes rec as release v1 did: JSON after the expiry prefix.
func encodeLegacy(rec *requestRecord) ([]byte, error) {
	raw, err := rec.marshalJSON()
	if err != nil {
		return nil, err
	}
	return append(expiryPrefix(rec.ExpiresAt), raw...), nil
}

// checkDecode pins decodeAccessTokenInfo to decodeRequest on every record
// the store can hold: whatever decodeRequest reads from data, written back
// as release v1 wrote it (JSON) and as this build writes it (the lean
// form), decodes to the same fields. Input no encoder writes (such as
// times encoding/json parses leniently) is not the lean decoder's to agree
// on.
func checkDecode(t *testing.T, data []byte) {
	rec, err := decodeRequest(append(make([]byte, 8), data...))
	if err != nil {
		return
	}
	legacy, err := encodeLegacy(rec)
	if err != nil {
		return // a time encoding/json cannot write back
	}
	lean, err := encodeRequest(rec)
	if err != nil {
		t.Fatalf("encodeRequest of a decoded record: %v", err)
	}
	for _, v := range [][]byte{legacy, lean} {
		want, err := decodeRequest(v)
		if err != nil {
			t.Fatalf("decodeRequest of an encoded record: %v", err)
		}
		got, err := decodeAccessTokenInfo(v)
		if err != nil {
			t.Fatalf("decodeAccessTokenInfo of %q: %v", v[8:], err)
		}
		if diff := cmp.Diff(infoOf(want), got); diff != "" {
			t.Errorf("decodeAccessTokenInfo of %q differs from decodeRequest (-decodeRequest +got):\n%s", v[8:], diff)
		}
	}
}

func TestDecodeAccessTokenInfoAgreesWithDecodeRequest(t *testing.T) {
	for _, seed := range decodeSeeds {
		t.Run(seed, func(t *testing.T) { checkDecode(t, []byte(seed)) })
	}
}

func FuzzDecodeAccessTokenInfo(f *testing.F) {
	for _, seed := range decodeSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(checkDecode)
}

func TestDecodeAccessTokenInfoRejectsCorruptRecords(t *testing.T) {
	for _, seed := range []string{
		``, `[]`, `{`, `{"client_id":}`, `{"client_id":"c"`, `{"client_id":"c"} x`,
		`{"active":"yes"}`, `{"granted_scopes":[1]}`, `{"expires_at":"yesterday"}`, `{"client_id":"c",}`,
	} {
		if _, err := decodeAccessTokenInfo(append(make([]byte, 8), seed...)); err == nil {
			t.Errorf("decodeAccessTokenInfo(%q) = nil error; want it to fail", seed)
		}
	}
	if _, err := decodeAccessTokenInfo([]byte("short")); err == nil {
		t.Error("decodeAccessTokenInfo of a 5-byte record = nil error; want it to fail")
	}
	lean, err := encodeRequest(&requestRecord{ID: "g", ClientID: "c", Subject: "s", GrantedScopes: []string{"a"}, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]byte{
		"truncated lean record": lean[:len(lean)-3],
		"unknown flags":         append(append(bytes.Clone(lean[:9]), 0x80), lean[10:]...),
		"length past the end":   append(bytes.Clone(lean[:10]), 0xff, 0xff, 0x03),
	} {
		if _, err := decodeAccessTokenInfo(v); err == nil {
			t.Errorf("decodeAccessTokenInfo of a %s = nil error; want it to fail", name)
		}
		if _, err := decodeRequest(v); err == nil {
			t.Errorf("decodeRequest of a %s = nil error; want it to fail", name)
		}
	}
}

func TestDecodeAccessTokenInfoOfEncodedRecords(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, rec := range []*requestRecord{
		{ID: "g", ClientID: "c", RequestedAt: now, Active: true},
		{ID: "g", ClientID: "c", Subject: "alice", Tombstone: true, ExpiresAt: now},
		{ID: "g", ClientID: "c<&>\u2028", Subject: "s\"\\", RequestedAt: now, GrantedScopes: []string{"a", "é"}, GrantedAudience: []string{}, Active: true, ExpiresAt: now.Add(time.Hour),
			Form: url.Values{"x": {"{[\"", "]}"}}, Session: storedSession{JSON: json.RawMessage(`{"subject":"s","extra":{"a":[1,{"b":"}"}]}}`)}},
	} {
		for _, enc := range []func(*requestRecord) ([]byte, error){encodeLegacy, encodeRequest} {
			v, err := enc(rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeAccessTokenInfo(v)
			if err != nil {
				t.Fatal(err)
			}
			// Both encodings drop empty lists.
			if diff := cmp.Diff(infoOf(rec), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decodeAccessTokenInfo of %q (-want +got):\n%s", v[8:], diff)
			}
		}
	}
}

// A token whose client record is gone is not found, as
// GetAccessTokenSession answers, even if nothing revoked it.
func TestLookupAccessTokenOfMissingClient(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := &requestRecord{ID: "g", ClientID: "gone", RequestedAt: time.Now().UTC(), Active: true}
	v, err := encodeRequest(rec)
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Load().Update(func(tx *bolt.Tx) error { return bucket(tx, bucketAccess).Put(sighash("sig"), v) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupAccessToken(ctx, "sig"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupAccessToken = %v; want ErrNotFound", err)
	}
}

// BenchmarkDecodeAccessTokenInfo compares the lean decoding Verify uses
// with the full one of GetAccessTokenSession's record.
func BenchmarkDecodeAccessTokenInfo(b *testing.B) {
	v := append(make([]byte, 8), decodeSeeds[0]...)
	b.Run("lean", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeAccessTokenInfo(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeRequest(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
