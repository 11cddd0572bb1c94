package idp

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxResponseBytes bounds every answer a connector reads from a provider:
// a discovery document, a key set, a token response, userinfo, GitHub's
// API. Real ones are a few kilobytes.
const MaxResponseBytes = 1 << 20

// ErrResponseTooLarge is what reading a provider's answer longer than
// MaxResponseBytes fails with.
var ErrResponseTooLarge = fmt.Errorf("the provider's answer exceeds %d bytes", MaxResponseBytes)

// BoundedClient returns the client a connector makes every call to a
// provider with: a copy of hc (nil: a new client with timeout) whose
// answers fail to read past MaxResponseBytes, so a hostile or broken
// provider cannot make mcpd hold a gigabyte (go-oidc reads discovery, keys
// and userinfo whole). The error answer of a GET (discovery, keys,
// userinfo, GitHub's API) is not read at all: only its status is used,
// and go-oidc would put the body, which may echo the request and its
// access token, into the error mcpd logs. Token requests (POST) keep their
// error bodies, which carry the OAuth error code. hc's timeout, or timeout
// when hc has none, bounds each call.
func BoundedClient(hc *http.Client, timeout time.Duration) *http.Client {
	c := &http.Client{}
	if hc != nil {
		*c = *hc
	}
	if c.Timeout <= 0 {
		c.Timeout = timeout
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = boundedTransport{base: base}
	return c
}

type boundedTransport struct {
	base http.RoundTripper
}

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if r.Method == http.MethodGet && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		resp.Body.Close()
		resp.Body = http.NoBody
		resp.ContentLength = 0
		return resp, nil
	}
	resp.Body = &boundedBody{rc: resp.Body, left: MaxResponseBytes}
	return resp, nil
}

// boundedBody reads at most left bytes of rc and fails on the next one.
type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrResponseTooLarge
	}
	// Read one byte past the limit, to tell a body of exactly the limit
	// from a longer one.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), ErrResponseTooLarge
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }
