package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// chaosLoad is the crash campaign's mixed load. Every worker records in
// the ledger only what the server acknowledged (a complete 2xx answer);
// a request cut by a kill leaves its outcome in doubt, and the ledger
// marks it so instead of guessing.
type chaosLoad struct {
	env       *runEnv
	ccID      string // a confidential client: client_credentials, introspection
	ccSecret  string
	noteToken string // the note writers' token, never revoked by the load
	ledger    *ledger
	seed      uint64

	// gate lets the campaign stop the load between a kill and the end of
	// the checks: workers hold it shared for each operation.
	gate         sync.RWMutex
	serverErrors atomic.Int64 // 5xx answers while the server was up
}

func newChaosLoad(ctx context.Context, target, password string, seed uint64) (*chaosLoad, error) {
	env := &runEnv{
		target: target, mcpPath: "/mcp", user: "admin", password: password,
		hc: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 32,
				IdleConnTimeout:     time.Minute,
			},
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	env.browser = newAuthorizer(env)
	l := &chaosLoad{env: env, ledger: &ledger{}, seed: seed}
	var err error
	if l.ccID, l.ccSecret, err = env.registerConfidential(ctx, "chaos-cc"); err != nil {
		return nil, err
	}
	if l.noteToken, err = env.clientCredentialsToken(ctx, l.ccID, l.ccSecret, "notes:read notes:write"); err != nil {
		return nil, err
	}
	return l, nil
}

// run starts the workers; the channel closes when they have all stopped.
func (l *chaosLoad) run(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	workers := []func(context.Context, *rand.Rand) error{
		l.clientCredentials, l.clientCredentials, l.revokeTokens, l.grants, l.notes(), l.notes(),
	}
	for i, w := range workers {
		rng := rand.New(rand.NewPCG(l.seed, uint64(i)))
		wg.Go(func() {
			for ctx.Err() == nil {
				l.gate.RLock()
				err := w(ctx, rng)
				l.gate.RUnlock()
				if err != nil {
					// The server is down (or between a kill and the pause):
					// do not spin.
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// pause waits for the operations under way to end and stops new ones;
// what is acknowledged from here on belongs to the next kill.
func (l *chaosLoad) pause() {
	l.gate.Lock()
	l.ledger.nextEpoch()
	// Kept-alive connections to the killed process would fail the first
	// request of the checks.
	l.env.hc.Transport.(*http.Transport).CloseIdleConnections()
}

func (l *chaosLoad) resume() { l.gate.Unlock() }

// form posts a form and returns the status and body; err is a transport
// failure (the outcome is unknown).
func (l *chaosLoad) form(ctx context.Context, path string, form url.Values, basicID, basicSecret string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.env.target+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := l.env.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode >= 500 {
		l.serverErrors.Add(1)
	}
	return resp.StatusCode, body, nil
}

// introspect asks whether token is active, as the confidential client.
func (l *chaosLoad) introspect(ctx context.Context, token, hint string) (bool, error) {
	st, body, err := l.form(ctx, "/introspect", url.Values{"token": {token}, "token_type_hint": {hint}}, l.ccID, l.ccSecret)
	if err != nil {
		return false, err
	}
	if st != http.StatusOK {
		return false, fmt.Errorf("introspect: status %d: %.200s", st, body)
	}
	var out struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return false, err
	}
	return out.Active, nil
}

// refresh rotates a grant's refresh token.
func (l *chaosLoad) refresh(ctx context.Context, g *grantEntry, refreshToken string) (*tokenResponse, int, []byte, error) {
	st, body, err := l.form(ctx, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {g.clientID}}, "", "")
	if err != nil || st != http.StatusOK {
		return nil, st, body, err
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
		return nil, st, body, fmt.Errorf("refresh answer %.100q: %v", body, err)
	}
	return &tok, st, body, nil
}

// clientCredentials asks for a client_credentials token.
func (l *chaosLoad) clientCredentials(ctx context.Context, _ *rand.Rand) error {
	st, body, err := l.form(ctx, "/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"notes:read"}}, l.ccID, l.ccSecret)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		if st < 500 {
			l.ledger.violation(fmt.Sprintf("client_credentials refused: status %d: %.200s", st, body))
		}
		return errors.New("client_credentials: status " + fmt.Sprint(st))
	}
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return fmt.Errorf("client_credentials answer %.100q: %v", body, err)
	}
	l.ledger.addToken(tok.AccessToken)
	return nil
}

// revokeTokens revokes one client_credentials token it was given, now and
// then (a quarter or so of those issued).
func (l *chaosLoad) revokeTokens(ctx context.Context, rng *rand.Rand) error {
	time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
	e := l.ledger.startRevoke(rng)
	if e == nil {
		return nil
	}
	st, body, err := l.form(ctx, "/revoke", url.Values{"token": {e.token}, "token_type_hint": {"access_token"}}, l.ccID, l.ccSecret)
	if err != nil {
		return err // in doubt: stays "revoking"
	}
	if st != http.StatusOK {
		if st < 500 {
			l.ledger.violation(fmt.Sprintf("revocation of token %s refused: status %d: %.200s", redact(e.token), st, body))
		}
		return errors.New("revoke: status " + fmt.Sprint(st))
	}
	l.ledger.revoked(e)
	return nil
}

// grants runs authorization code flows (a fresh public client each),
// rotates their refresh tokens, and now and then revokes one.
func (l *chaosLoad) grants(ctx context.Context, rng *rand.Rand) error {
	g := l.ledger.pickGrant(rng)
	p := rng.Float64()
	switch {
	case g == nil || p < 0.1:
		id, err := l.env.registerPublic(ctx, "chaos-grant")
		if err != nil {
			return err
		}
		tok, err := l.env.browser.grant(ctx, id)
		if err != nil {
			return err
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" {
			return errors.New("code exchange without tokens")
		}
		l.ledger.addGrant(id, tok.AccessToken, tok.RefreshToken)
	case p < 0.15:
		refreshToken := l.ledger.startGrantRevoke(g)
		st, body, err := l.form(ctx, "/revoke", url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {g.clientID}}, "", "")
		if err != nil {
			return err // in doubt: stays "revoking"
		}
		if st != http.StatusOK {
			if st < 500 {
				l.ledger.violation(fmt.Sprintf("revocation of grant %s refused: status %d: %.200s", redact(refreshToken), st, body))
			}
			return errors.New("revoke: status " + fmt.Sprint(st))
		}
		l.ledger.grantRevoked(g)
	default:
		refreshToken := l.ledger.startRotation(g)
		tok, st, body, err := l.refresh(ctx, g, refreshToken)
		if err != nil && st == 0 {
			return err // in doubt: stays "rotating", the checks resolve it
		}
		if st != http.StatusOK {
			if st < 500 {
				l.ledger.violation(fmt.Sprintf("refresh of acknowledged grant %s refused: status %d: %.200s", redact(refreshToken), st, body))
				l.ledger.abandon(g)
			}
			return errors.New("refresh: status " + fmt.Sprint(st))
		}
		if err != nil {
			return err
		}
		l.ledger.rotated(g, tok.AccessToken, tok.RefreshToken)
	}
	return nil
}

// notes returns a note writer with an MCP session of its own: it saves
// notes, deletes some, and calls whoami.
func (l *chaosLoad) notes() func(context.Context, *rand.Rand) error {
	var s *mcpSession
	return func(ctx context.Context, rng *rand.Rand) error {
		if s == nil {
			s = &mcpSession{env: l.env, url: l.env.target + "/mcp", token: l.noteToken}
			if err := s.open(ctx); err != nil {
				s = nil
				return err
			}
		}
		err := l.noteOp(ctx, s, rng)
		if err != nil {
			s = nil // a new session after the restart
		}
		return err
	}
}

func (l *chaosLoad) noteOp(ctx context.Context, s *mcpSession, rng *rand.Rand) error {
	p := rng.Float64()
	switch {
	case p < 0.15:
		n := l.ledger.startNoteDelete(rng)
		if n == nil {
			return nil
		}
		out, toolErr, err := s.tool(ctx, "note_delete", map[string]any{"id": n.id})
		if err != nil {
			return err // in doubt: stays "deleting"
		}
		if toolErr != "" || !strings.Contains(string(out), `"deleted":true`) {
			l.ledger.violation(fmt.Sprintf("deleting acknowledged note %s failed: %s%s", n.id, toolErr, out))
			return nil
		}
		l.ledger.noteDeleted(n)
	case p < 0.25:
		if err := s.whoami(ctx); err != nil {
			return err
		}
	default:
		title := fmt.Sprintf("chaos %d %s", rng.IntN(1_000_000), "notes ünïcödé ✓")
		body := strings.Repeat(randomString(12)+" ", 1+rng.IntN(30))
		out, toolErr, err := s.tool(ctx, "note_save", map[string]any{"title": title, "body": body, "tags": []string{"chaos"}})
		if err != nil {
			return err
		}
		var saved struct {
			ID string `json:"id"`
		}
		if toolErr != "" || json.Unmarshal(out, &saved) != nil || saved.ID == "" {
			l.ledger.violation(fmt.Sprintf("note_save failed: %s%s", toolErr, out))
			return nil
		}
		l.ledger.addNote(saved.ID, title, body)
	}
	return nil
}
