package authz

import (
	"context"
	"sort"
	"time"
)

// The sign-in records of memStore: sessions and pending authorizations,
// with the store's expiry and cap rules (store/storetest checks the real
// stores against the same rules).

func (m *memStore) clockNow() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

func (m *memStore) CreateSession(_ context.Context, s LoginSession, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clockNow()
	if old, ok := m.sessions[s.ID]; ok && now.Before(old.ExpiresAt) {
		return ErrAlreadyExists
	}
	if max > 0 && len(m.sessions) >= max {
		evict(m.sessions, max, now, func(s LoginSession) time.Time { return s.ExpiresAt })
	}
	m.sessions[s.ID] = s
	return nil
}

func (m *memStore) GetSession(_ context.Context, id string) (LoginSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || !m.clockNow().Before(s.ExpiresAt) {
		return LoginSession{}, ErrNotFound
	}
	return s, nil
}

func (m *memStore) TouchSession(_ context.Context, id string, lastSeen, expiresAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || !m.clockNow().Before(s.ExpiresAt) {
		return ErrNotFound
	}
	m.touches++
	s.LastSeen, s.ExpiresAt = lastSeen, expiresAt
	m.sessions[id] = s
	return nil
}

func (m *memStore) DeleteSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[id]; !ok {
		return ErrNotFound
	}
	delete(m.sessions, id)
	return nil
}

func (m *memStore) DeleteUserSessions(_ context.Context, user, keep string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.sessions {
		if s.User == user && id != keep {
			delete(m.sessions, id)
			n++
		}
	}
	return n, nil
}

// sessionsOf returns the live sessions of user.
func (m *memStore) sessionsOf(user string) []LoginSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []LoginSession
	for _, s := range m.sessions {
		if s.User == user && m.clockNow().Before(s.ExpiresAt) {
			out = append(out, s)
		}
	}
	return out
}

func (m *memStore) PutPendingAuthorization(_ context.Context, p PendingAuthorization, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.pending[p.ID]; !ok && max > 0 && len(m.pending) >= max {
		evict(m.pending, max, m.clockNow(), func(p PendingAuthorization) time.Time { return p.ExpiresAt })
	}
	m.pending[p.ID] = p
	return nil
}

func (m *memStore) GetPendingAuthorization(_ context.Context, id string) (PendingAuthorization, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pending[id]
	if !ok || !m.clockNow().Before(p.ExpiresAt) {
		return PendingAuthorization{}, ErrNotFound
	}
	return p, nil
}

func (m *memStore) TakePendingAuthorization(_ context.Context, id string) (PendingAuthorization, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pending[id]
	if !ok || !m.clockNow().Before(p.ExpiresAt) {
		return PendingAuthorization{}, ErrNotFound
	}
	delete(m.pending, id)
	return p, nil
}

// evict makes room in a capped map as the store does: expired entries go,
// then those closest to their expiry, until nine tenths of max remain.
func evict[V any](m map[string]V, max int, now time.Time, expiry func(V) time.Time) {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return expiry(m[ids[i]]).Before(expiry(m[ids[j]])) })
	for i, id := range ids {
		if len(ids)-i <= max*9/10 && now.Before(expiry(m[id])) {
			break
		}
		delete(m, id)
	}
}
