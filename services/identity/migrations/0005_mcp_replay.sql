-- OAuth hardening (README "Connecting an MCP client"): used codes and refresh tokens are kept,
-- marked, so that a second use is recognised as a replay and revokes the connection; a
-- connection remembers the resource (RFC 8707) its tokens were asked for.
ALTER TABLE mcp_codes ADD COLUMN used_at BIGINT;
ALTER TABLE mcp_tokens ADD COLUMN used_at BIGINT;
ALTER TABLE mcp_connections ADD COLUMN resource TEXT NOT NULL DEFAULT '';
