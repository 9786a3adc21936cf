-- More of Plausible's dimensions, stored at ingestion: the page's host on each event; the
-- referrer (host and path), the acquisition channel, utm_content, utm_term and the browser's and
-- operating system's versions on the visit, and, as with every visit attribute, on its events.
-- Events stored before this migration have them empty.
ALTER TABLE events ADD COLUMN hostname TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN referrer TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_content TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_term TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN browser_version TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN os_version TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN referrer TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN utm_content TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN utm_term TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN browser_version TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN os_version TEXT NOT NULL DEFAULT '';
-- Rollups now keep these dimensions too: every rolled-up day is rolled up again, and read from
-- raw events meanwhile. (The WHERE tells SQLite's parser that ON CONFLICT is not a join's.)
INSERT INTO rollup_pending (website_id, day, version)
    SELECT website_id, day, 1 FROM rollup_days WHERE 1 = 1
    ON CONFLICT (website_id, day) DO NOTHING;
DELETE FROM rollup_days;
