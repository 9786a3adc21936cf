-- PostgreSQL's text of migration 0010: `events` becomes partitioned by day on `ts` (unix ms),
-- so that retention drops a day's partition whole instead of deleting row by row. The table as
-- it was becomes the partition of everything up to the end of its last day (none when empty);
-- day partitions follow from there, made ahead of time by the service (`retention.rs`). Events of
-- a day without a partition (an old day written directly) go to the default partition, which
-- retention deletes from row by row.
DO $$
DECLARE
    day_ms CONSTANT BIGINT := 86400000;
    boundary BIGINT;
    ix RECORD;
BEGIN
    ALTER TABLE events RENAME TO events_before_partitioning;
    ALTER TABLE events_before_partitioning DROP CONSTRAINT events_pkey;
    ALTER TABLE events_before_partitioning DROP CONSTRAINT events_website_id_fkey;
    SELECT COALESCE((MAX(ts) / day_ms + 1) * day_ms, 0) INTO boundary FROM events_before_partitioning;

    CREATE TABLE events (LIKE events_before_partitioning INCLUDING DEFAULTS) PARTITION BY RANGE (ts);
    -- An id is unique within its time: the partition key must be part of every unique index.
    ALTER TABLE events ADD PRIMARY KEY (id, ts);
    ALTER TABLE events ADD FOREIGN KEY (website_id) REFERENCES websites (id) ON DELETE CASCADE;
    -- Every other index of the old table, on the new one (the old one's are renamed and attached).
    FOR ix IN
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = 'events_before_partitioning'
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.indexname, ix.indexname || '_before_partitioning');
        EXECUTE replace(ix.indexdef, ' ON ' || current_schema() || '.events_before_partitioning ', ' ON events ');
    END LOOP;
    EXECUTE format(
        'ALTER TABLE events ATTACH PARTITION events_before_partitioning FOR VALUES FROM (MINVALUE) TO (%s)',
        boundary
    );
    CREATE TABLE events_default PARTITION OF events DEFAULT;
END
$$;
