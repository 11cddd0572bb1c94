package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// state is what the server acknowledged about an entry. "In doubt" states
// (a request cut by a kill) are never checked either way.
type state int

const (
	live     state = iota
	revoking       // in doubt: a revocation or deletion was cut off
	revoked        // acknowledged revoked (or deleted): must stay so
)

// tokenEntry is an acknowledged client_credentials access token.
type tokenEntry struct {
	token string
	state state
	epoch int // the kill it was acknowledged before
}

// grantEntry is an acknowledged authorization-code grant of its own
// public client.
type grantEntry struct {
	clientID        string
	access, refresh string   // the latest acknowledged pair
	rotatedAway     []string // access tokens of earlier pairs: revoked by rotation
	state           state
	rotating        bool // a rotation was cut off: the checks finish it
	abandoned       bool // a refusal was reported already
	rotations       int
	epoch           int // the kill its latest acknowledged change came before
}

// noteEntry is an acknowledged note_save.
type noteEntry struct {
	id, title, body string
	state           state
	epoch           int
}

// ledger is the campaign's memory of what the server acknowledged.
type ledger struct {
	mu         sync.Mutex
	epoch      int
	tokens     []*tokenEntry
	grants     []*grantEntry
	notes      []*noteEntry
	violations []string // found by the load itself since the last report

	revocations, rotations, deletions int
}

func (l *ledger) nextEpoch() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch++
}

func (l *ledger) violation(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.violations = append(l.violations, "under load: "+msg)
}

func (l *ledger) takeViolations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.violations
	l.violations = nil
	return v
}

func (l *ledger) addToken(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = append(l.tokens, &tokenEntry{token: token, epoch: l.epoch})
}

// pickLocked tries up to eight entries at random and returns the first
// that ok accepts, or nil. l.mu is held.
func pickLocked[E any](rng *rand.Rand, entries []*E, ok func(*E) bool) *E {
	for range 8 {
		if len(entries) == 0 {
			return nil
		}
		if e := entries[rng.IntN(len(entries))]; ok(e) {
			return e
		}
	}
	return nil
}

// startRevoke picks a live token at random and marks it in doubt.
func (l *ledger) startRevoke(rng *rand.Rand) *tokenEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := pickLocked(rng, l.tokens, func(e *tokenEntry) bool { return e.state == live })
	if e != nil {
		e.state = revoking
	}
	return e
}

func (l *ledger) revoked(e *tokenEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.state, e.epoch = revoked, l.epoch
	l.revocations++
}

func (l *ledger) addGrant(clientID, access, refresh string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.grants = append(l.grants, &grantEntry{clientID: clientID, access: access, refresh: refresh, epoch: l.epoch})
}

// pickGrant picks a live grant that is not in doubt.
func (l *ledger) pickGrant(rng *rand.Rand) *grantEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return pickLocked(rng, l.grants, func(g *grantEntry) bool { return g.state == live && !g.rotating && !g.abandoned })
}

func (l *ledger) startGrantRevoke(g *grantEntry) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	g.state = revoking
	return g.refresh
}

func (l *ledger) grantRevoked(g *grantEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g.state, g.epoch = revoked, l.epoch
	l.revocations++
}

func (l *ledger) startRotation(g *grantEntry) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	g.rotating = true
	return g.refresh
}

func (l *ledger) rotated(g *grantEntry, access, refresh string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g.rotatedAway = append(g.rotatedAway, g.access)
	g.access, g.refresh, g.rotating, g.epoch = access, refresh, false, l.epoch
	g.rotations++
	l.rotations++
}

func (l *ledger) abandon(g *grantEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g.abandoned, g.rotating = true, false
}

func (l *ledger) addNote(id, title, body string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notes = append(l.notes, &noteEntry{id: id, title: title, body: body, epoch: l.epoch})
}

// startNoteDelete picks a live note at random and marks it in doubt.
func (l *ledger) startNoteDelete(rng *rand.Rand) *noteEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := pickLocked(rng, l.notes, func(n *noteEntry) bool { return n.state == live })
	if n != nil {
		n.state = revoking
	}
	return n
}

func (l *ledger) noteDeleted(n *noteEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n.state, n.epoch = revoked, l.epoch
	l.deletions++
}

func (l *ledger) totals() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d client_credentials tokens, %d code-flow grants, %d refresh rotations, %d notes, %d note deletions, %d revocations",
		len(l.tokens), len(l.grants), l.rotations, len(l.notes), l.deletions, l.revocations)
}

// checkReport is the outcome of the checks after one restart.
type checkReport struct {
	checked, fresh, doubt int
	all                   bool // every entry, not the new ones and a sample
	problems              []string
}

func (r checkReport) summary() string {
	if r.all {
		return fmt.Sprintf("checked %d acknowledged writes, %d in doubt skipped", r.checked, r.doubt)
	}
	return fmt.Sprintf("checked %d acknowledged writes (%d new since the kill before), %d in doubt skipped", r.checked, r.fresh, r.doubt)
}

// check is one thing to verify against the restarted server.
type check struct {
	fresh bool
	run   func(ctx context.Context, v *verifier) string // "" when it holds
}

// verify checks, against the restarted server, every entry acknowledged
// since the previous kill and sample older ones at random; rotations cut
// off by the kill are finished (the refresh token the client holds must
// still work, by the grace window if the cut-off rotation committed).
func (l *ledger) verify(ctx context.Context, load *chaosLoad, sample int, rng *rand.Rand) checkReport {
	return l.runChecks(ctx, load, func(epoch, current int) (bool, bool) {
		fresh := epoch == current-1
		return fresh, fresh || rng.IntN(max(1, l.sizeLocked())) < sample
	})
}

// verifyAll checks every entry.
func (l *ledger) verifyAll(ctx context.Context, load *chaosLoad) checkReport {
	rep := l.runChecks(ctx, load, func(int, int) (bool, bool) { return false, true })
	rep.all = true
	return rep
}

func (l *ledger) sizeLocked() int { return len(l.tokens) + len(l.grants) + len(l.notes) }

func (l *ledger) runChecks(ctx context.Context, load *chaosLoad, pick func(epoch, current int) (fresh, take bool)) checkReport {
	var checks []check
	var rep checkReport
	l.mu.Lock()
	current := l.epoch
	for _, e := range l.tokens {
		fresh, take := pick(e.epoch, current)
		switch {
		case !take:
		case e.state == revoking:
			rep.doubt++
		default:
			checks = append(checks, check{fresh, tokenCheck(e.token, "access_token", e.state == revoked, "client_credentials access token")})
		}
	}
	for _, g := range l.grants {
		fresh, take := pick(g.epoch, current)
		switch {
		case g.rotating:
			checks = append(checks, check{true, l.finishRotation(g)})
		case !take || g.abandoned:
		case g.state == revoking:
			rep.doubt++
		default:
			dead := g.state == revoked
			checks = append(checks, check{fresh, tokenCheck(g.access, "access_token", dead, "code-flow access token")})
			checks = append(checks, check{false, tokenCheck(g.refresh, "refresh_token", dead, "refresh token")})
			for _, old := range g.rotatedAway {
				checks = append(checks, check{false, tokenCheck(old, "access_token", true, "access token of a rotated refresh token")})
			}
		}
	}
	for _, n := range l.notes {
		fresh, take := pick(n.epoch, current)
		switch {
		case !take:
		case n.state == revoking:
			rep.doubt++
		default:
			checks = append(checks, check{fresh, noteCheck(n)})
		}
	}
	l.mu.Unlock()

	v := &verifier{load: load}
	results := make([]string, len(checks))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				results[i] = checks[i].run(ctx, v)
			}
		})
	}
	for i := range checks {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, c := range checks {
		rep.checked++
		if c.fresh {
			rep.fresh++
		}
		if results[i] != "" {
			rep.problems = append(rep.problems, results[i])
		}
	}
	return rep
}

// verifier holds what the checks share: the load's clients and one MCP
// session for reading notes.
type verifier struct {
	load *chaosLoad
	mu   sync.Mutex
	mcp  *mcpSession
}

// tokenCheck introspects token (hint: "access_token" or "refresh_token",
// what names it in a problem) and expects it dead or active.
func tokenCheck(token, hint string, dead bool, what string) func(context.Context, *verifier) string {
	return func(ctx context.Context, v *verifier) string {
		active, err := v.load.introspect(ctx, token, hint)
		switch {
		case err != nil:
			return fmt.Sprintf("introspecting %s %s: %v", what, redact(token), err)
		case dead && active:
			return fmt.Sprintf("%s %s was revoked (acknowledged) and is alive again", what, redact(token))
		case !dead && !active:
			return fmt.Sprintf("%s %s was issued (acknowledged) and is not active", what, redact(token))
		}
		return ""
	}
}

// finishRotation refreshes with the refresh token the client holds after
// a rotation was cut off: it must work, whether the cut-off rotation
// committed (the grace window hands out its answer again) or not.
func (l *ledger) finishRotation(g *grantEntry) func(context.Context, *verifier) string {
	refreshToken := g.refresh
	return func(ctx context.Context, v *verifier) string {
		tok, st, body, err := v.load.refresh(ctx, g, refreshToken)
		if err != nil || st != 200 {
			l.abandon(g)
			return fmt.Sprintf("refresh token %s, held when a rotation was cut off, is refused after the restart: status %d %.200s %v", redact(refreshToken), st, body, err)
		}
		l.rotated(g, tok.AccessToken, tok.RefreshToken)
		active, err := v.load.introspect(ctx, tok.AccessToken, "access_token")
		if err != nil || !active {
			return fmt.Sprintf("access token %s from finishing a cut-off rotation is not active (%v)", redact(tok.AccessToken), err)
		}
		return ""
	}
}

func noteCheck(n *noteEntry) func(context.Context, *verifier) string {
	id, title, body, deleted := n.id, n.title, n.body, n.state == revoked
	return func(ctx context.Context, v *verifier) string {
		out, toolErr, err := v.note(ctx, id)
		switch {
		case err != nil:
			return fmt.Sprintf("note_get %s: %v", id, err)
		case deleted && toolErr == "":
			return fmt.Sprintf("note %s was deleted (acknowledged) and is back", id)
		case deleted:
			return ""
		case toolErr != "":
			return fmt.Sprintf("note %s was saved (acknowledged) and is gone: %s", id, toolErr)
		}
		var got struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Title != title || got.Body != body {
			return fmt.Sprintf("note %s reads back as %.100q / %.100q; saved %.100q / %.100q", id, got.Title, got.Body, title, body)
		}
		return ""
	}
}

// note reads one note through a session of the verifier's own; sessions
// are serialized (JSON-RPC ids are per session).
func (v *verifier) note(ctx context.Context, id string) (json.RawMessage, string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if v.mcp == nil {
			v.mcp = &mcpSession{env: v.load.env, url: v.load.env.target + "/mcp", token: v.load.noteToken}
			if err := v.mcp.open(ctx); err != nil {
				v.mcp = nil
				return nil, "", err
			}
		}
		out, toolErr, err := v.mcp.tool(ctx, "note_get", map[string]any{"id": id})
		if err != nil && attempt == 0 && strings.Contains(err.Error(), "404") {
			v.mcp = nil // a session of the previous process
			continue
		}
		if err != nil {
			v.mcp = nil
		}
		return out, toolErr, err
	}
}
