-- 0004: bounded growth, as in the bbolt store. A used code and a rotated or
-- revoked refresh token keep only their tombstone in data (store.Tombstone:
-- what reuse detection and the DPoP binding need). seq numbers a grant's
-- retired refresh tokens in the order they were retired, newest highest (0:
-- retired before this version, the oldest), so that a rotation deletes
-- the grant's tombstones older than its newest Options.KeepRotated, with
-- their successors.
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS seq bigint NOT NULL DEFAULT 0;

-- A grant's rows by kind, its retired refresh tokens in order: what every
-- rotation reads (the newest seq), deletes (the grant's access tokens) and
-- prunes. It replaces the index on request_id alone, with which the planner
-- combined the primary key's kind prefix, a scan of every token of a kind.
CREATE INDEX IF NOT EXISTS tokens_grant ON tokens (request_id, kind, seq);
DROP INDEX IF EXISTS tokens_request;
