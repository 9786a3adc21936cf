-- Every event updates its visit's `last_ts`. With `last_ts` in this index, each update also
-- moved an index entry, dirtying a random index page per event (and, on PostgreSQL, ruling out
-- heap-only updates, so every index of `visits` took a new entry). A visitor hash is salted per
-- site and day, so a visitor has a handful of visits at most: the visitor alone finds them.
DROP INDEX visits_by_visitor;
CREATE INDEX visits_by_visitor ON visits (visitor_id);
