package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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

// requestRecord is a fosite request flattened for storage.
type requestRecord struct {
	ID                string          `json:"id"`
	ClientID          string          `json:"client_id"`
	Subject           string          `json:"subject,omitempty"`
	RequestedAt       time.Time       `json:"requested_at"`
	RequestedScopes   []string        `json:"requested_scopes,omitempty"`
	GrantedScopes     []string        `json:"granted_scopes,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session,omitempty"`
	Active            bool            `json:"active"`
	ExpiresAt         time.Time       `json:"expires_at"` // zero: the session set none
	// ConfirmationJKT is the thumbprint of the DPoP key the token is
	// bound to (the session's cnf.jkt claim); empty for a bearer token.
	ConfirmationJKT string `json:"cnf_jkt,omitempty"`
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
		raw, err := json.Marshal(sess)
		if err != nil {
			return nil, fmt.Errorf("store: encode session: %w", err)
		}
		rec.Session = raw
	}
	return rec, nil
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

// encodeRequest lays a record out as 8 bytes of expiry (Unix nanoseconds,
// 0 for none) followed by its JSON, so the janitor reads expiries without
// decoding.
func encodeRequest(rec *requestRecord) ([]byte, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("store: encode request: %w", err)
	}
	return append(expiryPrefix(rec.ExpiresAt), raw...), nil
}

func decodeRequest(v []byte) (*requestRecord, error) {
	if len(v) < 8 {
		return nil, errors.New("store: corrupt request record")
	}
	var rec requestRecord
	if err := json.Unmarshal(v[8:], &rec); err != nil {
		return nil, fmt.Errorf("store: decode request: %w", err)
	}
	return &rec, nil
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
	if session != nil && len(rec.Session) > 0 {
		if err := json.Unmarshal(rec.Session, session); err != nil {
			return nil, fmt.Errorf("store: decode session: %w", err)
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
