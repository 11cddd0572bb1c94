package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"time"

	"github.com/mcpd/mcpd/store"
)

// admin is every operation of the admin subcommands. localAdmin runs them on
// the database directly (server stopped); socketAdmin sends them to a running
// server over DATA/admin.sock, whose handler runs localAdmin. Both give the
// same results, so the output is the same either way.
type admin interface {
	AddUser(ctx context.Context, name, password string) error
	// AddUserWithEmail adds a user known by email, whom a sign-in at an
	// identity provider with that verified address finds; with an empty
	// password the user has none and signs in only that way.
	AddUserWithEmail(ctx context.Context, name, password, email string) error
	SetUserEmail(ctx context.Context, name, email string) error
	// UnlinkUser deletes the identities linked to user through the
	// identity provider named provider, and the user's token there, and
	// returns how many identities went.
	UnlinkUser(ctx context.Context, name, provider string) (int, error)
	ListUsers(ctx context.Context) ([]userView, error)
	SetPassword(ctx context.Context, name, password string) error
	RemoveUser(ctx context.Context, name string) (revokeResult, error)
	ListPasskeys(ctx context.Context, user string) ([]passkeyView, error)
	RemovePasskey(ctx context.Context, user, id string) error
	ListClients(ctx context.Context) ([]clientView, error)
	ShowClient(ctx context.Context, id string) (clientView, error)
	RevokeClient(ctx context.Context, id string) (revokeResult, error)
	ListConsents(ctx context.Context, user string) ([]consentView, error)
	RevokeConsent(ctx context.Context, user, clientID string) error
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Compact(ctx context.Context) (compactView, error)
	Check(ctx context.Context) (checkView, error)
	Close() error
}

// compactView is what `mcpd compact` did.
type compactView struct {
	Path        string `json:"path"`
	BeforeBytes int64  `json:"before_bytes"`
	AfterBytes  int64  `json:"after_bytes"`
}

// checkView is what `mcpd doctor --data` found: the checks and the file's
// statistics.
type checkView struct {
	Path   string      `json:"path"`
	Online bool        `json:"online"` // checked by the running server
	Checks []check     `json:"checks"`
	Stats  store.Stats `json:"stats"`
}

// userView is a user as the CLI prints it.
type userView struct {
	Name       string         `json:"name"`
	Email      string         `json:"email,omitempty"`
	Identities []identityView `json:"identities,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
	Passkeys   int            `json:"passkeys"`
}

// identityView is an identity at a provider linked to a user.
type identityView struct {
	Provider  string    `json:"provider"`
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// passkeyView is a passkey as the CLI prints it; id is the credential ID
// in base64url, as `user passkeys --remove` takes it.
type passkeyView struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	Synced     bool      `json:"synced"`
}

// clientView is a client as the CLI prints it.
type clientView struct {
	ID                      string    `json:"id"`
	Name                    string    `json:"name"`
	RegisteredBy            string    `json:"registered_by"` // dynamic, metadata or static
	ClientURI               string    `json:"client_uri,omitempty"`
	MetadataURL             string    `json:"metadata_url,omitempty"`
	RedirectURIs            []string  `json:"redirect_uris"`
	RedirectHosts           []string  `json:"redirect_hosts"`
	GrantTypes              []string  `json:"grant_types"`
	Scopes                  []string  `json:"scopes,omitempty"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	CreatedAt               time.Time `json:"created_at"`
	LastUsedAt              time.Time `json:"last_used_at,omitzero"`
	LiveGrants              int       `json:"live_grants"`
}

// consentView is a remembered consent as the CLI prints it.
type consentView struct {
	User         string    `json:"user"`
	ClientID     string    `json:"client_id"`
	Scopes       []string  `json:"scopes"`
	RedirectHost string    `json:"redirect_host"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// revokeResult says how many grants a revocation ended.
type revokeResult struct {
	Grants int `json:"grants"`
}

// errNotFound is what admin operations return for a missing user, client
// or consent; it crosses the admin socket by its code.
var errNotFound = errors.New("not found")

// errExists is what AddUser returns for a taken name.
var errExists = errors.New("already exists")

// localAdmin runs admin operations on an open store.
type localAdmin struct {
	s      store.Backend
	closer func() error // closes the store when the CLI opened it; nil inside serve
}

func adminErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s: %w", what, errNotFound)
	case errors.Is(err, store.ErrAlreadyExists):
		return fmt.Errorf("%s: %w", what, errExists)
	}
	return err
}

func (a localAdmin) AddUser(ctx context.Context, name, password string) error {
	return adminErr(a.s.CreateUser(ctx, name, password), "user "+name)
}

func (a localAdmin) AddUserWithEmail(ctx context.Context, name, password, email string) error {
	if password == "" {
		err := a.s.CreateExternalUser(ctx, name, email)
		if errors.Is(err, store.ErrInvalidEmail) {
			return usageError(fmt.Sprintf("user add: %q is not an email address", email))
		}
		return adminErr(err, "user "+name+" or email "+email)
	}
	return a.inTx(ctx, func(ctx context.Context) error {
		if err := a.s.CreateUser(ctx, name, password); err != nil {
			return adminErr(err, "user "+name)
		}
		return a.SetUserEmail(ctx, name, email)
	})
}

// SetUserEmail sets the email address by which a sign-in at an identity
// provider finds the user.
func (a localAdmin) SetUserEmail(ctx context.Context, name, email string) error {
	err := a.s.SetUserEmail(ctx, name, email)
	if errors.Is(err, store.ErrInvalidEmail) {
		return usageError(fmt.Sprintf("%q is not an email address", email))
	}
	if errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("email %s belongs to another user: %w", email, errExists)
	}
	return adminErr(err, "user "+name)
}

func (a localAdmin) UnlinkUser(ctx context.Context, name, provider string) (int, error) {
	n, err := a.s.UnlinkIdentities(ctx, name, provider)
	return n, adminErr(err, "user "+name)
}

func (a localAdmin) ListUsers(ctx context.Context) ([]userView, error) {
	users, err := a.s.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	passkeys, err := a.s.CountPasskeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]userView, 0, len(users))
	for _, u := range users {
		ids, err := a.s.ListIdentities(ctx, u.Name)
		if err != nil {
			return nil, err
		}
		v := userView{Name: u.Name, Email: u.Email, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(), Passkeys: passkeys[u.Name]}
		for _, id := range ids {
			v.Identities = append(v.Identities, identityView{Provider: id.Provider, Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, CreatedAt: id.CreatedAt.UTC()})
		}
		out = append(out, v)
	}
	return out, nil
}

func (a localAdmin) ListPasskeys(ctx context.Context, user string) ([]passkeyView, error) {
	if ok, err := a.s.UserExists(ctx, user); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("user %s: %w", user, errNotFound)
	}
	keys, err := a.s.ListPasskeys(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]passkeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, passkeyView{
			ID: base64.RawURLEncoding.EncodeToString(k.ID), Name: k.Name,
			CreatedAt: k.CreatedAt.UTC(), LastUsedAt: k.LastUsedAt.UTC(), Synced: k.BackupState,
		})
	}
	return out, nil
}

func (a localAdmin) RemovePasskey(ctx context.Context, user, id string) error {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 {
		return fmt.Errorf("passkey %s of %s: %w", id, user, errNotFound)
	}
	return adminErr(a.s.DeletePasskey(ctx, user, raw), "passkey "+id+" of "+user)
}

// SetPassword sets a user's password and signs the user out of every
// browser: an operator resets a password when the account may be in other
// hands, and those hands must not stay signed in with the old one.
func (a localAdmin) SetPassword(ctx context.Context, name, password string) error {
	if err := a.s.SetPassword(ctx, name, password); err != nil {
		return adminErr(err, "user "+name)
	}
	if _, err := a.s.DeleteUserSessions(ctx, name, ""); err != nil {
		return fmt.Errorf("the password of %s is changed, but signing out its sessions failed: %w", name, err)
	}
	return nil
}

func (a localAdmin) RemoveUser(ctx context.Context, name string) (revokeResult, error) {
	var n int
	err := a.inTx(ctx, func(ctx context.Context) error {
		var err error
		if n, err = a.s.RevokeSubjectGrants(ctx, name); err != nil {
			return err
		}
		return adminErr(a.s.DeleteUser(ctx, name), "user "+name)
	})
	if err != nil {
		return revokeResult{}, err
	}
	return revokeResult{Grants: n}, nil
}

// inTx runs fn in one store transaction, so the steps of one admin command
// take effect together or not at all.
func (a localAdmin) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	tctx, err := a.s.BeginTX(ctx)
	if err != nil {
		return err
	}
	defer a.s.Rollback(tctx) // after Commit it does nothing
	if err := fn(tctx); err != nil {
		return err
	}
	return a.s.Commit(tctx)
}

func (a localAdmin) ListClients(ctx context.Context) ([]clientView, error) {
	clients, err := a.s.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	live, err := a.s.LiveGrants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]clientView, 0, len(clients))
	for _, c := range clients {
		out = append(out, viewClient(c, live[c.ID]))
	}
	return out, nil
}

func (a localAdmin) ShowClient(ctx context.Context, id string) (clientView, error) {
	c, err := a.s.LookupClient(ctx, id)
	if err != nil {
		return clientView{}, adminErr(err, "client "+id)
	}
	live, err := a.s.LiveGrants(ctx)
	if err != nil {
		return clientView{}, err
	}
	return viewClient(c, live[c.ID]), nil
}

// RevokeClient ends every grant and token of the client and deletes its
// registration and remembered consents, so it must register and ask the
// user again.
func (a localAdmin) RevokeClient(ctx context.Context, id string) (revokeResult, error) {
	var n int
	err := a.inTx(ctx, func(ctx context.Context) error {
		if _, err := a.s.LookupClient(ctx, id); err != nil {
			return adminErr(err, "client "+id)
		}
		var err error
		if n, err = a.s.RevokeClientGrants(ctx, id); err != nil {
			return err
		}
		return adminErr(a.s.DeleteClient(ctx, id), "client "+id)
	})
	if err != nil {
		return revokeResult{}, err
	}
	return revokeResult{Grants: n}, nil
}

func (a localAdmin) ListConsents(ctx context.Context, user string) ([]consentView, error) {
	cs, err := a.s.ListConsents(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]consentView, 0, len(cs))
	for _, c := range cs {
		out = append(out, consentView{User: c.User, ClientID: c.ClientID, Scopes: c.Scopes, RedirectHost: c.RedirectHost, CreatedAt: c.CreatedAt.UTC(), ExpiresAt: c.ExpiresAt.UTC()})
	}
	return out, nil
}

func (a localAdmin) RevokeConsent(ctx context.Context, user, clientID string) error {
	return adminErr(a.s.DeleteConsent(ctx, user, clientID), "consent of "+user+" for "+clientID)
}

// backuper is a store that copies itself: the bbolt store, whose database
// is one file.
type backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// errBackupPostgres is Backup's answer on PostgreSQL, which has its own
// tools for it.
var errBackupPostgres = errors.New("backup: the database is PostgreSQL: back it up with pg_dump (e.g. pg_dump --format=custom --file=mcpd.dump \"$MCPD_DATABASE\"), restore with pg_restore")

func (a localAdmin) Backup(ctx context.Context, w io.Writer) (int64, error) {
	b, ok := a.s.(backuper)
	if !ok {
		return 0, errBackupPostgres
	}
	return b.Backup(ctx, w)
}

// fileStore is what the bbolt store offers beyond store.Backend: the
// statistics, check and compaction of its file. PostgreSQL has no file of
// mcpd's to check or compact: its server keeps its own.
type fileStore interface {
	Path() string
	Check() error
	Stats(ctx context.Context) (store.Stats, error)
	Compact(ctx context.Context) (store.CompactStats, error)
}

// errNoFile answers compact and doctor --data on PostgreSQL.
var errNoFile = errors.New("this server keeps its data in PostgreSQL, which reclaims space and checks its files itself (VACUUM); compact and doctor --data are for the bbolt file")

func (a localAdmin) Compact(ctx context.Context) (compactView, error) {
	fs, ok := a.s.(fileStore)
	if !ok {
		return compactView{}, errNoFile
	}
	st, err := fs.Compact(ctx)
	if err != nil {
		return compactView{}, err
	}
	return compactView{Path: fs.Path(), BeforeBytes: st.Before, AfterBytes: st.After}, nil
}

// Check runs bbolt's consistency check over the open file; the file was
// inspected page by page when it was opened.
func (a localAdmin) Check(ctx context.Context) (checkView, error) {
	fs, ok := a.s.(fileStore)
	if !ok {
		return checkView{}, errNoFile
	}
	v := checkView{Path: fs.Path(), Online: a.closer == nil}
	err := fs.Check()
	v.Checks = append(v.Checks, checkOf("bbolt's consistency check of every page", err))
	st, err := fs.Stats(ctx)
	if err != nil {
		return v, err
	}
	v.Stats = st
	v.Checks = append(v.Checks, schemaCheck(st.SchemaVersion))
	return v, nil
}

// healthReporter is a backend that follows whether it takes writes: the
// bbolt store (its disk) and PostgreSQL (a full disk, a read-only
// standby, a database away).
type healthReporter interface {
	Health(ctx context.Context) store.Health
}

// writeHealth reports whether the backend takes writes; a backend that
// does not follow it is taken to.
func writeHealth(ctx context.Context, b store.Backend) store.Health {
	if h, ok := b.(healthReporter); ok {
		return h.Health(ctx)
	}
	return store.Health{Writable: true}
}

func (a localAdmin) Close() error {
	if a.closer != nil {
		return a.closer()
	}
	return nil
}

func viewClient(c *store.Client, live int) clientView {
	v := clientView{
		ID: c.ID, Name: c.Name, RegisteredBy: c.Source, ClientURI: c.URI, MetadataURL: c.MetadataURL,
		RedirectURIs: append([]string{}, c.RedirectURIs...), GrantTypes: append([]string{}, c.GrantTypes...),
		Scopes: c.Scopes, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		CreatedAt: c.CreatedAt.UTC(), LastUsedAt: c.LastUsedAt.UTC(), LiveGrants: live,
	}
	hosts := map[string]bool{}
	for _, r := range c.RedirectURIs {
		if u, err := url.Parse(r); err == nil {
			h := u.Host
			if h == "" {
				h = u.Scheme + ":"
			}
			hosts[h] = true
		}
	}
	for h := range hosts {
		v.RedirectHosts = append(v.RedirectHosts, h)
	}
	sort.Strings(v.RedirectHosts)
	return v
}

// checkOf is a doctor finding that passed when err is nil.
func checkOf(name string, err error) check {
	c := check{Name: name, OK: err == nil}
	if err != nil {
		c.Detail = err.Error()
	}
	return c
}

// schemaCheck compares a file's schema with this build's.
func schemaCheck(v int) check {
	c := check{Name: fmt.Sprintf("schema version %d (this mcpd writes %d)", v, store.SchemaVersion()), OK: v <= store.SchemaVersion()}
	if !c.OK {
		c.Detail = "a newer mcpd wrote this file; run that mcpd, or restore a backup taken before the upgrade"
	}
	return c
}
