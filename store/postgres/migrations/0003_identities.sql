-- 0003: upstream identity providers. A user may have an email address
-- (lower-case, at most one user each); identities at providers link to
-- users; a user's tokens at providers are kept sealed (opaque bytes); a
-- sign-in started at a provider is kept under the hash of its state.

ALTER TABLE users ADD COLUMN email text;
CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;

CREATE TABLE identities (
	issuer    text NOT NULL,
	subject   text NOT NULL,
	user_name text NOT NULL,
	data      json NOT NULL,
	PRIMARY KEY (issuer, subject)
);
CREATE INDEX identities_user ON identities (user_name);

CREATE TABLE upstream_tokens (
	user_name text NOT NULL,
	provider  text NOT NULL,
	sealed    bytea NOT NULL,
	PRIMARY KEY (user_name, provider)
);

CREATE TABLE idp_states (
	key        bytea PRIMARY KEY,
	expires_at timestamptz NOT NULL,
	data       bytea NOT NULL
);
CREATE INDEX idp_states_expiry ON idp_states (expires_at);
