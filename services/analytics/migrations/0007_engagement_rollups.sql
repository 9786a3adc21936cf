-- Daily rollups of engagement: engaged milliseconds and the visits they belong to, and the sum
-- of each visit's deepest scroll with the visits that sent one.
ALTER TABLE rollups ADD COLUMN engaged_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN engaged_visits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN scroll_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN scroll_visits BIGINT NOT NULL DEFAULT 0;
-- Bounces, durations and visit counting changed meaning: every rolled-up day is rolled up again.
INSERT INTO rollup_pending (website_id, day, version)
SELECT website_id, day, 1 FROM rollup_days WHERE true
ON CONFLICT (website_id, day) DO UPDATE SET version = rollup_pending.version + 1;
DELETE FROM rollup_days;
