-- 0001: the initial schema. Every record keeps the JSON that package store
-- encodes for it (column data), next to the columns the queries need.
-- Token signatures and JTIs are stored only as their SHA-256 (key).

CREATE TABLE secrets (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);

CREATE TABLE users (
	name text PRIMARY KEY,
	data json NOT NULL
);

CREATE TABLE clients (
	id           text PRIMARY KEY,
	source       text NOT NULL,
	created_at   timestamptz NOT NULL,
	activated_at timestamptz, -- NULL until its first completed authorization
	data         json NOT NULL
);

CREATE TABLE consents (
	user_name  text NOT NULL,
	client_id  text NOT NULL,
	expires_at timestamptz, -- NULL: never
	data       json NOT NULL,
	PRIMARY KEY (user_name, client_id)
);
CREATE INDEX consents_client ON consents (client_id);
CREATE INDEX consents_expiry ON consents (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE notes (
	owner text NOT NULL,
	id    text NOT NULL,
	data  json NOT NULL,
	PRIMARY KEY (owner, id)
);

-- Every fosite request: authorization codes (c), access tokens (a),
-- refresh tokens (r) and PKCE sessions (p). A grant is every row of one
-- request_id.
CREATE TABLE tokens (
	kind       text NOT NULL CHECK (kind IN ('c', 'a', 'r', 'p')),
	key        bytea NOT NULL,
	request_id text NOT NULL,
	client_id  text NOT NULL,
	subject    text NOT NULL,
	active     boolean NOT NULL, -- false: a used code, a rotated refresh token
	expires_at timestamptz,      -- NULL: the session set none
	data       json NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE INDEX tokens_request ON tokens (request_id);
CREATE INDEX tokens_client ON tokens (client_id);
CREATE INDEX tokens_subject ON tokens (subject);
CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE jtis (
	key        bytea PRIMARY KEY,
	expires_at timestamptz NOT NULL
);
CREATE INDEX jtis_expiry ON jtis (expires_at);

CREATE TABLE successors (
	key        bytea PRIMARY KEY,
	sealed     bytea NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX successors_expiry ON successors (expires_at);
