-- 0005: the row Health rewrites, while writes fail, to see the database
-- take writes again (after a failover onto a standby is promoted, a full
-- disk freed, a restart).
CREATE TABLE IF NOT EXISTS write_probe (
	id        int PRIMARY KEY CHECK (id = 1),
	probed_at timestamptz NOT NULL
);
INSERT INTO write_probe (id, probed_at) VALUES (1, now()) ON CONFLICT (id) DO NOTHING;
