package store

import (
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

// infoOf is the AccessTokenInfo of a record decoded by encoding/json.
func infoOf(rec *requestRecord) AccessTokenInfo {
	return AccessTokenInfo{
		Subject:         rec.Subject,
		ClientID:        rec.ClientID,
		GrantedScopes:   rec.GrantedScopes,
		GrantedAudience: rec.GrantedAudience,
		RequestedAt:     rec.RequestedAt,
		ExpiresAt:       rec.ExpiresAt,
		Active:          rec.Active,
	}
}

// scanSeeds are record JSON texts: as encodeRequest writes them and as it
// does not (other order, white space, nulls, escaped keys).
var scanSeeds = []string{
	`{"id":"g","client_id":"c","subject":"alice","requested_at":"2026-01-02T03:04:05.0000006Z","requested_scopes":["notes:read"],"granted_scopes":["notes:read","notes:write"],"requested_audience":["http://127.0.0.1:8080/mcp"],"granted_audience":["http://127.0.0.1:8080/mcp"],"form":{"resource":["http://127.0.0.1:8080/mcp"]},"session":{"extra":{"k":["}","]","\"{"]},"expires_at":{"access_token":"2026-01-02T04:04:05Z"},"username":"","subject":"alice"},"active":true,"expires_at":"2026-01-02T04:04:05Z"}`,
	`{"id":"g","client_id":"c","requested_at":"0001-01-01T00:00:00Z","active":false,"expires_at":"0001-01-01T00:00:00Z"}`,
	` { "active" : true , "expires_at" : "2026-01-02T05:04:05+01:00", "granted_scopes" : [ "a" , "b" ] , "client_id" : "c\u003c\"d" , "form":null, "n": 1.5e3, "t": true, "f": false } `,
	`{"client_id":null,"subject":null,"granted_scopes":null,"granted_audience":[],"requested_at":null,"active":null}`,
	`{"client_id":"x","client_id":"y","subject":"\ud83d\ude00 \\ \/ \b\f\n\r\t"}`,
	`{"client\u005fid":"escaped key"}`,
	`{"Client_ID":"other case"}`,
	`{}`,
	// Corrupt or not an object: both must fail.
	``, `[]`, `null`, `{`, `{"client_id":}`, `{"client_id":"c"`, `{"client_id":"c"} x`,
	`{"active":"yes"}`, `{"granted_scopes":[1]}`, `{"requested_at":"yesterday"}`, `{"client_id":"c",}`,
	`{"subject":"bad` + "\x01" + `control"}`, `{"subject":"` + "\xff" + `"}`,
}

// TestScanAccessTokenInfo pins the scan to encoding/json: where it answers,
// it answers what decodeRequest gives; where it gives up, the fallback
// decides.
func TestScanAccessTokenInfo(t *testing.T) {
	for _, seed := range scanSeeds {
		t.Run(seed, func(t *testing.T) { checkScan(t, []byte(seed)) })
	}
}

func FuzzScanAccessTokenInfo(f *testing.F) {
	for _, seed := range scanSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(checkScan)
}

func checkScan(t *testing.T, data []byte) {
	got, ok := scanAccessTokenInfo(data)
	rec, err := decodeRequest(append(make([]byte, 8), data...))
	if !ok {
		return
	}
	if err != nil {
		// The scan does not validate what it skips; only a record that
		// json finds corrupt outside the wanted fields may pass it.
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syntax) || errors.As(err, &typ) {
			t.Logf("scan accepted a record json rejects: %v", err)
			return
		}
		t.Fatalf("decodeRequest: %v", err)
	}
	if diff := cmp.Diff(infoOf(rec), got); diff != "" {
		t.Errorf("scan differs from encoding/json (-json +scan):\n%s", diff)
	}
}

func TestScanAccessTokenInfoRejectsWhatJSONRejects(t *testing.T) {
	for _, seed := range []string{
		``, `[]`, `null`, `{`, `{"client_id":}`, `{"client_id":"c"`, `{"client_id":"c"} x`,
		`{"active":"yes"}`, `{"granted_scopes":[1]}`, `{"requested_at":"yesterday"}`, `{"client_id":"c",}`,
	} {
		if _, ok := scanAccessTokenInfo([]byte(seed)); ok {
			t.Errorf("scan of %q = ok; want it to give up", seed)
		}
	}
}

func TestDecodeAccessTokenInfoOfEncodedRecords(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, rec := range []*requestRecord{
		{ID: "g", ClientID: "c", RequestedAt: now, Active: true},
		{ID: "g", ClientID: "c<&>\u2028", Subject: "s\"\\", RequestedAt: now, GrantedScopes: []string{"a", "é"}, GrantedAudience: []string{}, Active: true, ExpiresAt: now.Add(time.Hour),
			Form: url.Values{"x": {"{[\"", "]}"}}, Session: json.RawMessage(`{"subject":"s","extra":{"a":[1,{"b":"}"}]}}`)},
	} {
		v, err := encodeRequest(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := scanAccessTokenInfo(v[8:]); !ok {
			t.Errorf("scan of %s gave up; want it to read every record encodeRequest writes", v[8:])
		}
		got, err := decodeAccessTokenInfo(v)
		if err != nil {
			t.Fatal(err)
		}
		want := infoOf(rec)
		// encodeRequest drops empty lists.
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("decodeAccessTokenInfo (-want +got):\n%s", diff)
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
	err = s.db.Update(func(tx *bolt.Tx) error { return bucket(tx, bucketAccess).Put(sighash("sig"), v) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupAccessToken(ctx, "sig"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupAccessToken = %v; want ErrNotFound", err)
	}
}
