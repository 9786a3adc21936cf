-- Sign-in abuse resistance and session management.
--
-- Attempts counted per bucket in a fixed window that opens with the bucket's first attempt:
-- failed sign-ins per account and per client address, sign-ups per client address. A bucket
-- is the hex SHA-256 of its kind and subject, so that no e-mail address or client address is
-- kept here. Kept in the database so that every identity replica behind every gateway counts
-- the same attempts.
CREATE TABLE login_attempts (
    bucket       TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    attempts     BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_window ON login_attempts (window_start);

-- Sessions get an id to be listed and revoked by (the token digest stays private), the user
-- agent that opened them, and when they were last used (written at most once a minute).
ALTER TABLE sessions ADD COLUMN id TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN last_used_at BIGINT;
-- Sessions opened before this migration: SQL has no portable random or hash function, so they
-- take part of their token's digest as id. It reveals nothing of the token.
UPDATE sessions SET id = substr(token_digest, 1, 32) WHERE id IS NULL;
CREATE UNIQUE INDEX sessions_by_id ON sessions (id);
CREATE INDEX sessions_by_user ON sessions (user_id);
