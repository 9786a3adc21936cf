-- Engagement events (Plausible's tracker sends one as a page is left) carry the page's scroll
-- depth (percent, NULL when not sent) and engaged time. They keep a visit open without being
-- part of it: `last_ts` stays the visit's last other event (its duration and its span), and
-- `alive_ts` is the last event of any kind, from which the 30-minute gap is measured.
ALTER TABLE events ADD COLUMN scroll_depth BIGINT;
ALTER TABLE events ADD COLUMN engagement_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE visits ADD COLUMN alive_ts BIGINT NOT NULL DEFAULT 0;
UPDATE visits SET alive_ts = last_ts;
