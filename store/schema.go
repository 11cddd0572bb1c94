package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the file. Keys joined from several parts use sep, which no
// id, name or subject may contain.
var (
	bucketMeta          = []byte("meta")           // schema version, secrets
	bucketClients       = []byte("clients")        // client id → clientRecord JSON
	bucketUsers         = []byte("users")          // name → userRecord JSON
	bucketConsents      = []byte("consents")       // user sep client id → consentRecord JSON
	bucketNotes         = []byte("notes")          // owner sep note id → noteRecord JSON
	bucketCodes         = []byte("codes")          // sighash → expiry + requestRecord JSON
	bucketAccess        = []byte("access")         // sighash → expiry + requestRecord JSON
	bucketRefresh       = []byte("refresh")        // sighash → expiry + requestRecord JSON
	bucketPKCE          = []byte("pkce")           // sighash → expiry + requestRecord JSON
	bucketGrants        = []byte("grants")         // request id sep kind sep sighash → nil
	bucketClientGrants  = []byte("client_grants")  // client id sep request id → nil
	bucketSubjectGrants = []byte("subject_grants") // subject sep request id → nil
	bucketJTIs          = []byte("jtis")           // sha256(jti) → expiry
	bucketSuccessors    = []byte("successors")     // sighash → expiry + sealed bytes
)

const sep = "\x00"

var keySchemaVersion = []byte("schema_version")

// migrations returns the steps of the schema: step i moves a file from
// version i to version i+1. Append only; never edit a released step.
func migrations() []func(tx *bolt.Tx) error {
	return []func(tx *bolt.Tx) error{
		// 0 → 1: the initial layout.
		func(tx *bolt.Tx) error {
			for _, b := range [][]byte{
				bucketClients, bucketUsers, bucketConsents, bucketNotes,
				bucketCodes, bucketAccess, bucketRefresh, bucketPKCE,
				bucketGrants, bucketClientGrants, bucketSubjectGrants,
				bucketJTIs, bucketSuccessors,
			} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
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
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return fmt.Errorf("create meta bucket: %w", err)
			}
			v := 0
			if raw := meta.Get(keySchemaVersion); raw != nil {
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
			return meta.Put(keySchemaVersion, binary.BigEndian.AppendUint64(nil, uint64(v+1)))
		})
		if err != nil || done {
			return err
		}
	}
}
