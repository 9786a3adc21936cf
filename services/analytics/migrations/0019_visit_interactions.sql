-- A visit bounces when no event after its first ended the bounce: Plausible's events sent with
-- `interactive: false` do not (README, "Events and statistics"). `interactions` counts those
-- that did; before, every event after the first did.
ALTER TABLE visits ADD COLUMN interactions BIGINT NOT NULL DEFAULT 0;
UPDATE visits SET interactions = events - 1 WHERE events > 1;
