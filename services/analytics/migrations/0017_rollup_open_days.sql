-- The part of today that no more event can enter is rolled up before the day ends, as pieces
-- of the day in `rollup_pieces` (README, "Events and statistics"). This row says up to where,
-- and at which `rollup_pending.version` of the day: an event written more than a minute after
-- its instant bumps that version, and the pieces stop counting until they are rolled up again.
-- Pieces ending by `events_until` hold every event of their span; those ending by
-- `visits_until` also hold their visits whole, as no visit overlapping them can go on.
CREATE TABLE rollup_open_days (
    website_id   TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    day          BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    events_until BIGINT NOT NULL,
    visits_until BIGINT NOT NULL,
    PRIMARY KEY (website_id, day)
);
