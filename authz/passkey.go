package authz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Passkeys are WebAuthn credentials, handled by go-webauthn: a user
// registers one from the account page (user verification required, a
// discoverable credential preferred) and signs in with it from the login
// page without typing a name (discoverable login). The store keeps public
// keys only. The server side of each ceremony (its challenge) waits in the
// store between begin and finish, bound to the browser that began it, and
// is taken once, so an assertion cannot be replayed.

const (
	passkeyAddBeginPath = "/account/passkeys/begin"

	ceremonyTTL   = 5 * time.Minute
	maxCeremonies = 10000
	// maxCeremoniesPerMinute per client address keeps one address from
	// filling the store's ceremonies and evicting everyone else's.
	maxCeremoniesPerMinute = 30
	maxPasskeysPerUser     = 20
	maxPasskeyName         = 64
	// recentSignIn is how long after signing in a browser may add a
	// passkey: a passkey outlives the session and a password change, so
	// an older session (perhaps a copied cookie) must sign in again first.
	recentSignIn = 15 * time.Minute
)

const msgSignInAgain = "To add a passkey, sign in again first: adding one needs a sign-in within the last 15 minutes."

// recentlySignedIn reports whether sess signed in recently enough to add a
// passkey.
func (s *Server) recentlySignedIn(sess *session) bool {
	return s.now().Sub(sess.signedInAt) < recentSignIn
}

// passkeyRP is the WebAuthn relying party of the issuer. rp is nil when
// browsers would refuse passkeys for the issuer, and off says why.
type passkeyRP struct {
	rp        *webauthn.WebAuthn
	off       string
	handleKey []byte
}

// newPasskeyRP derives the relying party from the issuer: its host is the
// RP ID and its origin the only one accepted. Browsers allow WebAuthn only
// in a secure context (https, or http on localhost) and only for a domain,
// never an IP address; for any other issuer passkeys are off.
func newPasskeyRP(issuer string, handleKey []byte) (passkeyRP, error) {
	p := passkeyRP{handleKey: handleKey}
	u, err := url.Parse(issuer)
	if err != nil {
		return p, err
	}
	host := strings.ToLower(u.Hostname())
	if _, err := netip.ParseAddr(host); err == nil {
		port := u.Port()
		if port == "" {
			port = "8080"
		}
		p.off = fmt.Sprintf("Passkeys need this server to be reached by a host name: browsers refuse them on an IP address such as %s. On this machine, run mcpd as http://localhost:%s (mcpd serve --listen localhost:%s) and connect applications to http://localhost:%s/mcp; elsewhere, serve it over https under a name.", host, port, port, port)
		return p, nil
	}
	if u.Scheme != "https" && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
		p.off = fmt.Sprintf("Passkeys need a secure connection: browsers allow them over https, or over plain http only on localhost, and this server's address is %s. Serve it over https and set --issuer https://….", issuer)
		return p, nil
	}
	p.rp, err = webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         "mcpd",
		RPOrigins:             []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationRequired,
		},
	})
	if err != nil {
		return p, fmt.Errorf("authz: passkeys for issuer %s: %w", issuer, err)
	}
	return p, nil
}

// userHandle is the WebAuthn user handle of a user: derived from the name
// with a server key, so it names no one and needs no record.
func (p passkeyRP) userHandle(name string) []byte {
	m := hmac.New(sha256.New, p.handleKey)
	m.Write([]byte(name))
	return m.Sum(nil)
}

// webauthnUser adapts a user and their passkeys to webauthn.User.
type webauthnUser struct {
	name   string
	handle []byte
	creds  []webauthn.Credential
}

func (u webauthnUser) WebAuthnID() []byte                         { return u.handle }
func (u webauthnUser) WebAuthnName() string                       { return u.name }
func (u webauthnUser) WebAuthnDisplayName() string                { return u.name }
func (u webauthnUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func (s *Server) webauthnUser(name string, keys []Passkey) webauthnUser {
	u := webauthnUser{name: name, handle: s.passkeys.userHandle(name)}
	for _, k := range keys {
		u.creds = append(u.creds, toCredential(k))
	}
	return u
}

func toCredential(p Passkey) webauthn.Credential {
	var flags protocol.AuthenticatorFlags
	for _, f := range []struct {
		on   bool
		flag protocol.AuthenticatorFlags
	}{
		{p.UserPresent, protocol.FlagUserPresent}, {p.UserVerified, protocol.FlagUserVerified},
		{p.BackupEligible, protocol.FlagBackupEligible}, {p.BackupState, protocol.FlagBackupState},
	} {
		if f.on {
			flags |= f.flag
		}
	}
	c := webauthn.Credential{
		ID:                p.ID,
		PublicKey:         p.PublicKey,
		AttestationType:   p.AttestationType,
		AttestationFormat: p.AttestationFormat,
		Flags:             webauthn.NewCredentialFlags(flags),
		Authenticator:     webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
	for _, t := range p.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	return c
}

func fromCredential(user, name string, c *webauthn.Credential, now time.Time) Passkey {
	p := Passkey{
		ID: c.ID, User: user, Name: name, PublicKey: c.PublicKey,
		SignCount: c.Authenticator.SignCount, AAGUID: c.Authenticator.AAGUID,
		UserPresent: c.Flags.UserPresent, UserVerified: c.Flags.UserVerified,
		BackupEligible: c.Flags.BackupEligible, BackupState: c.Flags.BackupState,
		AttestationType: c.AttestationType, AttestationFormat: c.AttestationFormat,
		CreatedAt: now,
	}
	for _, t := range c.Transport {
		p.Transports = append(p.Transports, string(t))
	}
	return p
}

// passkeyID is how pages and the CLI name a passkey: its credential ID in
// base64url.
func passkeyID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// ceremony is the server side of a WebAuthn ceremony, kept in the store
// between its begin and its finish.
type ceremony struct {
	Purpose string               `json:"purpose"` // login or register
	Binding string               `json:"binding"` // the browser that began it
	User    string               `json:"user,omitempty"`
	Session webauthn.SessionData `json:"session"`
}

var errCeremony = errors.New("authz: no such passkey ceremony for this browser")

// beginCeremony stores c and returns its id.
func (s *Server) beginCeremony(ctx context.Context, c ceremony) (string, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	id := randomToken(24)
	return id, s.store.PutWebAuthnSession(ctx, id, data, s.now().Add(ceremonyTTL), maxCeremonies)
}

// finishCeremony takes the ceremony id, which must have been begun for
// purpose by this browser: errCeremony otherwise, and for one that expired
// or was finished already.
func (s *Server) finishCeremony(ctx context.Context, id string, sess *session, purpose string) (ceremony, error) {
	var c ceremony
	if id == "" || sess == nil {
		return c, errCeremony
	}
	data, err := s.store.TakeWebAuthnSession(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return c, errCeremony
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("authz: stored passkey ceremony: %w", err)
	}
	if c.Purpose != purpose || subtle.ConstantTimeCompare([]byte(c.Binding), []byte(sess.binding())) != 1 {
		return ceremony{}, errCeremony
	}
	return c, nil
}

// answerScript answers the passkey script's request with JSON.
func answerScript(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func scriptError(w http.ResponseWriter, status int, msg string) {
	answerScript(w, status, map[string]string{"error": msg})
}

// handlePasskeyRegisterBegin is POST ISSUER/account/passkeys/begin, the
// account page script's first step of adding a passkey: it answers the
// options for navigator.credentials.create and keeps the challenge.
func (s *Server) handlePasskeyRegisterBegin(w http.ResponseWriter, r *http.Request) {
	if !readScriptForm(w, r) {
		return
	}
	ctx := r.Context()
	sess := s.currentSession(r)
	if !s.checkCSRF(sess, "account", "passkey-add", r.PostForm.Get("csrf_token")) || !s.signedIn(ctx, sess) {
		scriptError(w, http.StatusForbidden, "This page has expired. Open your account page again.")
		return
	}
	if s.passkeys.rp == nil {
		scriptError(w, http.StatusBadRequest, s.passkeys.off)
		return
	}
	if !s.recentlySignedIn(sess) {
		scriptError(w, http.StatusForbidden, msgSignInAgain)
		return
	}
	if !s.ceremonies.Reserve(s.limitKey(r)) {
		scriptError(w, http.StatusTooManyRequests, "Too many passkey requests from this address. Wait a minute and try again.")
		return
	}
	keys, err := s.store.ListPasskeys(ctx, sess.user)
	if err != nil {
		s.log.Error("passkey: listing passkeys failed", "err", err)
		scriptError(w, http.StatusInternalServerError, "mcpd could not start. Try again.")
		return
	}
	if len(keys) >= maxPasskeysPerUser {
		scriptError(w, http.StatusBadRequest, msgPasskeysFull(len(keys)))
		return
	}
	user := s.webauthnUser(sess.user, keys)
	var exclude []protocol.CredentialDescriptor
	for _, c := range user.creds {
		exclude = append(exclude, c.Descriptor())
	}
	creation, sd, err := s.passkeys.rp.BeginRegistration(user, webauthn.WithExclusions(exclude))
	if err != nil {
		s.log.Error("passkey: begin registration failed", "err", err)
		scriptError(w, http.StatusInternalServerError, "mcpd could not start. Try again.")
		return
	}
	id, err := s.beginCeremony(ctx, ceremony{Purpose: "register", Binding: sess.binding(), User: sess.user, Session: *sd})
	if err != nil {
		s.log.Error("passkey: storing the ceremony failed", "err", err)
		scriptError(w, http.StatusInternalServerError, "mcpd could not start. Try again.")
		return
	}
	answerScript(w, http.StatusOK, map[string]any{"ceremony": id, "publicKey": creation.Response})
}

// addPasskey is the account form that finishes adding a passkey: the
// script filled in the ceremony and the authenticator's answer.
func (s *Server) addPasskey(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	fail := func(status int, msg string) { s.renderAccount(w, r, sess, status, "", msg) }
	if s.passkeys.rp == nil {
		fail(http.StatusBadRequest, s.passkeys.off)
		return
	}
	name, ok := passkeyName(r.PostForm.Get("name"))
	if !ok {
		fail(http.StatusBadRequest, "Give the passkey a name of at most 64 letters, such as the device it is on.")
		return
	}
	c, err := s.finishCeremony(ctx, r.PostForm.Get("ceremony"), sess, "register")
	if err != nil || c.User != sess.user {
		if err != nil && !errors.Is(err, errCeremony) {
			s.log.Error("passkey: ceremony lookup failed", "err", err)
		}
		fail(http.StatusBadRequest, "Adding the passkey took too long or was already finished. Try again.")
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostForm.Get("credential")))
	if err != nil {
		s.log.Info("passkey: unreadable registration", "user", sess.user, "err", err)
		fail(http.StatusBadRequest, "Your browser's answer could not be read. Try again.")
		return
	}
	// The limit holds here, not only when the ceremony began: ceremonies
	// begun together would add one each. Adds of one user take turns.
	unlock := s.passkeyLocks.Lock(sess.user)
	defer unlock()
	keys, err := s.store.ListPasskeys(ctx, sess.user)
	if err != nil {
		s.log.Error("passkey: listing passkeys failed", "err", err)
		fail(http.StatusInternalServerError, "mcpd could not add the passkey. Try again.")
		return
	}
	if len(keys) >= maxPasskeysPerUser {
		fail(http.StatusBadRequest, msgPasskeysFull(len(keys)))
		return
	}
	cred, err := s.passkeys.rp.CreateCredential(s.webauthnUser(sess.user, keys), c.Session, parsed)
	if err != nil {
		s.log.Info("passkey: registration refused", "user", sess.user, "err", webauthnDetail(err))
		fail(http.StatusBadRequest, "The passkey could not be verified, so it was not added.")
		return
	}
	err = s.store.CreatePasskey(ctx, fromCredential(sess.user, name, cred, s.now()))
	switch {
	case errors.Is(err, ErrAlreadyExists):
		fail(http.StatusConflict, "This passkey is registered already.")
		return
	case err != nil:
		s.log.Error("passkey: storing failed", "err", err)
		fail(http.StatusInternalServerError, "mcpd could not add the passkey. Try again.")
		return
	}
	s.log.Info("passkey added", "user", sess.user)
	s.redirectAccount(w, r, "passkey-added")
}

// renamePasskey and removePasskey are the account forms of one passkey of
// the signed-in user.
func (s *Server) renamePasskey(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	name, ok := passkeyName(r.PostForm.Get("name"))
	if !ok {
		s.renderAccount(w, r, sess, http.StatusBadRequest, "", "Give the passkey a name of at most 64 letters.")
		return
	}
	id, err := base64.RawURLEncoding.DecodeString(r.PostForm.Get("passkey_id"))
	if err == nil {
		var p Passkey
		if p, err = s.store.GetPasskey(ctx, id); err == nil && p.User != sess.user {
			err = ErrNotFound
		}
	}
	if err == nil {
		err = s.store.UpdatePasskey(ctx, id, func(p *Passkey) error {
			p.Name = name
			return nil
		})
	}
	if err != nil {
		s.renderAccount(w, r, sess, http.StatusNotFound, "", "You have no such passkey.")
		return
	}
	s.redirectAccount(w, r, "passkey-renamed")
}

func (s *Server) removePasskey(w http.ResponseWriter, r *http.Request, sess *session) {
	id, err := base64.RawURLEncoding.DecodeString(r.PostForm.Get("passkey_id"))
	if err == nil {
		err = s.store.DeletePasskey(r.Context(), sess.user, id)
	}
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Error("passkey: removing failed", "err", err)
		}
		s.renderAccount(w, r, sess, http.StatusNotFound, "", "You have no such passkey.")
		return
	}
	s.log.Info("passkey removed", "user", sess.user)
	s.redirectAccount(w, r, "passkey-removed")
}

func msgPasskeysFull(n int) string {
	return fmt.Sprintf("You have %d passkeys, the most an account may have. Remove one first.", n)
}

// passkeyName cleans a name typed for a passkey: trimmed, at most 64
// characters of valid UTF-8, not empty, and, as for client names, no
// control characters and no bidirectional overrides or isolates, which
// make the rest of a line (on the account page, in the admin's table)
// read otherwise.
func passkeyName(name string) (string, bool) {
	name = strings.TrimSpace(name)
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxPasskeyName {
		return "", false
	}
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }) >= 0 {
		return "", false
	}
	return name, true
}

// webauthnDetail is the developer detail of a go-webauthn error, for the
// log: what the library found wrong, never key material.
func webauthnDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" {
			return pe.Details + ": " + pe.DevInfo
		}
		return pe.Details
	}
	return err.Error()
}
