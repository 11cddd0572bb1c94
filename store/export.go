package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sink receives the records of a store as Export reads them: what
// `mcpd migrate-to-postgres` copies into another backend.
type Sink interface {
	ImportSecret(ctx context.Context, name string, value []byte) error
	ImportUser(ctx context.Context, u User, passwordHash string) error
	ImportClient(ctx context.Context, c *Client) error
	ImportConsent(ctx context.Context, c Consent) error
	ImportNote(ctx context.Context, owner string, n Note) error
	ImportToken(ctx context.Context, t ExportedToken) error
	ImportJTI(ctx context.Context, key []byte, expiresAt time.Time) error
	ImportSuccessor(ctx context.Context, key, sealed []byte, expiresAt time.Time) error
	ImportPasskey(ctx context.Context, p Passkey) error
	ImportIdentity(ctx context.Context, id Identity) error
	ImportUpstreamToken(ctx context.Context, user, provider string, sealed []byte) error
}

// TokenKind names what a stored fosite request stands for.
type TokenKind string

// The kinds of stored fosite requests.
const (
	CodeToken    TokenKind = "code"    // an authorization code
	AccessToken  TokenKind = "access"  // an access token
	RefreshToken TokenKind = "refresh" // a refresh token
	PKCEToken    TokenKind = "pkce"    // the PKCE session of a code
)

// ExportedToken is one stored fosite request.
type ExportedToken struct {
	Kind   TokenKind
	Key    []byte // SigHash of the signature
	Active bool   // false for a used code or a rotated refresh token
	// Seq numbers a grant's rotated or revoked refresh tokens in the order
	// they were retired (newest highest; 0 for those of release v1), so
	// the importer prunes the same ones first.
	Seq     uint64
	Request EncodedRequest
}

// ExportCounts says how many records of each kind Export handed over.
type ExportCounts struct {
	Secrets, Users, Clients, Consents, Notes, Tokens, JTIs, Successors, Passkeys, Identities, UpstreamTokens int
}

// Export hands every record of the store to sink, read in one transaction
// so they are consistent: the server's secrets, users (with their password
// hashes), clients, unexpired consents, notes, and the codes, tokens, PKCE
// sessions, client-assertion JTIs and refresh successors that have not
// expired, users' passkeys, and what identity providers linked: identities
// and sealed upstream tokens (emails are part of the users). Nothing expired is copied, and no sign-in
// state (browser sessions, pending authorizations, WebAuthn ceremonies):
// people sign in again in the browser, clients keep their tokens.
func (s *Store) Export(ctx context.Context, sink Sink) (ExportCounts, error) {
	now := s.now()
	var n ExportCounts
	err := s.view(ctx, func(tx *bolt.Tx) error {
		steps := []func() error{
			func() error {
				return bucket(tx, bucketMeta).ForEach(func(k, v []byte) error {
					name, ok := strings.CutPrefix(string(k), "secret:")
					if !ok {
						return nil
					}
					n.Secrets++
					return sink.ImportSecret(ctx, name, bytes.Clone(v))
				})
			},
			func() error {
				return bucket(tx, bucketUsers).ForEach(func(_, v []byte) error {
					u, hash, err := DecodeUser(v)
					if err != nil {
						return err
					}
					n.Users++
					return sink.ImportUser(ctx, u, hash)
				})
			},
			func() error {
				return bucket(tx, bucketClients).ForEach(func(_, v []byte) error {
					c, err := decodeClient(v)
					if err != nil {
						return err
					}
					n.Clients++
					return sink.ImportClient(ctx, c)
				})
			},
			func() error {
				return bucket(tx, bucketConsents).ForEach(func(_, v []byte) error {
					c, err := decodeConsent(v)
					if err != nil || c.expired(now) {
						return err
					}
					n.Consents++
					return sink.ImportConsent(ctx, c)
				})
			},
			func() error {
				return bucket(tx, bucketNotes).ForEach(func(k, v []byte) error {
					owner, _, ok := strings.Cut(string(k), sep)
					if !ok {
						return fmt.Errorf("store: export: note key without owner")
					}
					note, err := decodeNote(v)
					if err != nil {
						return err
					}
					n.Notes++
					return sink.ImportNote(ctx, owner, note)
				})
			},
			func() error {
				for _, kind := range []struct {
					bucket string
					kind   TokenKind
				}{{bucketCodes, CodeToken}, {bucketAccess, AccessToken}, {bucketRefresh, RefreshToken}, {bucketPKCE, PKCEToken}} {
					err := bucket(tx, kind.bucket).ForEach(func(k, v []byte) error {
						if isExpired(v, now) {
							return nil
						}
						rec, err := decodeRequest(v)
						if err != nil {
							return err
						}
						if !rec.Active && !rec.Tombstone {
							// A used code or rotated refresh token of
							// release v1, kept whole: only its tombstone
							// is needed.
							rec = rec.tombstone(rec.Seq)
						}
						// Encoded afresh, not copied: the JSON every
						// backend reads, whatever form this file keeps.
						raw, err := rec.marshalJSON()
						if err != nil {
							return fmt.Errorf("store: export: %w", err)
						}
						n.Tokens++
						return sink.ImportToken(ctx, ExportedToken{
							Kind:   kind.kind,
							Key:    bytes.Clone(k),
							Active: rec.Active,
							Seq:    rec.Seq,
							Request: EncodedRequest{
								ID: rec.ID, ClientID: rec.ClientID, Subject: rec.Subject,
								ExpiresAt: rec.ExpiresAt, JSON: raw,
							},
						})
					})
					if err != nil {
						return err
					}
				}
				return nil
			},
			func() error {
				return bucket(tx, bucketJTIs).ForEach(func(k, v []byte) error {
					exp, ok := expiryOf(v)
					if !ok || !now.Before(exp) {
						return nil
					}
					n.JTIs++
					return sink.ImportJTI(ctx, bytes.Clone(k), exp)
				})
			},
			func() error {
				return bucket(tx, bucketPasskeys).ForEach(func(_, v []byte) error {
					var rec passkeyRecord
					if err := json.Unmarshal(v, &rec); err != nil {
						return fmt.Errorf("store: decode passkey: %w", err)
					}
					n.Passkeys++
					return sink.ImportPasskey(ctx, Passkey(rec))
				})
			},
			func() error {
				return bucket(tx, bucketIdentities).ForEach(func(_, v []byte) error {
					id, err := DecodeIdentity(v)
					if err != nil {
						return err
					}
					n.Identities++
					return sink.ImportIdentity(ctx, id)
				})
			},
			func() error {
				return bucket(tx, bucketUpstreamTokens).ForEach(func(k, v []byte) error {
					user, provider, ok := strings.Cut(string(k), sep)
					if !ok {
						return fmt.Errorf("store: export: upstream token key without provider")
					}
					n.UpstreamTokens++
					return sink.ImportUpstreamToken(ctx, user, provider, bytes.Clone(v))
				})
			},
			func() error {
				return bucket(tx, bucketSuccessors).ForEach(func(k, v []byte) error {
					exp, ok := expiryOf(v)
					if !ok || !now.Before(exp) {
						return nil
					}
					n.Successors++
					return sink.ImportSuccessor(ctx, bytes.Clone(k), bytes.Clone(v[8:]), exp)
				})
			},
		}
		for _, step := range steps {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ExportCounts{}, fmt.Errorf("export: %w", err)
	}
	return n, nil
}
