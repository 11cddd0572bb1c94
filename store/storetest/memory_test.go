package storetest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"

	"github.com/mcpd/mcpd/store/storetest"
)

// TestConformanceMemory runs the suite against fosite's own reference
// store: whatever the suite asks, fosite asks too.
func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Fixture {
		s := storage.NewMemoryStore()
		return storetest.Fixture{
			Storage: &serialMemory{m: s},
			AddClient: func(t *testing.T, id string) {
				s.Clients[id] = &fosite.DefaultClient{ID: id, Public: true}
			},
		}
	})
}

// serialMemory runs one call at a time on fosite's MemoryStore. fosite
// v0.49.0's RotateRefreshToken writes the RefreshTokens map while holding
// only the request-id mutex (storage/memory.go, RevokeRefreshToken), a data
// race that -race reports as soon as the concurrency rule runs. Serialising
// the calls keeps the rule's expectations checked against the reference
// without tripping over that upstream bug.
type serialMemory struct {
	mu sync.Mutex
	m  *storage.MemoryStore
}

func (s *serialMemory) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.GetClient(ctx, id)
}

func (s *serialMemory) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.ClientAssertionJWTValid(ctx, jti)
}

func (s *serialMemory) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.SetClientAssertionJWT(ctx, jti, exp)
}

func (s *serialMemory) CreateAuthorizeCodeSession(ctx context.Context, code string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.CreateAuthorizeCodeSession(ctx, code, req)
}

func (s *serialMemory) GetAuthorizeCodeSession(ctx context.Context, code string, sess fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.GetAuthorizeCodeSession(ctx, code, sess)
}

func (s *serialMemory) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.InvalidateAuthorizeCodeSession(ctx, code)
}

func (s *serialMemory) CreateAccessTokenSession(ctx context.Context, sig string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.CreateAccessTokenSession(ctx, sig, req)
}

func (s *serialMemory) GetAccessTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.GetAccessTokenSession(ctx, sig, sess)
}

func (s *serialMemory) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.DeleteAccessTokenSession(ctx, sig)
}

func (s *serialMemory) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.CreateRefreshTokenSession(ctx, sig, accessSig, req)
}

func (s *serialMemory) GetRefreshTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.GetRefreshTokenSession(ctx, sig, sess)
}

func (s *serialMemory) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.DeleteRefreshTokenSession(ctx, sig)
}

func (s *serialMemory) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.RotateRefreshToken(ctx, requestID, sig)
}

func (s *serialMemory) RevokeRefreshToken(ctx context.Context, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.RevokeRefreshToken(ctx, requestID)
}

func (s *serialMemory) RevokeAccessToken(ctx context.Context, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.RevokeAccessToken(ctx, requestID)
}

func (s *serialMemory) GetPKCERequestSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.GetPKCERequestSession(ctx, sig, sess)
}

func (s *serialMemory) CreatePKCERequestSession(ctx context.Context, sig string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.CreatePKCERequestSession(ctx, sig, req)
}

func (s *serialMemory) DeletePKCERequestSession(ctx context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.DeletePKCERequestSession(ctx, sig)
}
