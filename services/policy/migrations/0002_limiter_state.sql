-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- The in-process limiter's state (the all-in-one mode's windows, months and MCP days), kept
-- across a restart: one row, written about once a second while it changes and at shutdown.
CREATE TABLE limiter_state (
    name      TEXT PRIMARY KEY,
    state     TEXT NOT NULL,
    saved_at  BIGINT NOT NULL
);
