-- Events stored by earlier versions may not be counted by their visits as later ones are (before
-- migration 0003 they have none; before 0006 an `engagement` event was an ordinary one). So
-- statistics read a day's events part from its visits only after the last event stored before
-- this migration (README, "Events and statistics"), kept here; -1 when there was none. Each
-- site's last event is found by its index, so this reads no table whole.
CREATE TABLE legacy_events (last_ts BIGINT NOT NULL);
INSERT INTO legacy_events (last_ts)
SELECT COALESCE(MAX((SELECT MAX(e.ts) FROM events e WHERE e.website_id = w.id)), -1) FROM websites w;
