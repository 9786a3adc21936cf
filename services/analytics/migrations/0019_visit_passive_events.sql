-- A visit bounces when no event after its first ended the bounce: Plausible's events sent with
-- `interactive: false` do not (README, "Events and statistics"). `passive` counts those events
-- after a visit's first, so that a visit bounced when all its events but one are passive. It
-- starts at 0 for every stored visit, which is what they hold (no such event was read before):
-- no row is rewritten.
ALTER TABLE visits ADD COLUMN passive BIGINT NOT NULL DEFAULT 0;
