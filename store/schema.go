package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the file. Keys joined from several parts use sep, which no
// id, name or subject may contain.
const (
	bucketMeta          = "meta"           // schema version, secrets
	bucketClients       = "clients"        // client id → clientRecord JSON
	bucketUsers         = "users"          // name → userRecord JSON
	bucketConsents      = "consents"       // user sep client id → consentRecord JSON
	bucketNotes         = "notes"          // owner sep note id → noteRecord JSON
	bucketCodes         = "codes"          // sighash → expiry + requestRecord JSON
	bucketAccess        = "access"         // sighash → expiry + requestRecord JSON
	bucketRefresh       = "refresh"        // sighash → expiry + requestRecord JSON
	bucketPKCE          = "pkce"           // sighash → expiry + requestRecord JSON
	bucketGrants        = "grants"         // request id sep kind sep sighash → nil
	bucketClientGrants  = "client_grants"  // client id sep request id → nil
	bucketSubjectGrants = "subject_grants" // subject sep request id → nil
	bucketJTIs          = "jtis"           // sha256(jti) → expiry
	bucketSuccessors    = "successors"     // sighash → expiry + sealed bytes
	bucketSessions      = "sessions"       // session id (a hash of the cookie) → expiry + sessionRecord JSON
	bucketPending       = "pending"        // pending authorization id → expiry + pendingRecord JSON

	bucketPasskeys         = "passkeys"          // credential id → passkeyRecord JSON
	bucketUserPasskeys     = "user_passkeys"     // user sep credential id → nil
	bucketWebAuthnSessions = "webauthn_sessions" // ceremony id → expiry + opaque ceremony data

	// Upstream identity providers (identity.go).
	bucketIdentities     = "identities"      // issuer sep subject → identityRecord JSON
	bucketUserIdentities = "user_identities" // user sep issuer sep subject → nil
	bucketUserEmails     = "user_emails"     // lower-case email → user name
	bucketUpstreamTokens = "upstream_tokens" // user sep provider → sealed bytes
	bucketIDPStates      = "idp_states"      // sighash(state) → expiry + opaque bytes
)

const sep = "\x00"

const keySchemaVersion = "schema_version"

// migrations returns the steps of the schema: step i moves a file from
// version i to version i+1. Append only; never edit a released step.
func migrations() []func(tx *bolt.Tx) error {
	return []func(tx *bolt.Tx) error{
		// 0 → 1: the initial layout.
		func(tx *bolt.Tx) error {
			for _, b := range []string{
				bucketClients, bucketUsers, bucketConsents, bucketNotes,
				bucketCodes, bucketAccess, bucketRefresh, bucketPKCE,
				bucketGrants, bucketClientGrants, bucketSubjectGrants,
				bucketJTIs, bucketSuccessors,
			} {
				if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
					return fmt.Errorf("create bucket %s: %w", b, err)
				}
			}
			return nil
		},
		// Login sessions and pending authorizations move from memory into
		// the file, so every process serving the issuer sees them.
		func(tx *bolt.Tx) error {
			for _, b := range []string{bucketSessions, bucketPending} {
				if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
					return fmt.Errorf("create bucket %s: %w", b, err)
				}
			}
			return nil
		},
		// Passkeys (WebAuthn credentials: public keys only) and the
		// server side of WebAuthn ceremonies.
		func(tx *bolt.Tx) error {
			for _, b := range []string{bucketPasskeys, bucketUserPasskeys, bucketWebAuthnSessions} {
				if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
					return fmt.Errorf("create bucket %s: %w", b, err)
				}
			}
			return nil
		},
		// Upstream identity providers: linked identities, user emails,
		// sealed upstream tokens and pending sign-ins. Idempotent, and
		// independent of every other step.
		func(tx *bolt.Tx) error {
			for _, b := range []string{
				bucketIdentities, bucketUserIdentities, bucketUserEmails,
				bucketUpstreamTokens, bucketIDPStates,
			} {
				if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
					return fmt.Errorf("create bucket %s: %w", b, err)
				}
			}
			return nil
		},
	}
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations()) }

// migrate brings the file to SchemaVersion, one step per transaction, and
// refuses a file written by a newer build.
func (s *Store) migrate() error {
	migrations := migrations()
	for {
		done := false
		err := s.db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
			if err != nil {
				return fmt.Errorf("create meta bucket: %w", err)
			}
			v := 0
			if raw := meta.Get([]byte(keySchemaVersion)); raw != nil {
				if len(raw) != 8 {
					return fmt.Errorf("corrupt schema version (%d bytes)", len(raw))
				}
				v = int(binary.BigEndian.Uint64(raw))
			}
			switch {
			case v > len(migrations):
				return fmt.Errorf("database schema version %d is newer than this mcpd understands (%d)", v, len(migrations))
			case v == len(migrations):
				done = true
				return nil
			}
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
			}
			s.log.Info("store: migrated schema", "from", v, "to", v+1)
			return meta.Put([]byte(keySchemaVersion), binary.BigEndian.AppendUint64(nil, uint64(v+1)))
		})
		if err != nil || done {
			return err
		}
	}
}

// bucket returns a bucket of the file; every one exists once Open has
// migrated.
func bucket(tx *bolt.Tx, name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }
