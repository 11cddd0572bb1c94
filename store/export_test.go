package store

import (
	"context"
	"encoding/json"
)

// GroupCommitState reports the commits the group commit has made and the
// writers waiting for the writer slot.
func (s *Store) GroupCommitState() (commits, queued int) {
	s.gc.mu.Lock()
	defer s.gc.mu.Unlock()
	return s.gc.commits, s.gc.queued
}

// CachedTokens reports how many access tokens the token cache holds.
func (s *Store) CachedTokens() int {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	return len(s.tokens.m)
}

// SetTokenLookupHook makes every LookupAccessToken that missed the cache
// call fn after reading the database and before caching what it read.
func (s *Store) SetTokenLookupHook(fn func()) { s.tokens.afterRead = fn }

// CreatePasswordlessUser adds a user without a password, as a sign-up
// through an identity provider makes one.
func (s *Store) CreatePasswordlessUser(ctx context.Context, name string) error {
	now := s.now().UTC()
	v, err := json.Marshal(userRecord{Name: name, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *wtx) error { return tx.bucket(bucketUsers).Put([]byte(name), v) })
}
