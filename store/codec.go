package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ory/fosite"
)

// The encodings below are the records as every backend stores them: the
// bbolt store here and store/postgres write the same JSON, so a field added
// to a record is kept by both without a second copy of its encoding, and
// migrate-to-postgres copies records as they are.

// SigHash returns the SHA-256 of a token signature or a JTI: the key under
// which every backend stores it, so no database holds a signature.
func SigHash(signature string) []byte { return sighash(signature) }

// ProofJTIKey returns the key under which every backend stores a DPoP
// proof record (RememberProofJTI), apart from client-assertion JTIs.
func ProofJTIKey(key string) []byte { return proofJTIKey(key) }

// EncodedRequest is a fosite request flattened for storage: the fields a
// backend indexes and the JSON of the whole record (secrets left out of the
// form, the session as JSON).
type EncodedRequest struct {
	ID        string
	ClientID  string
	Subject   string
	ExpiresAt time.Time // the session's expiry of the token type; zero: none
	JSON      []byte
}

// EncodeRequest flattens req; tokenType picks the expiry from the session.
// Ids, client ids and subjects must be free of NUL bytes.
func EncodeRequest(req fosite.Requester, tokenType fosite.TokenType) (EncodedRequest, error) {
	rec, err := newRequestRecord(req, tokenType)
	if err != nil {
		return EncodedRequest{}, err
	}
	raw, err := rec.marshalJSON()
	if err != nil {
		return EncodedRequest{}, err
	}
	return EncodedRequest{ID: rec.ID, ClientID: rec.ClientID, Subject: rec.Subject, ExpiresAt: rec.ExpiresAt, JSON: raw}, nil
}

// DecodeRequest rebuilds a fosite request from the JSON EncodeRequest
// made, with client as its registered client, decoding the session into
// session when it is not nil.
func DecodeRequest(raw []byte, client fosite.Client, session fosite.Session) (*fosite.Request, error) {
	rec, err := unmarshalJSONRecord(raw)
	if err != nil {
		return nil, err
	}
	return buildRequest(rec, client, session)
}

// Tombstone returns what a backend keeps, as the JSON EncodeRequest
// makes, of the request raw holds once its code is used or its refresh
// token rotated or revoked: the grant, client, subject and expiry, the DPoP
// binding and the session's extra claims (which decide whether a reuse may
// revoke the grant), inactive. The bbolt store keeps the same fields in its
// lean form.
func Tombstone(raw []byte) ([]byte, error) {
	rec, err := unmarshalJSONRecord(raw)
	if err != nil {
		return nil, err
	}
	return rec.tombstone(0).marshalJSON()
}

// DecodeAccessTokenInfo reads the AccessTokenInfo of an access token from
// the JSON EncodeRequest made, without decoding the form or the session.
func DecodeAccessTokenInfo(raw []byte) (AccessTokenInfo, error) {
	return decodeAccessTokenInfoJSON(raw)
}

// EncodeClient returns the stored form of c.
func EncodeClient(c *Client) ([]byte, error) {
	raw, err := json.Marshal(clientRecord(*c))
	if err != nil {
		return nil, fmt.Errorf("store: encode client: %w", err)
	}
	return raw, nil
}

// DecodeClient reads what EncodeClient wrote.
func DecodeClient(raw []byte) (*Client, error) { return decodeClient(raw) }

// Clone returns a copy of c with slices of its own.
func (c *Client) Clone() *Client { return c.clone() }

// Clone returns a copy of info with slices of its own, as a token cache
// hands it out.
func (info AccessTokenInfo) Clone() AccessTokenInfo { return info.clone() }

// ValidClientID reports whether id can name a client: set and free of NUL
// bytes.
func ValidClientID(id string) bool { return id != "" && !strings.Contains(id, sep) }

// CheckNewUser returns ErrInvalidUser for an empty password or a name that
// is empty or holds white space, ':' or a control character.
func CheckNewUser(name, password string) error {
	if !validUserName(name) || password == "" {
		return ErrInvalidUser
	}
	return nil
}

// HashPassword returns the argon2id hash every backend stores.
func HashPassword(password string) (string, error) { return hashPassword(password) }

// CheckPassword returns nil when password matches hash and
// ErrBadCredentials when it does not, comparing in constant time.
func CheckPassword(hash, password string) error {
	ok, err := verifyPassword(hash, password)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBadCredentials
	}
	return nil
}

// BurnPassword spends the time of one CheckPassword, for an unknown user
// name, so it costs what a wrong password costs.
func BurnPassword(password string) { burnPassword(password) }

// EncodeUser returns the stored form of a user and its password hash ("":
// none, the user signs in only through an identity provider).
func EncodeUser(u User, passwordHash string) ([]byte, error) {
	raw, err := json.Marshal(userRecord{Name: u.Name, PasswordHash: passwordHash, Email: u.Email, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt})
	if err != nil {
		return nil, fmt.Errorf("store: encode user: %w", err)
	}
	return raw, nil
}

// DecodeUser reads what EncodeUser wrote.
func DecodeUser(raw []byte) (u User, passwordHash string, err error) {
	var rec userRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return User{}, "", fmt.Errorf("store: decode user: %w", err)
	}
	return User{Name: rec.Name, Email: rec.Email, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt}, rec.PasswordHash, nil
}

// ValidUserName reports whether name can name a user: UTF-8, not empty,
// without white space, ':' or control characters.
func ValidUserName(name string) bool { return validUserName(name) }

// EncodeIdentity returns the stored form of a linked identity.
func EncodeIdentity(id Identity) ([]byte, error) { return json.Marshal(identityRecord(id)) }

// DecodeIdentity reads what EncodeIdentity wrote.
func DecodeIdentity(raw []byte) (Identity, error) {
	var rec identityRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return Identity{}, fmt.Errorf("store: decode identity: %w", err)
	}
	return Identity(rec), nil
}

// CheckIdentity returns an error unless id has an issuer and a subject free
// of NUL bytes, a provider and a user.
func CheckIdentity(id Identity) error {
	if !validIdentityKey(id.Issuer, id.Subject) || id.Provider == "" || strings.Contains(id.User, sep) {
		return errors.New("store: an identity needs an issuer, a subject, a provider and a user")
	}
	return nil
}

// EncodeConsent returns the stored form of c.
func EncodeConsent(c Consent) ([]byte, error) {
	raw, err := json.Marshal(consentRecord(c))
	if err != nil {
		return nil, fmt.Errorf("store: encode consent: %w", err)
	}
	return raw, nil
}

// DecodeConsent reads what EncodeConsent wrote.
func DecodeConsent(raw []byte) (Consent, error) { return decodeConsent(raw) }

// CheckConsent returns an error unless c names a user and a client id,
// both free of NUL bytes.
func CheckConsent(c Consent) error {
	if c.User == "" || c.ClientID == "" || strings.Contains(c.User, sep) || strings.Contains(c.ClientID, sep) {
		return errors.New("store: consent needs a user and a client id")
	}
	return nil
}

// Expired reports whether the consent has expired at now.
func (c Consent) Expired(now time.Time) bool { return c.expired(now) }

// EncodeNote returns the stored form of n.
func EncodeNote(n Note) ([]byte, error) {
	raw, err := json.Marshal(noteRecord(n))
	if err != nil {
		return nil, fmt.Errorf("store: encode note: %w", err)
	}
	return raw, nil
}

// DecodeNote reads what EncodeNote wrote.
func DecodeNote(raw []byte) (Note, error) { return decodeNote(raw) }

// CheckNoteOwner returns an error unless owner can own notes.
func CheckNoteOwner(owner string) error { return validOwner(owner) }

// ValidNoteID reports whether id can name a stored note.
func ValidNoteID(id string) bool { return id != "" && !strings.Contains(id, sep) }

// NewNoteID returns a fresh random note id.
func NewNoteID() (string, error) { return newNoteID() }

// EncodeSession returns the stored form of a login session.
func EncodeSession(s LoginSession) ([]byte, error) { return json.Marshal(sessionRecord(s)) }

// DecodeSession reads what EncodeSession wrote.
func DecodeSession(raw []byte) (LoginSession, error) {
	var rec sessionRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return LoginSession{}, fmt.Errorf("store: decode session: %w", err)
	}
	return LoginSession(rec), nil
}

// CheckSession returns an error unless s has an id, a user free of NUL
// bytes and an expiry.
func CheckSession(s LoginSession) error {
	if s.ID == "" || s.User == "" || strings.Contains(s.User, sep) || s.ExpiresAt.IsZero() {
		return errors.New("store: a session needs an id, a user and an expiry")
	}
	return nil
}

// EncodePending returns the stored form of a pending authorization.
func EncodePending(p PendingAuthorization) ([]byte, error) { return json.Marshal(pendingRecord(p)) }

// DecodePending reads what EncodePending wrote.
func DecodePending(raw []byte) (PendingAuthorization, error) {
	var rec pendingRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return PendingAuthorization{}, fmt.Errorf("store: decode pending authorization: %w", err)
	}
	return PendingAuthorization(rec), nil
}

// EncodePasskey returns the stored form of a passkey.
func EncodePasskey(p Passkey) ([]byte, error) { return json.Marshal(passkeyRecord(p)) }

// DecodePasskey reads what EncodePasskey wrote.
func DecodePasskey(raw []byte) (Passkey, error) {
	var rec passkeyRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return Passkey{}, fmt.Errorf("store: decode passkey: %w", err)
	}
	return Passkey(rec), nil
}

// CheckPasskey returns an error unless p has an id of 1 to 1023 bytes, a
// public key and a user free of NUL bytes.
func CheckPasskey(p Passkey) error {
	if len(p.ID) == 0 || len(p.ID) > maxCredentialID || len(p.PublicKey) == 0 || p.User == "" || strings.Contains(p.User, sep) {
		return errors.New("store: a passkey needs an id, a public key and a user")
	}
	return nil
}

// SortPasskeys orders passkeys oldest first, then by id, as ListPasskeys
// answers.
func SortPasskeys(ps []Passkey) {
	slices.SortStableFunc(ps, func(a, b Passkey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID, b.ID)
	})
}

// RoomToKeep is how many records of a capped kind (sessions, pending
// authorizations, WebAuthn ceremonies) are kept when a new one finds max
// or more: expired ones go first, then those closest to their expiry.
func RoomToKeep(max int) int { return max * 9 / 10 }

// SelectNotes returns the notes in which every word of query appears,
// case-insensitively, in the title, the body or a tag, most recently
// updated first (then by id): what SearchNotes answers, from all of an
// owner's notes. An empty query matches every note.
func SelectNotes(notes []Note, query string) []Note {
	words := strings.Fields(strings.ToLower(query))
	out := make([]Note, 0, len(notes))
	for _, n := range notes {
		if n.matches(words) {
			out = append(out, n)
		}
	}
	sortNotes(out)
	return out
}

func sortNotes(notes []Note) {
	sort.SliceStable(notes, func(i, j int) bool {
		if !notes[i].UpdatedAt.Equal(notes[j].UpdatedAt) {
			return notes[i].UpdatedAt.After(notes[j].UpdatedAt)
		}
		return notes[i].ID < notes[j].ID
	})
}

// SortClients orders clients oldest first, then by id, as ListClients
// answers.
func SortClients(clients []*Client) {
	sort.SliceStable(clients, func(i, j int) bool {
		if !clients[i].CreatedAt.Equal(clients[j].CreatedAt) {
			return clients[i].CreatedAt.Before(clients[j].CreatedAt)
		}
		return clients[i].ID < clients[j].ID
	})
}
