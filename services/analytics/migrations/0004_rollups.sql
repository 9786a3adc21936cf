-- Daily rollups per site and dimension value, maintained as days close. Visitor hashes are
-- salted per UTC day, so no visitor and no visit spans two UTC days: counts of UTC days add up
-- exactly, distinct visitors included, and a period is its closed days from here plus raw
-- events for the rest.
CREATE TABLE rollups (
    website_id TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    -- The UTC day's first instant, unix ms.
    day        BIGINT NOT NULL,
    -- A dimension name, or '' for the day's totals.
    dim        TEXT NOT NULL,
    value      TEXT NOT NULL,
    visitors   BIGINT NOT NULL,
    pageviews  BIGINT NOT NULL,
    events     BIGINT NOT NULL,
    visits     BIGINT NOT NULL,
    bounces    BIGINT NOT NULL,
    duration   BIGINT NOT NULL,
    views      BIGINT NOT NULL,
    PRIMARY KEY (website_id, dim, day, value)
);

-- Days whose rollup is current. An event stored for a day removes the day from here until it
-- is rolled up again, so queries read raw events for it meanwhile.
CREATE TABLE rollup_days (
    website_id TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    day        BIGINT NOT NULL,
    PRIMARY KEY (website_id, day)
);

-- Days with events not yet rolled up. `version` grows with every write to the day, so a rollup
-- computed while a late event arrived is not marked current.
CREATE TABLE rollup_pending (
    website_id TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    day        BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (website_id, day)
);
