package authz

import (
	"context"
	"sort"
	"time"

	"github.com/ory/fosite"
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
		evictFair(m.sessions, max, now)
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

// evictFair is evict for sessions as the store does it: the sessions of
// the users holding the most go first, each user's closest to expiry first.
func evictFair(m map[string]LoginSession, max int, now time.Time) {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	rank := map[string]int{}
	sort.Slice(ids, func(i, j int) bool { return m[ids[i]].ExpiresAt.After(m[ids[j]].ExpiresAt) })
	seen := map[string]int{}
	for _, id := range ids {
		seen[m[id].User]++
		rank[id] = seen[m[id].User]
	}
	sort.SliceStable(ids, func(i, j int) bool {
		if rank[ids[i]] != rank[ids[j]] {
			return rank[ids[i]] > rank[ids[j]]
		}
		return m[ids[i]].ExpiresAt.Before(m[ids[j]].ExpiresAt)
	})
	for i, id := range ids {
		if len(ids)-i <= max*9/10 && now.Before(m[id].ExpiresAt) {
			break
		}
		delete(m, id)
	}
}

// The account page's records of memStore: consents listed and deleted,
// passwords, and each user's grants, which memStore follows by the tokens
// created through it.

func (m *memStore) ListConsents(_ context.Context, user string) ([]Consent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Consent
	for _, c := range m.consents {
		if c.User == user && (c.ExpiresAt.IsZero() || m.clockNow().Before(c.ExpiresAt)) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}

func (m *memStore) DeleteConsent(_ context.Context, user, clientID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := user + "\x00" + clientID
	if _, ok := m.consents[k]; !ok {
		return ErrNotFound
	}
	delete(m.consents, k)
	return nil
}

func (m *memStore) HasPassword(_ context.Context, name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pw, ok := m.users[name]
	if !ok {
		return false, ErrNotFound
	}
	return pw != "", nil
}

func (m *memStore) SetPassword(_ context.Context, name, password string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[name]; !ok {
		return ErrNotFound
	}
	m.users[name] = password
	return nil
}

type tokenRef struct {
	refresh   bool
	signature string
}

func (m *memStore) trackToken(requestID string, ref tokenRef) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.grantTokens == nil {
		m.grantTokens = map[string][]tokenRef{}
	}
	m.grantTokens[requestID] = append(m.grantTokens[requestID], ref)
}

func (m *memStore) CreateAccessTokenSession(ctx context.Context, sig string, req fosite.Requester) error {
	m.trackToken(req.GetID(), tokenRef{signature: sig})
	return m.MemoryStore.CreateAccessTokenSession(ctx, sig, req)
}

func (m *memStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, req fosite.Requester) error {
	m.trackToken(req.GetID(), tokenRef{refresh: true, signature: sig})
	return m.MemoryStore.CreateRefreshTokenSession(ctx, sig, accessSig, req)
}

// liveGrants returns, by request id, the request of the newest live token
// of each grant.
func (m *memStore) liveGrants(ctx context.Context) map[string]fosite.Requester {
	m.mu.Lock()
	refs := make(map[string][]tokenRef, len(m.grantTokens))
	for id, r := range m.grantTokens {
		refs[id] = append([]tokenRef(nil), r...)
	}
	m.mu.Unlock()
	now := m.clockNow()
	out := map[string]fosite.Requester{}
	for id, rs := range refs {
		var best fosite.Requester
		for _, r := range rs {
			var req fosite.Requester
			var err error
			typ := fosite.AccessToken
			if r.refresh {
				typ = fosite.RefreshToken
				req, err = m.MemoryStore.GetRefreshTokenSession(ctx, r.signature, nil)
			} else {
				req, err = m.MemoryStore.GetAccessTokenSession(ctx, r.signature, nil)
			}
			if err != nil || req.GetSession() == nil {
				continue
			}
			if exp := req.GetSession().GetExpiresAt(typ); !exp.IsZero() && !now.Before(exp) {
				continue
			}
			if m.client(req.GetClient().GetID()) == nil {
				continue
			}
			if best == nil || !req.GetRequestedAt().Before(best.GetRequestedAt()) {
				best = req
			}
		}
		if best != nil {
			out[id] = best
		}
	}
	return out
}

func (m *memStore) ListSubjectGrants(ctx context.Context, subject string, _ func() fosite.Session) ([]fosite.Requester, error) {
	var out []fosite.Requester
	for _, req := range m.liveGrants(ctx) {
		if req.GetSession().GetSubject() == subject {
			out = append(out, req)
		}
	}
	return out, nil
}

func (m *memStore) RevokeSubjectClientGrants(ctx context.Context, subject, clientID string) (int, error) {
	n := 0
	for id, req := range m.liveGrants(ctx) {
		if req.GetSession().GetSubject() != subject || req.GetClient().GetID() != clientID {
			continue
		}
		if err := m.MemoryStore.RevokeAccessToken(ctx, id); err != nil {
			return n, err
		}
		if err := m.MemoryStore.RevokeRefreshToken(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Passkeys and WebAuthn ceremonies of memStore.

func clonePasskey(p Passkey) Passkey {
	p.ID = append([]byte(nil), p.ID...)
	p.PublicKey = append([]byte(nil), p.PublicKey...)
	p.AAGUID = append([]byte(nil), p.AAGUID...)
	p.Transports = append([]string(nil), p.Transports...)
	return p
}

func (m *memStore) CreatePasskey(_ context.Context, p Passkey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[p.User]; !ok {
		return ErrNotFound
	}
	if _, ok := m.passkeys[string(p.ID)]; ok {
		return ErrAlreadyExists
	}
	m.passkeys[string(p.ID)] = clonePasskey(p)
	return nil
}

func (m *memStore) GetPasskey(_ context.Context, id []byte) (Passkey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.passkeys[string(id)]
	if !ok {
		return Passkey{}, ErrNotFound
	}
	return clonePasskey(p), nil
}

func (m *memStore) ListPasskeys(_ context.Context, user string) ([]Passkey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Passkey
	for _, p := range m.passkeys {
		if p.User == user {
			out = append(out, clonePasskey(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

func (m *memStore) UpdatePasskey(_ context.Context, id []byte, fn func(*Passkey) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.passkeys[string(id)]
	if !ok {
		return ErrNotFound
	}
	cp := clonePasskey(p)
	if err := fn(&cp); err != nil {
		return err
	}
	cp.ID, cp.User = p.ID, p.User
	m.passkeys[string(id)] = cp
	return nil
}

func (m *memStore) DeletePasskey(_ context.Context, user string, id []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.passkeys[string(id)]
	if !ok || p.User != user {
		return ErrNotFound
	}
	delete(m.passkeys, string(id))
	return nil
}

type memCeremony struct {
	data      []byte
	expiresAt time.Time
}

func (m *memStore) PutWebAuthnSession(_ context.Context, id string, data []byte, expiresAt time.Time, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ceremonies[id]; !ok && max > 0 && len(m.ceremonies) >= max {
		evict(m.ceremonies, max, m.clockNow(), func(c memCeremony) time.Time { return c.expiresAt })
	}
	m.ceremonies[id] = memCeremony{data: append([]byte(nil), data...), expiresAt: expiresAt}
	return nil
}

func (m *memStore) TakeWebAuthnSession(_ context.Context, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.ceremonies[id]
	if !ok || !m.clockNow().Before(c.expiresAt) {
		return nil, ErrNotFound
	}
	delete(m.ceremonies, id)
	return c.data, nil
}
