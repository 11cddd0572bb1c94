package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/mcpd/mcpd/internal/keymutex"
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

// cimdError says in plain words why a client metadata document cannot be
// used; the authorization page shows the reason.
type cimdError struct {
	reason string
	kind   cimdErrorKind
	cause  error // for the log; nil when reason says it all
}

// cimdErrorKind tells who can fix a cimdError, and so what the page says.
type cimdErrorKind int

const (
	// cimdInvalid: the client_id or the document breaks a rule; the
	// application's makers can fix it.
	cimdInvalid cimdErrorKind = iota
	// cimdUnreachable: the document could not be fetched (DNS, network,
	// TLS, timeout, an HTTP status other than 200). Offline, mcpd's
	// operator can switch documents off and clients register instead.
	cimdUnreachable
	// cimdRefused: one of mcpd's own limits.
	cimdRefused
)

func (e *cimdError) Error() string { return "client metadata document: " + e.reason }

func (e *cimdError) Unwrap() error { return e.cause }

func invalidDoc(reason string) *cimdError { return &cimdError{reason: reason, kind: cimdInvalid} }

func unreachableDoc(format string, args ...any) *cimdError {
	return &cimdError{reason: fmt.Sprintf(format, args...), kind: cimdUnreachable}
}

// nonPublicAddrError is the dialer's refusal of an internal address.
type nonPublicAddrError struct{ addr netip.Addr }

func (e *nonPublicAddrError) Error() string {
	return fmt.Sprintf("refusing to fetch client metadata from non-public address %s", e.addr)
}

// errRedirect is what the metadata client answers a redirect with.
var errRedirect = errors.New("redirects are not followed for client metadata documents")

// describeFetchError says in plain words why fetching from host failed.
// It names no address: the page is shown to whoever sends a client_id,
// and must not map the operator's network for them.
func describeFetchError(host string, err error) string {
	var (
		dnsErr     *net.DNSError
		nonPublic  *nonPublicAddrError
		unknownCA  x509.UnknownAuthorityError
		badHost    x509.HostnameError
		badCert    x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		netErr     net.Error
		sysErrno   syscall.Errno
		hasErrno   = errors.As(err, &sysErrno)
		isTimedOut = errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
	)
	switch {
	case errors.As(err, &nonPublic):
		return fmt.Sprintf("%s is, or leads to, a private, loopback or otherwise internal address, which mcpd does not fetch from (its operator can allow that with --allow-private-metadata-hosts true)", host)
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout:
		return fmt.Sprintf("looking up the name %s timed out (DNS); this computer may have no internet access", host)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("the name %s could not be resolved (DNS); this computer may have no internet access, or no DNS server it can reach", host)
	case errors.Is(err, errRedirect):
		return fmt.Sprintf("%s answered with a redirect, and mcpd does not follow redirects for these documents", host)
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("the TLS certificate of %s is not signed by an authority this computer trusts (a proxy that intercepts https can cause this)", host)
	case errors.As(err, &badHost):
		return fmt.Sprintf("the TLS certificate of %s is not valid for that name", host)
	case errors.As(err, &badCert):
		return fmt.Sprintf("the TLS certificate of %s is not valid (expired, not yet valid, or not for a server)", host)
	case errors.As(err, &verifyErr):
		return fmt.Sprintf("the TLS certificate of %s could not be verified", host)
	case errors.As(err, &recordErr) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http turns a RecordHeaderError that looks like HTTP into
		// an unexported error of that text.
		return fmt.Sprintf("%s did not answer with TLS, so it is not an https server", host)
	case errors.As(err, &alertErr):
		return fmt.Sprintf("the TLS handshake with %s failed", host)
	case isTimedOut:
		return fmt.Sprintf("%s did not answer within %d seconds; this computer may have no internet access", host, int(cimdTimeout/time.Second))
	case hasErrno && sysErrno == syscall.ECONNREFUSED:
		return fmt.Sprintf("%s refused the connection", host)
	case hasErrno && (sysErrno == syscall.ENETUNREACH || sysErrno == syscall.EHOSTUNREACH):
		return fmt.Sprintf("there is no network route to %s; this computer may have no internet access", host)
	case hasErrno && sysErrno == syscall.ECONNRESET:
		return fmt.Sprintf("the connection to %s was reset", host)
	}
	return fmt.Sprintf("the connection to %s failed", host)
}

type cimdEntry struct {
	client  Client
	expires time.Time
}

type cimdFetcher struct {
	s     *Server
	hc    *http.Client
	mu    sync.Mutex
	cache map[string]cimdEntry
	fetch *keymutex.Mutex
}

func newCIMDFetcher(s *Server, hc *http.Client, allowPrivate bool) *cimdFetcher {
	if hc == nil {
		hc = newMetadataHTTPClient(allowPrivate)
	}
	return &cimdFetcher{s: s, hc: hc, cache: make(map[string]cimdEntry), fetch: &keymutex.Mutex{}}
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
				return &nonPublicAddrError{addr: ip}
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
			return errRedirect
		},
	}
}

// ProbeClientMetadataDocument fetches the client metadata document at id
// the way the server does and returns, in plain words, why it cannot be
// used, or nil. hc nil means the server's own client, which refuses
// internal addresses unless allowPrivate. mcpd doctor uses it to tell
// whether this machine reaches the documents clients name (VS Code's is
// https://vscode.dev/oauth/client-metadata.json).
func ProbeClientMetadataDocument(ctx context.Context, hc *http.Client, allowPrivate bool, id string) error {
	if err := checkClientIDURL(id); err != nil {
		return err
	}
	if hc == nil {
		hc = newMetadataHTTPClient(allowPrivate)
	}
	_, _, err := fetchDocument(ctx, hc, id)
	return err
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
		return invalidDoc("the client_id is not a URL")
	case u.Scheme != "https" || u.Host == "":
		return invalidDoc("the client_id must be an https URL")
	case u.Path == "" || u.Path == "/":
		return invalidDoc("the client_id URL must have a path")
	case u.Fragment != "" || strings.Contains(id, "#"):
		return invalidDoc("the client_id URL must not have a fragment")
	case u.User != nil:
		return invalidDoc("the client_id URL must not contain credentials")
	case strings.Contains("/"+u.Path+"/", "/./") || strings.Contains("/"+u.Path+"/", "/../"):
		return invalidDoc("the client_id URL must not contain dot segments")
	case len(id) > maxURILength:
		return invalidDoc("the client_id URL is too long")
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
		return nil, &cimdError{reason: "too many client metadata documents were fetched for your address; try again in a minute", kind: cimdRefused}
	}
	if !f.s.cimdFetchesAll.allowAll() {
		return nil, &cimdError{reason: "too many client metadata documents are being fetched right now; try again in a minute", kind: cimdRefused}
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
	md, ttl, err := fetchDocument(ctx, f.hc, id)
	if err != nil {
		f.s.log.Info("client metadata document refused", "client_id", id, "reason", err, "cause", errors.Unwrap(err))
		return nil, 0, err
	}
	c, err := f.s.clientFromMetadata(md, SourceMetadata)
	if err != nil {
		var re *registrationError
		if errors.As(err, &re) {
			return nil, 0, invalidDoc(re.Description)
		}
		return nil, 0, invalidDoc(err.Error())
	}
	c.ID = id
	c.MetadataURL = id
	return c, ttl, nil
}

// fetchDocument fetches the document at id with hc and checks what every
// document must hold: JSON of client metadata, its own URL as client_id,
// a client_name (MCP 2026-07-28) and no client_secret.
func fetchDocument(ctx context.Context, hc *http.Client, id string) (*clientMetadata, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, cimdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, invalidDoc("the client_id is not a URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		ce := unreachableDoc("%s", describeFetchError(req.URL.Hostname(), err))
		ce.cause = err
		return nil, 0, ce
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, unreachableDoc("%s answered HTTP %d %s instead of the document", req.URL.Host, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxBytes+1))
	if err != nil {
		ce := unreachableDoc("the answer of %s broke off: %s", req.URL.Host, describeFetchError(req.URL.Hostname(), err))
		ce.cause = err
		return nil, 0, ce
	}
	if len(body) > cimdMaxBytes {
		return nil, 0, invalidDoc(fmt.Sprintf("it is larger than %d bytes", cimdMaxBytes))
	}
	md, err := parseClientMetadata(body)
	if err != nil {
		return nil, 0, invalidDoc("it is not a JSON object of client metadata")
	}
	switch {
	case md.ClientID != id:
		return nil, 0, invalidDoc("its client_id does not equal its URL")
	case md.ClientSecret != "":
		return nil, 0, invalidDoc("it must not contain a client_secret")
	case md.ClientName == "":
		return nil, 0, invalidDoc("it has no client_name")
	}
	return md, cacheLifetime(resp.Header.Get("Cache-Control")), nil
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
			return &cimdError{reason: "mcpd has reached its limit of registered clients", kind: cimdRefused}
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
