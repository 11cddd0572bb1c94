package authz

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// pendingTTL is how long an authorization request waits for sign-in or
// consent.
const pendingTTL = 10 * time.Minute

// maxPending caps the pending authorizations the store keeps: anyone can
// open /authorize, so each visit must not grow the store without bound.
const maxPending = 10000

// maxAuthorizeQuery is the longest authorization request (its query) that
// mcpd keeps; real clients send well under 2 KB. Without it a visitor
// could store up to the header limit (64 KB) per visit.
const maxAuthorizeQuery = 8 << 10

// maxVisitorRequestsPerMinute is how many authorization requests one
// client address may leave waiting for sign-in per minute, so that a
// flood from a few addresses cannot push the requests of people signing
// in out of the store at maxPending. A signed-in user's consent pages are
// not counted.
const maxVisitorRequestsPerMinute = 60

// pendingRequest is an authorization request waiting for sign-in or
// consent, as the store gave it back.
type pendingRequest struct {
	form     url.Values
	clientID string
}

// putPending stores an authorization request and returns its new id.
func (s *Server) putPending(ctx context.Context, form url.Values, clientID string) (string, error) {
	now := s.now()
	id := randomToken(24)
	err := s.store.PutPendingAuthorization(ctx, PendingAuthorization{
		ID: id, ClientID: clientID, Form: form.Encode(),
		CreatedAt: now, ExpiresAt: now.Add(pendingTTL),
	}, maxPending)
	return id, err
}

// getPending returns the pending request of id; ErrNotFound when there is
// none or it has expired.
func (s *Server) getPending(ctx context.Context, id string) (pendingRequest, error) {
	if id == "" {
		return pendingRequest{}, ErrNotFound
	}
	p, err := s.store.GetPendingAuthorization(ctx, id)
	if err != nil {
		return pendingRequest{}, err
	}
	return decodePending(p)
}

// takePending removes the pending request of id and returns it, for a
// decision that must happen once.
func (s *Server) takePending(ctx context.Context, id string) (pendingRequest, error) {
	if id == "" {
		return pendingRequest{}, ErrNotFound
	}
	p, err := s.store.TakePendingAuthorization(ctx, id)
	if err != nil {
		return pendingRequest{}, err
	}
	return decodePending(p)
}

func decodePending(p PendingAuthorization) (pendingRequest, error) {
	form, err := url.ParseQuery(p.Form)
	if err != nil {
		return pendingRequest{}, errors.New("authz: stored authorization request is not a query")
	}
	return pendingRequest{form: form, clientID: p.ClientID}, nil
}
