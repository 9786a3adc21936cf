-- Event retention deletes old events by time here. PostgreSQL runs its own text of this
-- migration (postgres/0010_partitioned_events.sql): `events` partitioned by day, whose old
-- partitions are dropped whole instead.
CREATE INDEX events_by_ts ON events (ts);
