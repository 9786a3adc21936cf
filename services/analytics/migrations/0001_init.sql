-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
CREATE TABLE websites (
    id            TEXT PRIMARY KEY,
    team_id       TEXT NOT NULL,
    -- Unique: the public tracker names a site by its domain.
    domain        TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    tracking_code TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL
);
CREATE INDEX websites_by_team ON websites (team_id, created_at);
