-- Visits, maintained at ingestion: a visit is one visitor's run of events with no gap over
-- 30 minutes. Queries read visit metrics (visits, bounce rate, duration) here instead of
-- re-deriving visits from raw events with window functions on every request.
CREATE TABLE visits (
    id           TEXT PRIMARY KEY,
    website_id   TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    visitor_id   TEXT NOT NULL,
    start_ts     BIGINT NOT NULL,
    last_ts      BIGINT NOT NULL,
    pageviews    BIGINT NOT NULL,
    events       BIGINT NOT NULL,
    entry_page   TEXT NOT NULL,
    exit_page    TEXT NOT NULL,
    source       TEXT NOT NULL,
    utm_source   TEXT NOT NULL,
    utm_medium   TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    country      TEXT NOT NULL,
    browser      TEXT NOT NULL,
    os           TEXT NOT NULL,
    device       TEXT NOT NULL
);
CREATE INDEX visits_by_site_start ON visits (website_id, start_ts);
-- Ingestion finds the open visits of a batch's visitors by this index. Visitor hashes are salted
-- with the site, so the visitor alone is selective.
CREATE INDEX visits_by_visitor ON visits (visitor_id, last_ts);

-- Each event carries its visit and the visit's attributes, so a query grouped or filtered by
-- any visit attribute reads one table. Events stored before this migration have no visit.
ALTER TABLE events ADD COLUMN visit_id TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN entry_page TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_source TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_medium TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN utm_campaign TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN browser TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN os TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN device TEXT NOT NULL DEFAULT '';
