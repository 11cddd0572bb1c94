package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ory/fosite"
	bolt "go.etcd.io/bbolt"
)

// Client sources: how the authorization server came to know a client.
const (
	SourceDynamic  = "dynamic"  // RFC 7591 registration
	SourceMetadata = "metadata" // client ID metadata document
	SourceStatic   = "static"   // configured by the operator
)

// Client is one OAuth client registration. Its fields match authz.Client
// one for one, so the two convert into each other.
type Client struct {
	ID                      string
	SecretHash              []byte // empty for public clients
	Name                    string
	URI                     string
	LogoURI                 string
	RedirectURIs            []string
	GrantTypes              []string
	ResponseTypes           []string
	Scopes                  []string
	TokenEndpointAuthMethod string // none, client_secret_basic, client_secret_post
	ApplicationType         string // native or web
	Contacts                []string
	Source                  string // SourceDynamic, SourceMetadata or SourceStatic
	MetadataURL             string // for SourceMetadata: the document URL (= ID)
	RegistrationTokenHash   []byte // RFC 7592 registration access token, hashed
	CreatedAt               time.Time
	LastUsedAt              time.Time // last token issued
	ActivatedAt             time.Time // first completed authorization; zero until then
	// DPoPBoundAccessTokens: the client registered that it always uses
	// DPoP (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool
}

var _ fosite.Client = (*Client)(nil)

// GetID returns the client id.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret returns the hashed client secret.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs returns the registered redirect URIs.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes returns the registered grant types.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes returns the registered response types.
func (c *Client) GetResponseTypes() fosite.Arguments { return c.ResponseTypes }

// GetScopes returns the scopes the client may ask for.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic reports whether the client has no secret.
func (c *Client) IsPublic() bool { return c.TokenEndpointAuthMethod == "none" }

// GetAudience returns nil: audiences are granted from RFC 8707 resources.
func (c *Client) GetAudience() fosite.Arguments { return nil }

// clientRecord is the stored form of a Client; same fields, JSON names.
type clientRecord struct {
	ID                      string    `json:"id"`
	SecretHash              []byte    `json:"secret_hash,omitempty"`
	Name                    string    `json:"name,omitempty"`
	URI                     string    `json:"uri,omitempty"`
	LogoURI                 string    `json:"logo_uri,omitempty"`
	RedirectURIs            []string  `json:"redirect_uris,omitempty"`
	GrantTypes              []string  `json:"grant_types,omitempty"`
	ResponseTypes           []string  `json:"response_types,omitempty"`
	Scopes                  []string  `json:"scopes,omitempty"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method,omitempty"`
	ApplicationType         string    `json:"application_type,omitempty"`
	Contacts                []string  `json:"contacts,omitempty"`
	Source                  string    `json:"source,omitempty"`
	MetadataURL             string    `json:"metadata_url,omitempty"`
	RegistrationTokenHash   []byte    `json:"registration_token_hash,omitempty"`
	CreatedAt               time.Time `json:"created_at"`
	LastUsedAt              time.Time `json:"last_used_at"`
	ActivatedAt             time.Time `json:"activated_at"`
	DPoPBoundAccessTokens   bool      `json:"dpop_bound_access_tokens,omitempty"`
}

// GetClient returns the *Client registered under id, or fosite.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.LookupClient(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// CreateClient registers c; CreatedAt defaults to now. ErrAlreadyExists
// when the id is taken.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	if c == nil || c.ID == "" || strings.Contains(c.ID, sep) {
		return errors.New("store: client id must be set and free of NUL bytes")
	}
	rec := clientRecord(*c)
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = s.now().UTC()
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("store: encode client: %w", err)
	}
	return s.update(ctx, func(tx *wtx) error {
		b := tx.bucket(bucketClients)
		if b.Get([]byte(c.ID)) != nil {
			return ErrAlreadyExists
		}
		return b.Put([]byte(c.ID), v)
	})
}

// LookupClient returns the client registered under id, or ErrNotFound.
func (s *Store) LookupClient(ctx context.Context, id string) (*Client, error) {
	var c *Client
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		c, err = findClient(tx, id)
		return err
	})
	return c, err
}

// UpdateClient applies fn to the client registered under id and stores the
// result in one transaction; an error from fn aborts the update. The id
// cannot change. ErrNotFound when there is no such client.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(*Client) error) error {
	return s.update(ctx, func(tx *wtx) error {
		c, err := findClient(tx.tx, id)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		if c.ID != id {
			return errors.New("store: a client's id cannot change")
		}
		v, err := json.Marshal(clientRecord(*c))
		if err != nil {
			return fmt.Errorf("store: encode client: %w", err)
		}
		return tx.bucket(bucketClients).Put([]byte(id), v)
	})
}

// DeleteClient removes the client, ends every grant of it (its tokens stop
// working at once) and deletes the consents given to it. ErrNotFound when
// there is no such client.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *wtx) error { return deleteClient(tx, id) })
}

// ListClients returns every client, oldest first.
func (s *Store) ListClients(ctx context.Context) ([]*Client, error) {
	var out []*Client
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		return bucket(tx, bucketClients).ForEach(func(_, v []byte) error {
			c, err := decodeClient(v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// CountClients returns the number of registered clients.
func (s *Store) CountClients(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bolt.Tx) error {
		n = bucket(tx, bucketClients).Stats().KeyN
		return nil
	})
	return n, err
}

func findClient(tx *bolt.Tx, id string) (*Client, error) {
	v := bucket(tx, bucketClients).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeClient(v)
}

func decodeClient(v []byte) (*Client, error) {
	var rec clientRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("store: decode client: %w", err)
	}
	c := Client(rec)
	return &c, nil
}

func deleteClient(tx *wtx, id string) error {
	b := tx.bucket(bucketClients)
	if b.Get([]byte(id)) == nil {
		return ErrNotFound
	}
	if err := b.Delete([]byte(id)); err != nil {
		return err
	}
	if _, err := revokeIndexed(tx, bucketClientGrants, id); err != nil {
		return err
	}
	// Consents are keyed by user first: scan them all for this client.
	var doomed [][]byte
	suffix := []byte(sep + id)
	err := tx.bucket(bucketConsents).ForEach(func(k, _ []byte) error {
		if bytes.HasSuffix(k, suffix) {
			doomed = append(doomed, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range doomed {
		if err := tx.bucket(bucketConsents).Delete(k); err != nil {
			return err
		}
	}
	return nil
}
