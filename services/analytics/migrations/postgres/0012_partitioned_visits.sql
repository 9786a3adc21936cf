-- PostgreSQL's text of migration 0012: `visits` becomes partitioned by UTC day on `start_ts`, as
-- `events` is on `ts` (0010), so that retention drops a day's visits whole instead of deleting
-- them row by row. A visit's start never changes, so a visit stays in its partition: the writer
-- names it (`ON CONFLICT (id, start_ts)`) and its update goes to that one partition. The table as
-- it was becomes the partition of everything up to the end of its last day; day partitions follow,
-- made ahead with those of `events` (`retention.rs`); `visits_default` takes the rest.
DO $$
DECLARE
    day_ms CONSTANT BIGINT := 86400000;
    boundary BIGINT;
    ix RECORD;
BEGIN
    ALTER TABLE visits RENAME TO visits_before_partitioning;
    ALTER TABLE visits_before_partitioning DROP CONSTRAINT visits_pkey;
    ALTER TABLE visits_before_partitioning DROP CONSTRAINT visits_website_id_fkey;
    SELECT COALESCE((MAX(start_ts) / day_ms + 1) * day_ms, 0) INTO boundary FROM visits_before_partitioning;

    CREATE TABLE visits (LIKE visits_before_partitioning INCLUDING DEFAULTS) PARTITION BY RANGE (start_ts);
    -- The partition key must be part of every unique index.
    ALTER TABLE visits ADD PRIMARY KEY (id, start_ts);
    ALTER TABLE visits ADD FOREIGN KEY (website_id) REFERENCES websites (id) ON DELETE CASCADE;
    -- Every other index of the old table, on the new one (the old one's are renamed and attached),
    -- but `visits_by_start` (0011): retention drops day partitions whole, and deletes by start only
    -- from the old and default partitions, so only the old one keeps it. Day partitions spare
    -- ingestion its entry for every new visit.
    FOR ix IN
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = 'visits_before_partitioning'
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.indexname, ix.indexname || '_before_partitioning');
        IF ix.indexname <> 'visits_by_start' THEN
            EXECUTE replace(ix.indexdef, ' ON ' || current_schema() || '.visits_before_partitioning ', ' ON visits ');
        END IF;
    END LOOP;
    EXECUTE format(
        'ALTER TABLE visits ATTACH PARTITION visits_before_partitioning FOR VALUES FROM (MINVALUE) TO (%s)',
        boundary
    );
    CREATE TABLE visits_default PARTITION OF visits DEFAULT;
END
$$;
