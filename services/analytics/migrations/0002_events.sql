-- Raw events. Rollups come later; every query today reads these.
CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    website_id       TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    ts               BIGINT NOT NULL,
    name             TEXT NOT NULL,
    pathname         TEXT NOT NULL,
    referrer_host    TEXT NOT NULL,
    -- Daily-rotating hash of site, address and user agent: no cookie, nothing that identifies a
    -- person across days.
    visitor_id       TEXT NOT NULL,
    country          TEXT NOT NULL,
    props            TEXT NOT NULL,
    revenue_amount   TEXT,
    revenue_currency TEXT
);
CREATE INDEX events_by_site_time ON events (website_id, ts);

-- One random salt per UTC day, shared by every replica; old ones are deleted.
CREATE TABLE salts (
    day  TEXT PRIMARY KEY,
    salt TEXT NOT NULL
);
