package authz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Client ID Metadata Documents (MCP 2025-11-25): an https client_id is the
// URL of a JSON document describing the client.
const (
	cimdMaxBytes     = 5 << 10
	cimdTimeout      = 5 * time.Second
	cimdDefaultCache = 5 * time.Minute
	cimdMaxCache     = 24 * time.Hour
	cimdMaxEntries   = 1000
)

// cimdError says why a client metadata document cannot be used.
type cimdError struct{ reason string }

func (e *cimdError) Error() string { return "client metadata document: " + e.reason }

type cimdEntry struct {
	client  Client
	expires time.Time
}

type cimdFetcher struct {
	s     *Server
	hc    *http.Client
	mu    sync.Mutex
	cache map[string]cimdEntry
	fetch *keyedMutex
}

func newCIMDFetcher(s *Server, hc *http.Client, allowPrivate bool) *cimdFetcher {
	if hc == nil {
		hc = newMetadataHTTPClient(allowPrivate)
	}
	return &cimdFetcher{s: s, hc: hc, cache: make(map[string]cimdEntry), fetch: newKeyedMutex()}
}

// newMetadataHTTPClient returns a client with timeouts that follows no
// redirects and, unless allowPrivate, dials no private, loopback,
// link-local or otherwise internal address.
func newMetadataHTTPClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: cimdTimeout}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return err
			}
			if !publicAddr(ip) {
				return fmt.Errorf("refusing to fetch client metadata from non-public address %s", ip)
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: cimdTimeout,
		Transport: &http.Transport{
			DialContext:            dialer.DialContext,
			TLSHandshakeTimeout:    cimdTimeout,
			ResponseHeaderTimeout:  cimdTimeout,
			MaxResponseHeaderBytes: 16 << 10,
			IdleConnTimeout:        30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed for client metadata documents")
		},
	}
}

// nonPublic are special-purpose ranges (IANA IPv4 and IPv6 special-purpose
// address registries) that are not globally reachable, or that embed an
// IPv4 address a gateway may translate into a private one (NAT64, 6to4,
// Teredo, IPv4-compatible). A metadata document is never fetched from them.
var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8",       // "this network"; 0.x.y.z may reach the host
		"100.64.0.0/10",   // CGNAT shared space
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, incl. broadcast
		"::/96",           // IPv4-compatible (deprecated)
		"64:ff9b::/96",    // NAT64
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard-only
		"2001::/23",       // IETF protocol assignments, incl. Teredo
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4
		"fec0::/10",       // site-local (deprecated)
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// publicAddr reports whether ip is a globally reachable unicast address.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// checkClientIDURL applies the document URL rules: https, a host, a path,
// no fragment, no credentials, no dot segments.
func checkClientIDURL(id string) error {
	u, err := url.Parse(id)
	switch {
	case err != nil:
		return &cimdError{"the client_id is not a URL"}
	case u.Scheme != "https" || u.Host == "":
		return &cimdError{"the client_id must be an https URL"}
	case u.Path == "" || u.Path == "/":
		return &cimdError{"the client_id URL must have a path"}
	case u.Fragment != "" || strings.Contains(id, "#"):
		return &cimdError{"the client_id URL must not have a fragment"}
	case u.User != nil:
		return &cimdError{"the client_id URL must not contain credentials"}
	case strings.Contains("/"+u.Path+"/", "/./") || strings.Contains("/"+u.Path+"/", "/../"):
		return &cimdError{"the client_id URL must not contain dot segments"}
	case len(id) > maxURILength:
		return &cimdError{"the client_id URL is too long"}
	}
	return nil
}

// client returns the client described by the document at id, from the
// cache while its Cache-Control allows, and records it in the store.
func (f *cimdFetcher) client(ctx context.Context, id string) (*Client, error) {
	if err := checkClientIDURL(id); err != nil {
		return nil, err
	}
	unlock := f.fetch.Lock(id)
	defer unlock()
	if c, ok := f.cached(id); ok {
		// The cache saves the fetch, not the record: a client revoked
		// since (mcpd client revoke) is recorded again, so the tokens it
		// gets next are listed and revocable.
		if _, err := f.s.store.LookupClient(ctx, id); err == nil {
			return c, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err := f.s.saveMetadataClient(ctx, c); err != nil {
			return nil, err
		}
		return c, nil
	}
	// Any https URL is a client_id, so fetches are rate-limited per client
	// address like registrations; a cached document costs nothing.
	if key, ok := ctx.Value(limitKeyCtx{}).(string); ok && !f.s.cimdFetches.Allow(key) {
		return nil, &cimdError{"too many client metadata documents were fetched for your address; try again in a minute"}
	}
	if !f.s.cimdFetchesAll.allowAll() {
		return nil, &cimdError{"too many client metadata documents are being fetched right now; try again in a minute"}
	}
	c, ttl, err := f.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := f.s.saveMetadataClient(ctx, c); err != nil {
		return nil, err
	}
	if ttl > 0 {
		f.mu.Lock()
		if len(f.cache) >= cimdMaxEntries {
			now := f.s.now()
			for k, e := range f.cache {
				if !now.Before(e.expires) {
					delete(f.cache, k)
				}
			}
		}
		if len(f.cache) < cimdMaxEntries {
			f.cache[id] = cimdEntry{client: *c, expires: f.s.now().Add(ttl)}
		}
		f.mu.Unlock()
	}
	return c, nil
}

func (f *cimdFetcher) cached(id string) (*Client, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.cache[id]
	if !ok || !f.s.now().Before(e.expires) {
		return nil, false
	}
	c := e.client
	return &c, true
}

// load fetches and validates the document.
func (f *cimdFetcher) load(ctx context.Context, id string) (*Client, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, cimdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, &cimdError{"the client_id is not a URL"}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.hc.Do(req)
	if err != nil {
		f.s.log.Info("client metadata fetch failed", "client_id", id, "err", err)
		return nil, 0, &cimdError{"it could not be fetched"}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, &cimdError{fmt.Sprintf("fetching it answered HTTP %d", resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxBytes+1))
	if err != nil {
		return nil, 0, &cimdError{"it could not be read"}
	}
	if len(body) > cimdMaxBytes {
		return nil, 0, &cimdError{fmt.Sprintf("it is larger than %d bytes", cimdMaxBytes)}
	}
	md, err := parseClientMetadata(body)
	if err != nil {
		return nil, 0, &cimdError{"it is not a JSON object of client metadata"}
	}
	if md.ClientID != id {
		return nil, 0, &cimdError{"its client_id does not equal its URL"}
	}
	if md.ClientSecret != "" {
		return nil, 0, &cimdError{"it must not contain a client_secret"}
	}
	c, err := f.s.clientFromMetadata(md, SourceMetadata)
	if err != nil {
		var re *registrationError
		if errors.As(err, &re) {
			return nil, 0, &cimdError{re.Description}
		}
		return nil, 0, &cimdError{err.Error()}
	}
	c.ID = id
	c.MetadataURL = id
	return c, cacheLifetime(resp.Header.Get("Cache-Control")), nil
}

// cacheLifetime reads max-age from Cache-Control, capped at a day;
// no-store and no-cache mean zero, no header means five minutes.
func cacheLifetime(cc string) time.Duration {
	if cc == "" {
		return cimdDefaultCache
	}
	ttl := time.Duration(0)
	found := false
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64)
			if err != nil || n < 0 {
				return 0
			}
			found = true
			if n > int64(cimdMaxCache/time.Second) {
				n = int64(cimdMaxCache / time.Second)
			}
			ttl = time.Duration(n) * time.Second
		}
	}
	if !found {
		return cimdDefaultCache
	}
	return ttl
}

// saveMetadataClient records a document's client in the store, so tokens,
// listings and revocation work as for registered clients.
func (s *Server) saveMetadataClient(ctx context.Context, c *Client) error {
	existing, err := s.store.LookupClient(ctx, c.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		// Any https URL names a client, so documents count towards the
		// same cap as registrations.
		n, err := s.store.CountClients(ctx)
		if err != nil {
			return err
		}
		if n >= s.cfg.MaxClients {
			s.log.Warn("client metadata document refused: client limit reached", "client_id", c.ID)
			return &cimdError{"mcpd has reached its limit of registered clients"}
		}
		c.CreatedAt = s.now().UTC().Truncate(time.Second)
		if err := s.store.CreateClient(ctx, c); err != nil && !errors.Is(err, ErrAlreadyExists) {
			return err
		}
		s.obs.ClientRegistered(SourceMetadata)
		s.log.Info("client known by metadata document", "client_id", c.ID, "name", c.Name)
		return nil
	case err != nil:
		return err
	}
	c.CreatedAt, c.ActivatedAt, c.LastUsedAt = existing.CreatedAt, existing.ActivatedAt, existing.LastUsedAt
	return s.store.UpdateClient(ctx, c.ID, func(old *Client) error {
		created, activated, used := old.CreatedAt, old.ActivatedAt, old.LastUsedAt
		*old = *c
		old.CreatedAt, old.ActivatedAt, old.LastUsedAt = created, activated, used
		return nil
	})
}
