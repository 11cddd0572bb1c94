package authz

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"
)

// isLoopbackHost reports whether host (without brackets or port) names the
// loopback interface: 127.0.0.1, ::1 or localhost (RFC 8252 §7.3).
func isLoopbackHost(host string) bool {
	return host == "127.0.0.1" || host == "::1" || strings.EqualFold(host, "localhost")
}

// matchRedirectURI reports whether presented is one of registered: an exact
// match, or a loopback http URI that differs from a registered one only in
// its port (RFC 8252 §7.3). fosite only matches IP literals that way.
func matchRedirectURI(presented string, registered []string) bool {
	if slices.Contains(registered, presented) {
		return true
	}
	p, err := url.Parse(presented)
	if err != nil || p.Scheme != "http" || p.User != nil || p.Fragment != "" || !isLoopbackHost(p.Hostname()) {
		return false
	}
	for _, reg := range registered {
		q, err := url.Parse(reg)
		if err != nil || q.Scheme != "http" {
			continue
		}
		// Paths compare as sent: /c%62 is not /cb, as in exact matching.
		if strings.EqualFold(q.Hostname(), p.Hostname()) && q.EscapedPath() == p.EscapedPath() && q.RawQuery == p.RawQuery && q.User == nil {
			return true
		}
	}
	return false
}

type presentedRedirectKey struct{}

type resolvedClientKey struct{}

// withResolvedClient records in ctx a client the handler already looked
// up, so fosite's GetClient does not fetch a metadata document twice.
func withResolvedClient(ctx context.Context, c *Client) context.Context {
	return context.WithValue(ctx, resolvedClientKey{}, c)
}

// withPresentedRedirect records in ctx a redirect URI the authorize handler
// has already matched, so that fosite's exact matching accepts it.
func withPresentedRedirect(ctx context.Context, uri string) context.Context {
	return context.WithValue(ctx, presentedRedirectKey{}, uri)
}

// fositeStore is the Storage fosite sees. GetClient resolves client ID
// metadata documents and accepts a loopback redirect URI on any port.
type fositeStore struct {
	Storage
	s *Server
}

// GetClient implements fosite.ClientManager.
func (f *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, ok := ctx.Value(resolvedClientKey{}).(*Client)
	if ok && c.ID == id {
		cp := *c
		c = &cp
	} else {
		var err error
		if c, err = f.s.lookupClient(ctx, id); err != nil {
			return nil, err
		}
	}
	if uri, ok := ctx.Value(presentedRedirectKey{}).(string); ok && uri != "" && !slices.Contains(c.RedirectURIs, uri) && matchRedirectURI(uri, c.RedirectURIs) {
		cp := *c
		cp.RedirectURIs = append(slices.Clone(c.RedirectURIs), uri)
		return &cp, nil
	}
	return c, nil
}

// lookupClient finds a registered client or, for an https client_id when
// client metadata documents are enabled, fetches its document.
func (s *Server) lookupClient(ctx context.Context, id string) (*Client, error) {
	if id == "" {
		return nil, fosite.ErrNotFound
	}
	if s.cfg.ClientMetadataDocuments && strings.HasPrefix(id, "https://") {
		return s.cimd.client(ctx, id)
	}
	fc, err := s.store.GetClient(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fosite.ErrNotFound
		}
		return nil, err
	}
	c, ok := fc.(*Client)
	if !ok {
		return nil, errors.New("authz: storage returned a client of an unexpected type")
	}
	if c.Source == SourceMetadata && !s.cfg.ClientMetadataDocuments {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}
