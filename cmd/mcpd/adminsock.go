package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// adminSocketName is the Unix socket serve opens in the data directory.
const adminSocketName = "admin.sock"

// adminRequest is the body of every admin socket call.
type adminRequest struct {
	Name     string `json:"name,omitempty"`
	Password string `json:"password,omitempty"`
	ID       string `json:"id,omitempty"`
	User     string `json:"user,omitempty"`
	Email    string `json:"email,omitempty"`
	Provider string `json:"provider,omitempty"`
}

// adminError is the body of a failed admin socket call.
type adminError struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"` // not_found, exists, usage
}

// listenAdmin opens DATA/admin.sock with mode 0600. A stale socket left by a
// killed server is removed; a live one means another server owns the data.
func listenAdmin(dataDir string) (net.Listener, string, error) {
	path := filepath.Join(dataDir, adminSocketName)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, "", fmt.Errorf("admin socket %s is in use by another mcpd process", path)
	}
	os.Remove(path)
	// Create the socket with no permissions for group and others from the
	// start, then make the mode explicit.
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("admin socket: %w", err)
	}
	return l, path, nil
}

// adminHandler serves the admin operations of a running server.
func adminHandler(a admin, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	handle := func(op string, fn func(ctx context.Context, req adminRequest) (any, error)) {
		mux.HandleFunc("POST /admin/"+op, func(w http.ResponseWriter, r *http.Request) {
			var req adminRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
				writeAdminError(w, http.StatusBadRequest, err)
				return
			}
			res, err := fn(r.Context(), req)
			if err != nil {
				logger.Info("admin operation failed", "op", op, "err", err)
				writeAdminError(w, http.StatusUnprocessableEntity, err)
				return
			}
			logger.Info("admin operation", "op", op)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(res)
		})
	}
	handle("user-add", func(ctx context.Context, req adminRequest) (any, error) {
		return struct{}{}, a.AddUser(ctx, req.Name, req.Password)
	})
	handle("user-add-email", func(ctx context.Context, req adminRequest) (any, error) {
		return struct{}{}, a.AddUserWithEmail(ctx, req.Name, req.Password, req.Email)
	})
	handle("user-email", func(ctx context.Context, req adminRequest) (any, error) {
		return struct{}{}, a.SetUserEmail(ctx, req.Name, req.Email)
	})
	handle("user-unlink", func(ctx context.Context, req adminRequest) (any, error) {
		n, err := a.UnlinkUser(ctx, req.Name, req.Provider)
		return unlinkResult{Identities: n}, err
	})
	handle("user-list", func(ctx context.Context, _ adminRequest) (any, error) { return a.ListUsers(ctx) })
	handle("user-passwd", func(ctx context.Context, req adminRequest) (any, error) {
		return struct{}{}, a.SetPassword(ctx, req.Name, req.Password)
	})
	handle("user-remove", func(ctx context.Context, req adminRequest) (any, error) { return a.RemoveUser(ctx, req.Name) })
	handle("user-passkeys", func(ctx context.Context, req adminRequest) (any, error) { return a.ListPasskeys(ctx, req.Name) })
	handle("user-passkey-remove", func(ctx context.Context, req adminRequest) (any, error) {
		return struct{}{}, a.RemovePasskey(ctx, req.Name, req.ID)
	})
	handle("client-list", func(ctx context.Context, _ adminRequest) (any, error) { return a.ListClients(ctx) })
	handle("client-show", func(ctx context.Context, req adminRequest) (any, error) { return a.ShowClient(ctx, req.ID) })
	handle("client-revoke", func(ctx context.Context, req adminRequest) (any, error) { return a.RevokeClient(ctx, req.ID) })
	handle("consent-list", func(ctx context.Context, req adminRequest) (any, error) { return a.ListConsents(ctx, req.User) })
	handle("consent-revoke", func(ctx context.Context, req adminRequest) (any, error) {
		return struct{}{}, a.RevokeConsent(ctx, req.User, req.ID)
	})
	mux.HandleFunc("POST /admin/backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := a.Backup(r.Context(), w); err != nil {
			logger.Error("admin backup failed", "err", err)
			return
		}
		logger.Info("admin operation", "op", "backup")
	})
	return mux
}

func writeAdminError(w http.ResponseWriter, status int, err error) {
	e := adminError{Error: err.Error()}
	switch {
	case errors.Is(err, errNotFound):
		e.Code = "not_found"
	case errors.Is(err, errExists):
		e.Code = "exists"
	case errors.As(err, new(usageErr)):
		e.Code = "usage"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// socketAdmin runs admin operations on a running server through its socket.
type socketAdmin struct {
	hc *http.Client
}

// dialAdmin connects to DATA/admin.sock. It fails when no server listens.
func dialAdmin(dataDir string) (*socketAdmin, error) {
	path := filepath.Join(dataDir, adminSocketName)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, err
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &socketAdmin{hc: &http.Client{Transport: tr}}, nil
}

func (s *socketAdmin) call(ctx context.Context, op string, req adminRequest, out any) error {
	resp, err := s.post(ctx, op, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		out = &struct{}{}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (s *socketAdmin) post(ctx context.Context, op string, req adminRequest) (*http.Response, error) {
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://mcpd/admin/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e adminError
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return nil, fmt.Errorf("admin socket: %s", resp.Status)
		}
		err := errors.New(e.Error)
		switch e.Code {
		case "not_found":
			err = wrapAs(e.Error, errNotFound)
		case "exists":
			err = wrapAs(e.Error, errExists)
		case "usage":
			err = usageError(e.Error)
		}
		return nil, err
	}
	return resp, nil
}

// wrapAs returns an error that prints msg and matches sentinel.
func wrapAs(msg string, sentinel error) error { return sentinelErr{msg, sentinel} }

type sentinelErr struct {
	msg      string
	sentinel error
}

func (e sentinelErr) Error() string { return e.msg }
func (e sentinelErr) Unwrap() error { return e.sentinel }

func (s *socketAdmin) AddUser(ctx context.Context, name, password string) error {
	return s.call(ctx, "user-add", adminRequest{Name: name, Password: password}, nil)
}

func (s *socketAdmin) AddUserWithEmail(ctx context.Context, name, password, email string) error {
	return s.call(ctx, "user-add-email", adminRequest{Name: name, Password: password, Email: email}, nil)
}

func (s *socketAdmin) SetUserEmail(ctx context.Context, name, email string) error {
	return s.call(ctx, "user-email", adminRequest{Name: name, Email: email}, nil)
}

// unlinkResult is what user-unlink answers over the socket.
type unlinkResult struct {
	Identities int `json:"identities"`
}

func (s *socketAdmin) UnlinkUser(ctx context.Context, name, provider string) (int, error) {
	var out unlinkResult
	err := s.call(ctx, "user-unlink", adminRequest{Name: name, Provider: provider}, &out)
	return out.Identities, err
}

func (s *socketAdmin) ListUsers(ctx context.Context) ([]userView, error) {
	var out []userView
	return out, s.call(ctx, "user-list", adminRequest{}, &out)
}

func (s *socketAdmin) SetPassword(ctx context.Context, name, password string) error {
	return s.call(ctx, "user-passwd", adminRequest{Name: name, Password: password}, nil)
}

func (s *socketAdmin) RemoveUser(ctx context.Context, name string) (revokeResult, error) {
	var out revokeResult
	return out, s.call(ctx, "user-remove", adminRequest{Name: name}, &out)
}

func (s *socketAdmin) ListPasskeys(ctx context.Context, user string) ([]passkeyView, error) {
	var out []passkeyView
	return out, s.call(ctx, "user-passkeys", adminRequest{Name: user}, &out)
}

func (s *socketAdmin) RemovePasskey(ctx context.Context, user, id string) error {
	return s.call(ctx, "user-passkey-remove", adminRequest{Name: user, ID: id}, nil)
}

func (s *socketAdmin) ListClients(ctx context.Context) ([]clientView, error) {
	var out []clientView
	return out, s.call(ctx, "client-list", adminRequest{}, &out)
}

func (s *socketAdmin) ShowClient(ctx context.Context, id string) (clientView, error) {
	var out clientView
	return out, s.call(ctx, "client-show", adminRequest{ID: id}, &out)
}

func (s *socketAdmin) RevokeClient(ctx context.Context, id string) (revokeResult, error) {
	var out revokeResult
	return out, s.call(ctx, "client-revoke", adminRequest{ID: id}, &out)
}

func (s *socketAdmin) ListConsents(ctx context.Context, user string) ([]consentView, error) {
	var out []consentView
	return out, s.call(ctx, "consent-list", adminRequest{User: user}, &out)
}

func (s *socketAdmin) RevokeConsent(ctx context.Context, user, clientID string) error {
	return s.call(ctx, "consent-revoke", adminRequest{User: user, ID: clientID}, nil)
}

func (s *socketAdmin) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := s.post(ctx, "backup", adminRequest{})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

func (s *socketAdmin) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}

// openAdmin returns the admin of the server running on dataDir, or, when
// none runs, one that opens the database directly. With a PostgreSQL
// database it always opens the database: every replica shares it, and
// what the command changes reaches all of them (a revocation within a
// second), with no admin socket involved.
func openAdmin(ctx context.Context, dataDir, database string, logger *slog.Logger) (admin, error) {
	if database == "" {
		if s, err := dialAdmin(dataDir); err == nil {
			return s, nil
		}
	}
	st, err := openBackend(ctx, database, dataDir, logger, false)
	if err != nil {
		return nil, err
	}
	return localAdmin{s: st, closer: st.Close}, nil
}
