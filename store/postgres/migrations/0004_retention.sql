-- 0004: bounded growth, as in the bbolt store. A used code and a rotated or
-- revoked refresh token keep only their tombstone in data (store.Tombstone:
-- what reuse detection and the DPoP binding need). seq numbers a grant's
-- retired refresh tokens in the order they were retired, newest highest (0:
-- retired before this version, the oldest), so that a rotation deletes
-- the grant's oldest tombstones beyond Options.KeepRotated, with their
-- successors.
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS seq bigint NOT NULL DEFAULT 0;
