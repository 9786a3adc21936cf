-- Who did what to a team, readable by its owners and admins.
CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    actor_id   TEXT NOT NULL,
    action     TEXT NOT NULL,
    -- What the action was about: a key id, a user id, the team itself.
    target     TEXT NOT NULL,
    -- Small JSON object with the particulars (never a secret).
    details    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_by_team ON audit_log (team_id, created_at);
