// Package keymutex serializes work per key inside one process: two
// refreshes of one token, two fetches of one metadata document, two
// writers of one user's sealed token. It is a leaf: it imports nothing of
// the project, so authz and the identity provider packages may both use
// it without knowing each other.
//
// It must not be mistaken for a lock across processes: replicas on one
// database serialize through the store's LockKey, not through this.
package keymutex
