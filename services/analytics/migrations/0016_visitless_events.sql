-- Events kept from before visits existed (migration 0003) have none. Statistics read a day's
-- events part from its visits only after the last day that holds such events (README, "Events
-- and statistics"): this keeps that event's time, or -1 when there is none.
CREATE TABLE visitless_events (last_ts BIGINT NOT NULL);
INSERT INTO visitless_events (last_ts) SELECT COALESCE(MAX(ts), -1) FROM events WHERE visit_id = '';
