-- OAuth 2.1 for MCP clients (SPEC §8): registered public clients, the connections users
-- consented to, one-time authorization codes, and tokens. Codes and tokens are stored as
-- SHA-256 digests only.
CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- Newline-separated.
    redirect_uris TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE mcp_connections (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    team_id      TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    -- Space-separated, as OAuth writes scopes.
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX mcp_connections_by_user ON mcp_connections (user_id, created_at);

CREATE TABLE mcp_codes (
    digest         TEXT PRIMARY KEY,
    connection_id  TEXT NOT NULL REFERENCES mcp_connections (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    expires_at     BIGINT NOT NULL
);

CREATE TABLE mcp_tokens (
    digest        TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES mcp_connections (id) ON DELETE CASCADE,
    -- `access` or `refresh`.
    kind          TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX mcp_tokens_by_connection ON mcp_tokens (connection_id);
