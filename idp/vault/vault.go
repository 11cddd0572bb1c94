package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpd/mcpd/idp"
	"github.com/mcpd/mcpd/internal/keymutex"
)

// ErrNotFound is what a Store returns for a token it does not keep, or
// for a user that does not exist.
var ErrNotFound = errors.New("not found")

// ErrNoToken means mcpd holds no usable token of the user at the
// provider: the user never signed in with it (or signed in with a
// password), or the grant is gone. The user must sign in with the
// provider again.
var ErrNoToken = errors.New("no upstream token for this user")

// Store keeps sealed tokens per user and provider; cmd/mcpd adapts the
// store package to it.
type Store interface {
	PutUpstreamToken(ctx context.Context, user, provider string, sealed []byte) error // ErrNotFound: no such user
	GetUpstreamToken(ctx context.Context, user, provider string) ([]byte, error)      // ErrNotFound
	DeleteUpstreamToken(ctx context.Context, user, provider string) error
}

// Refresher gets a new token for a refresh token; the identity provider
// connectors are Refreshers. A refusal wraps idp.ErrRejected.
type Refresher interface {
	Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error)
}

// Config configures a Vault.
type Config struct {
	// Key is the AES-256 key, 32 bytes from crypto/rand.
	Key   []byte
	Store Store
	// Refreshers are the providers by name.
	Refreshers map[string]Refresher
	// Leeway treats a token as expired this long before its expiry, so a
	// call does not reach the API with a token about to lapse; 0 → 30 s.
	Leeway time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Vault seals, keeps and refreshes upstream tokens. Create it with New.
type Vault struct {
	cfg  Config
	aead cipher.AEAD

	locks keymutex.Mutex // per user and provider
}

// New checks cfg.
func New(cfg Config) (*Vault, error) {
	if len(cfg.Key) != 32 {
		return nil, errors.New("vault: Key must be 32 bytes")
	}
	if cfg.Store == nil {
		return nil, errors.New("vault: Store is required")
	}
	block, err := aes.NewCipher(cfg.Key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Vault{cfg: cfg, aead: aead}, nil
}

// sealedToken is what a seal holds.
type sealedToken struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

const sealVersion = 1

func additionalData(user, provider string) []byte {
	return []byte("mcpd upstream token v1\x00" + user + "\x00" + provider)
}

func (v *Vault) seal(user, provider string, tok *oauth2.Token) ([]byte, error) {
	plain, err := json.Marshal(sealedToken{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry.UTC()})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+v.aead.NonceSize(), 1+v.aead.NonceSize()+len(plain)+v.aead.Overhead())
	out[0] = sealVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, err
	}
	return v.aead.Seal(out, out[1:], plain, additionalData(user, provider)), nil
}

func (v *Vault) open(user, provider string, sealed []byte) (*oauth2.Token, error) {
	n := v.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, errors.New("vault: not a sealed token")
	}
	plain, err := v.aead.Open(nil, sealed[1:1+n], sealed[1+n:], additionalData(user, provider))
	if err != nil {
		return nil, errors.New("vault: the sealed token does not open")
	}
	var st sealedToken
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, fmt.Errorf("vault: decode sealed token: %w", err)
	}
	return &oauth2.Token{AccessToken: st.AccessToken, TokenType: st.TokenType, RefreshToken: st.RefreshToken, Expiry: st.Expiry}, nil
}

// Save seals tok and keeps it as user's token at provider, replacing the
// one kept before. ErrNotFound when the user does not exist. A token with
// expires_in expires that long after now, by the vault's clock.
func (v *Vault) Save(ctx context.Context, user, provider string, tok *oauth2.Token) error {
	if tok == nil || tok.AccessToken == "" {
		return errors.New("vault: no access token to keep")
	}
	if tok.ExpiresIn > 0 {
		cp := *tok
		cp.Expiry = v.cfg.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
		tok = &cp
	}
	sealed, err := v.seal(user, provider, tok)
	if err != nil {
		return err
	}
	return v.cfg.Store.PutUpstreamToken(ctx, user, provider, sealed)
}

// live reports whether tok can be used now.
func (v *Vault) live(tok *oauth2.Token) bool {
	return tok.AccessToken != "" && (tok.Expiry.IsZero() || v.cfg.Now().Add(v.cfg.Leeway).Before(tok.Expiry))
}

// AccessToken returns a live access token of user at provider, refreshing
// the kept token when it has expired. ErrNoToken when there is none or the
// provider refused to refresh it; any other error is passing (the
// provider could not be reached) and leaves the kept token alone.
func (v *Vault) AccessToken(ctx context.Context, user, provider string) (string, error) {
	unlock := v.locks.Lock(user + "\x00" + provider)
	defer unlock()

	sealed, err := v.cfg.Store.GetUpstreamToken(ctx, user, provider)
	if errors.Is(err, ErrNotFound) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", err
	}
	tok, err := v.open(user, provider, sealed)
	if err != nil {
		// A seal that does not open (a lost key, a damaged record) is as
		// good as none: forget it, so a fresh sign-in replaces it.
		v.cfg.Logger.WarnContext(ctx, "upstream token does not open; forgetting it", "user", user, "provider", provider, "err", err)
		v.forget(ctx, user, provider)
		return "", ErrNoToken
	}
	if v.live(tok) {
		return tok.AccessToken, nil
	}
	if tok.RefreshToken == "" {
		v.forget(ctx, user, provider)
		return "", ErrNoToken
	}
	r, ok := v.cfg.Refreshers[provider]
	if !ok {
		return "", fmt.Errorf("vault: no identity provider named %q", provider)
	}
	nt, err := r.Refresh(ctx, tok)
	if errors.Is(err, idp.ErrRejected) {
		// Another process sharing the store may have refreshed first, and
		// the provider rotated the refresh token we hold: take its token.
		if again, gerr := v.cfg.Store.GetUpstreamToken(ctx, user, provider); gerr == nil && !bytes.Equal(again, sealed) {
			if other, oerr := v.open(user, provider, again); oerr == nil && v.live(other) {
				return other.AccessToken, nil
			}
		}
		v.cfg.Logger.InfoContext(ctx, "upstream grant is gone; the user must sign in again", "user", user, "provider", provider, "err", err)
		v.forget(ctx, user, provider)
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("refreshing the token at %s: %w", provider, err)
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = tok.RefreshToken
	}
	if err := v.Save(ctx, user, provider, nt); err != nil {
		if errors.Is(err, ErrNotFound) { // the user was removed meanwhile
			return "", ErrNoToken
		}
		return "", err
	}
	v.cfg.Logger.InfoContext(ctx, "upstream token refreshed", "user", user, "provider", provider)
	return nt.AccessToken, nil
}

func (v *Vault) forget(ctx context.Context, user, provider string) {
	if err := v.cfg.Store.DeleteUpstreamToken(ctx, user, provider); err != nil {
		v.cfg.Logger.WarnContext(ctx, "forgetting an upstream token failed", "user", user, "provider", provider, "err", err)
	}
}
