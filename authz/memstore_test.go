package authz

import (
	"context"
	"crypto/subtle"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"

	"github.com/mcpd/mcpd/internal/keymutex"
)

// memStore is the in-memory Storage the tests run against: fosite's own
// MemoryStore for the fosite contracts, maps for the rest.
type memStore struct {
	*storage.MemoryStore

	mu          sync.Mutex
	clients     map[string]*Client
	consents    map[string]Consent
	users       map[string]string
	successors  map[string]successorRecord
	fetches     int // successor reads, for tests that count
	sessions    map[string]LoginSession
	pending     map[string]PendingAuthorization
	touches     int                   // session touches, for tests that count
	grantTokens map[string][]tokenRef // request id → the tokens created for it
	passkeys    map[string]Passkey    // credential id → passkey
	ceremonies  map[string]memCeremony
	now         func() time.Time // the server's clock; nil: time.Now
	proofJTIs   map[string]time.Time
	keyLocks    *keymutex.Mutex
}

type successorRecord struct {
	sealed    []byte
	expiresAt time.Time
}

var _ Storage = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		MemoryStore: storage.NewMemoryStore(),
		clients:     make(map[string]*Client),
		consents:    make(map[string]Consent),
		users:       map[string]string{"alice": "correct horse", "bob": "battery staple"},
		successors:  make(map[string]successorRecord),
		proofJTIs:   make(map[string]time.Time),
		sessions:    make(map[string]LoginSession),
		pending:     make(map[string]PendingAuthorization),
		passkeys:    make(map[string]Passkey),
		ceremonies:  make(map[string]memCeremony),
		keyLocks:    &keymutex.Mutex{},
	}
}

func cloneClient(c *Client) *Client {
	cp := *c
	cp.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	cp.GrantTypes = append([]string(nil), c.GrantTypes...)
	cp.ResponseTypes = append([]string(nil), c.ResponseTypes...)
	cp.Scopes = append([]string(nil), c.Scopes...)
	cp.Contacts = append([]string(nil), c.Contacts...)
	return &cp
}

func (m *memStore) GetClient(_ context.Context, id string) (fosite.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[id]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return cloneClient(c), nil
}

func (m *memStore) CreateClient(_ context.Context, c *Client) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.clients[c.ID]; ok {
		return ErrAlreadyExists
	}
	m.clients[c.ID] = cloneClient(c)
	return nil
}

func (m *memStore) LookupClient(_ context.Context, id string) (*Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[id]
	if !ok {
		return nil, ErrNotFound
	}
	return cloneClient(c), nil
}

func (m *memStore) UpdateClient(_ context.Context, id string, fn func(*Client) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[id]
	if !ok {
		return ErrNotFound
	}
	cp := cloneClient(c)
	if err := fn(cp); err != nil {
		return err
	}
	m.clients[id] = cp
	return nil
}

func (m *memStore) DeleteClient(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.clients[id]; !ok {
		return ErrNotFound
	}
	delete(m.clients, id)
	return nil
}

func (m *memStore) CountClients(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.clients), nil
}

func (m *memStore) client(id string) *Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.clients[id]; ok {
		return cloneClient(c)
	}
	return nil
}

func (m *memStore) PutConsent(_ context.Context, c Consent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.consents[c.User+"\x00"+c.ClientID] = c
	return nil
}

func (m *memStore) GetConsent(_ context.Context, user, clientID string) (*Consent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.consents[user+"\x00"+clientID]
	if !ok {
		return nil, ErrNotFound
	}
	return &c, nil
}

func (m *memStore) Authenticate(_ context.Context, name, password string) error {
	m.mu.Lock()
	want, ok := m.users[name]
	m.mu.Unlock()
	if !ok {
		want = "\x00never matches"
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(password)) != 1 || !ok || want == "" {
		return ErrBadCredentials
	}
	return nil
}

func (m *memStore) UserExists(_ context.Context, name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.users[name]
	return ok, nil
}

func (m *memStore) PutRefreshSuccessor(_ context.Context, sig string, sealed []byte, expiresAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.successors[sig] = successorRecord{sealed: append([]byte(nil), sealed...), expiresAt: expiresAt}
	return nil
}

func (m *memStore) GetRefreshSuccessor(_ context.Context, sig string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches++
	r, ok := m.successors[sig]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte(nil), r.sealed...), nil
}

// RememberProofJTI keeps every key for good: the tests' proofs never
// outlive their clock.
func (m *memStore) RememberProofJTI(_ context.Context, key string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.proofJTIs[key]; ok {
		return ErrAlreadyExists
	}
	m.proofJTIs[key] = exp
	return nil
}

func (m *memStore) BeginTX(ctx context.Context) (context.Context, error) { return ctx, nil }
func (m *memStore) Commit(context.Context) error                         { return nil }
func (m *memStore) Rollback(context.Context) error                       { return nil }
func (m *memStore) Ping(context.Context) error                           { return nil }

// LockKey locks key for every Server sharing this store, as a database
// shared by several processes does.
func (m *memStore) LockKey(ctx context.Context, key string) (func(), error) {
	return m.keyLocks.Lock(key), nil
}

// LookupAccessToken answers from fosite's memory store what the bbolt store
// answers from its record, and ErrNotFound for a token whose client is
// gone, as the bbolt store does.
func (m *memStore) LookupAccessToken(ctx context.Context, signature string) (AccessTokenInfo, error) {
	req, err := m.MemoryStore.GetAccessTokenSession(ctx, signature, nil)
	if errors.Is(err, fosite.ErrNotFound) {
		return AccessTokenInfo{}, ErrNotFound
	}
	if err != nil {
		return AccessTokenInfo{}, err
	}
	if m.client(req.GetClient().GetID()) == nil {
		return AccessTokenInfo{}, ErrNotFound
	}
	info := AccessTokenInfo{
		ClientID:        req.GetClient().GetID(),
		GrantedScopes:   slices.Clone(req.GetGrantedScopes()),
		GrantedAudience: slices.Clone(req.GetGrantedAudience()),
		Active:          true,
	}
	if sess := req.GetSession(); sess != nil {
		info.Subject = sess.GetSubject()
		info.ExpiresAt = sess.GetExpiresAt(fosite.AccessToken)
		ds, _ := sess.(*fosite.DefaultSession)
		info.JKT = sessionJKT(ds)
	}
	return info, nil
}
