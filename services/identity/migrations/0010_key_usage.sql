-- Requests answered per key, UTC day and outcome (`success`, `client_error`, `rate_limited`,
-- `server_error`). Gateways count in memory and add their counts here about once a second, so a
-- request costs no write of its own. Kept 90 days.
CREATE TABLE key_usage (
    key_id  TEXT NOT NULL,
    day     BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (key_id, day, outcome)
);
CREATE INDEX key_usage_by_day ON key_usage (day);
