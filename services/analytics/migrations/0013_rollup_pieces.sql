-- Rollups of parts of UTC days: the pieces a UTC day splits into at the site's local midnights
-- (every rolled-up dimension), and at its local hours (totals). A period or time bucket in the
-- site's zone is made of whole UTC days (`rollups`) and such pieces; each UTC day gives it one
-- piece at most, and no visitor or visit spans two UTC days, so the counters add up exactly.
-- Pieces are current with their day's `rollups` (`rollup_days`); a query uses a piece only where
-- its bounds are the ones it needs, so pieces cut in a zone the site has left are never used.
CREATE TABLE rollup_pieces (
    website_id     TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    -- The UTC day the piece is part of, and its bounds, unix ms.
    day            BIGINT NOT NULL,
    start_ts       BIGINT NOT NULL,
    end_ts         BIGINT NOT NULL,
    dim            TEXT NOT NULL,
    value          TEXT NOT NULL,
    visitors       BIGINT NOT NULL,
    pageviews      BIGINT NOT NULL,
    events         BIGINT NOT NULL,
    visits         BIGINT NOT NULL,
    bounces        BIGINT NOT NULL,
    duration       BIGINT NOT NULL,
    views          BIGINT NOT NULL,
    engaged_ms     BIGINT NOT NULL,
    engaged_visits BIGINT NOT NULL,
    scroll_total   BIGINT NOT NULL,
    scroll_visits  BIGINT NOT NULL,
    PRIMARY KEY (website_id, dim, start_ts, end_ts, value)
);
CREATE INDEX rollup_pieces_by_day ON rollup_pieces (website_id, day);
-- Every rolled-up day of a site not in UTC is rolled up again, now with its pieces.
INSERT INTO rollup_pending (website_id, day, version)
    SELECT d.website_id, d.day, 1 FROM rollup_days d JOIN websites w ON w.id = d.website_id WHERE w.timezone <> 'UTC'
    ON CONFLICT (website_id, day) DO UPDATE SET version = rollup_pending.version + 1;
