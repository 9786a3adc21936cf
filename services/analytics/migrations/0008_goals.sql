-- Goals of a website: a custom event by name, or pageviews of the pages a path matches (`*`
-- standing for any characters). Exactly one of event_name and page_path is set. Display names
-- are unique per site: results name goals by them. A revenue goal is an event goal with a
-- currency.
CREATE TABLE goals (
    id           TEXT PRIMARY KEY,
    website_id   TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    event_name   TEXT,
    page_path    TEXT,
    -- An event goal's revenue currency (ISO 4217): its events' revenue in that currency counts.
    currency     TEXT,
    created_at   BIGINT NOT NULL,
    UNIQUE (website_id, display_name)
);
