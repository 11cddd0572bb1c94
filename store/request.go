package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	bolt "go.etcd.io/bbolt"
)

// Token kinds in the grant index; each names its bucket.
const (
	kindCode    = "c"
	kindAccess  = "a"
	kindRefresh = "r"
	kindPKCE    = "p"
)

func kindBucket(kind string) string {
	switch kind {
	case kindCode:
		return bucketCodes
	case kindAccess:
		return bucketAccess
	case kindRefresh:
		return bucketRefresh
	case kindPKCE:
		return bucketPKCE
	}
	panic("store: unknown token kind " + kind)
}

func isKind(kind string) bool {
	switch kind {
	case kindCode, kindAccess, kindRefresh, kindPKCE:
		return true
	}
	return false
}

// sighash is the key of a token signature: its SHA-256, so the file never
// holds a signature, let alone a token.
func sighash(signature string) []byte {
	h := sha256.Sum256([]byte(signature))
	return h[:]
}

// isSecretFormKey reports whether a request parameter holds a secret or a
// token, which is never written to disk.
func isSecretFormKey(k string) bool {
	switch k {
	case "client_secret", "client_assertion", "password", "code", "code_verifier",
		"refresh_token", "token", "access_token", "id_token_hint", "assertion",
		"subject_token", "actor_token":
		return true
	}
	return false
}

// requestRecord is a fosite request flattened for storage (record.go has
// its layout on disk).
type requestRecord struct {
	ID                string
	ClientID          string
	Subject           string
	RequestedAt       time.Time
	RequestedScopes   []string
	GrantedScopes     []string
	RequestedAudience []string
	GrantedAudience   []string
	Form              url.Values
	Session           storedSession
	Active            bool
	// Tombstone: a used code or a rotated or revoked refresh token, of
	// which only ID, ClientID, Subject, Seq, ConfirmationJKT, ExpiresAt
	// and the session's subject, user name and extra claims are kept.
	Tombstone bool
	// Seq numbers the refresh tokens of a grant in the order they were
	// retired, so that the oldest tombstones are the ones pruned.
	Seq       uint64
	ExpiresAt time.Time // zero: the session set none
	// ConfirmationJKT is the thumbprint of the DPoP key the token is
	// bound to (the session's cnf.jkt claim); empty for a bearer token.
	ConfirmationJKT string
}

// storedSession is a request's session as stored: a *fosite.DefaultSession
// field by field, or any other session as its JSON.
type storedSession struct {
	Default *fosite.DefaultSession
	JSON    json.RawMessage
}

// newRequestRecord flattens req; tokenType picks the expiry from the
// session.
func newRequestRecord(req fosite.Requester, tokenType fosite.TokenType) (*requestRecord, error) {
	if req == nil {
		return nil, errors.New("store: nil request")
	}
	id := req.GetID()
	if id == "" || strings.Contains(id, sep) {
		return nil, fmt.Errorf("store: invalid request id %q", id)
	}
	client := req.GetClient()
	if client == nil {
		return nil, errors.New("store: request without client")
	}
	rec := &requestRecord{
		ID:                id,
		ClientID:          client.GetID(),
		RequestedAt:       req.GetRequestedAt().UTC(),
		RequestedScopes:   req.GetRequestedScopes(),
		GrantedScopes:     req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Active:            true,
	}
	if strings.Contains(rec.ClientID, sep) {
		return nil, fmt.Errorf("store: invalid client id %q", rec.ClientID)
	}
	form := url.Values{}
	for k, v := range req.GetRequestForm() {
		if !isSecretFormKey(k) {
			form[k] = append([]string(nil), v...)
		}
	}
	if len(form) > 0 {
		rec.Form = form
	}
	if sess := req.GetSession(); sess != nil {
		rec.Subject = sess.GetSubject()
		if strings.Contains(rec.Subject, sep) {
			return nil, fmt.Errorf("store: invalid subject")
		}
		rec.ExpiresAt = sess.GetExpiresAt(tokenType).UTC()
		rec.ConfirmationJKT = confirmationJKT(sess)
		if ds, ok := sess.(*fosite.DefaultSession); ok {
			rec.Session.Default = ds
		} else {
			raw, err := json.Marshal(sess)
			if err != nil {
				return nil, fmt.Errorf("store: encode session: %w", err)
			}
			rec.Session.JSON = raw
		}
	}
	return rec, nil
}

// tombstone is what is kept of rec once it is used, rotated or revoked:
// what reuse detection needs, which includes the session's extra claims,
// since a DPoP binding there decides whether a reuse may revoke the grant.
func (rec *requestRecord) tombstone(seq uint64) *requestRecord {
	t := &requestRecord{ID: rec.ID, ClientID: rec.ClientID, Subject: rec.Subject, Tombstone: true, Seq: seq,
		ExpiresAt: rec.ExpiresAt, ConfirmationJKT: rec.ConfirmationJKT}
	ds := rec.Session.Default
	if ds == nil && len(rec.Session.JSON) > 0 { // a record of release v1
		var d fosite.DefaultSession
		if json.Unmarshal(rec.Session.JSON, &d) == nil {
			ds = &d
		}
	}
	if ds != nil && len(ds.Extra) > 0 {
		t.Session.Default = &fosite.DefaultSession{Subject: ds.Subject, Username: ds.Username, Extra: ds.Extra}
	}
	return t
}

// confirmationJKT returns the jkt member of a session's cnf claim (RFC
// 7800 §3.1, RFC 9449 §6.1): the SHA-256 thumbprint of the DPoP key a
// token is bound to. A session without one, or whose claim has another
// shape, gives "".
func confirmationJKT(sess fosite.Session) string {
	es, ok := sess.(fosite.ExtraClaimsSession)
	if !ok {
		return ""
	}
	switch cnf := es.GetExtraClaims()["cnf"].(type) {
	case map[string]any:
		jkt, _ := cnf["jkt"].(string)
		return jkt
	case map[string]string:
		return cnf["jkt"]
	}
	return ""
}

func expiryPrefix(t time.Time) []byte {
	var n uint64
	if !t.IsZero() {
		n = uint64(t.UnixNano())
	}
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// expiryOf reads the expiry prefix; ok is false for "never".
func expiryOf(v []byte) (t time.Time, ok bool) {
	if len(v) < 8 {
		return time.Time{}, false
	}
	n := binary.BigEndian.Uint64(v[:8])
	if n == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(n)), true
}

// rebuild turns a record back into a fosite request, decoding the session
// into session when it is not nil. The client is read in the same
// transaction; a request of a deleted client is gone (fosite.ErrNotFound).
func (s *Store) rebuild(tx *bolt.Tx, rec *requestRecord, session fosite.Session) (*fosite.Request, error) {
	client, err := s.clients.find(tx, rec.ClientID)
	if errors.Is(err, ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return buildRequest(rec, client, session)
}

// buildRequest turns a record and its registered client back into a fosite
// request, decoding the session into session when it is not nil.
func buildRequest(rec *requestRecord, client fosite.Client, session fosite.Session) (*fosite.Request, error) {
	if session != nil {
		if err := rec.Session.decodeInto(session); err != nil {
			return nil, err
		}
	}
	form := rec.Form
	if form == nil {
		form = url.Values{}
	}
	return &fosite.Request{
		ID:                rec.ID,
		RequestedAt:       rec.RequestedAt,
		Client:            client,
		RequestedScope:    fosite.Arguments(rec.RequestedScopes),
		GrantedScope:      fosite.Arguments(rec.GrantedScopes),
		RequestedAudience: fosite.Arguments(rec.RequestedAudience),
		GrantedAudience:   fosite.Arguments(rec.GrantedAudience),
		Form:              form,
		Session:           session,
	}, nil
}

// decodeInto sets session to the stored one, as encoding/json decodes a
// session's JSON into it: a stored DefaultSession goes into a
// *fosite.DefaultSession field by field, merging its expiries and extra
// values into the maps session already holds (fosite reads a code's
// session into a request's session that already has the new tokens'
// expiries), and into any other type through its JSON.
func (st storedSession) decodeInto(session fosite.Session) error {
	switch {
	case st.Default != nil:
		if ds, ok := session.(*fosite.DefaultSession); ok {
			from := st.Default
			switch {
			case from.ExpiresAt == nil:
				ds.ExpiresAt = nil
			case ds.ExpiresAt == nil:
				ds.ExpiresAt = from.ExpiresAt
			default:
				maps.Copy(ds.ExpiresAt, from.ExpiresAt)
			}
			ds.Username, ds.Subject = from.Username, from.Subject
			switch {
			case from.Extra == nil:
				ds.Extra = nil
			case ds.Extra == nil:
				ds.Extra = from.Extra
			default:
				maps.Copy(ds.Extra, from.Extra)
			}
			return nil
		}
		raw, err := json.Marshal(st.Default)
		if err != nil {
			return fmt.Errorf("store: decode session: %w", err)
		}
		if err := json.Unmarshal(raw, session); err != nil {
			return fmt.Errorf("store: decode session: %w", err)
		}
	case len(st.JSON) > 0:
		if err := json.Unmarshal(st.JSON, session); err != nil {
			return fmt.Errorf("store: decode session: %w", err)
		}
	}
	return nil
}
