-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- A team without a row here has the defaults: plan `free`, key policy `all_members`.
CREATE TABLE team_settings (
    team_id                  TEXT PRIMARY KEY,
    plan                     TEXT NOT NULL,
    api_key_policy           TEXT NOT NULL,
    -- Operator overrides of the plan's limits; NULL keeps the plan's value.
    requests_per_minute      BIGINT,
    requests_per_month       BIGINT,
    mcp_calls_per_day        BIGINT,
    updated_at               BIGINT NOT NULL
);
