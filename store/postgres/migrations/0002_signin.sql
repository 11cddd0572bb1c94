-- 0002: sign-in state that every replica must see (browser sessions,
-- authorization requests waiting for sign-in or consent, WebAuthn
-- ceremonies) and users' passkeys. Session ids are what the caller
-- derives from the cookie, never the cookie.

CREATE TABLE sessions (
	id         text PRIMARY KEY,
	user_name  text NOT NULL,
	expires_at timestamptz NOT NULL,
	data       json NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE pending_authorizations (
	id         text PRIMARY KEY,
	expires_at timestamptz NOT NULL,
	data       json NOT NULL
);
CREATE INDEX pending_authorizations_expiry ON pending_authorizations (expires_at);

CREATE TABLE webauthn_sessions (
	id         text PRIMARY KEY,
	expires_at timestamptz NOT NULL,
	data       bytea NOT NULL
);
CREATE INDEX webauthn_sessions_expiry ON webauthn_sessions (expires_at);

CREATE TABLE passkeys (
	id        bytea PRIMARY KEY,
	user_name text NOT NULL,
	data      json NOT NULL
);
CREATE INDEX passkeys_user ON passkeys (user_name);
