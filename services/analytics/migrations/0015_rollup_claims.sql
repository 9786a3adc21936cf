-- A process about to roll up a pending day claims it until then (unix ms), so that other
-- processes (replicas, an import command beside the server) roll up other days instead of
-- computing the same one; a claim lapses if its process dies. A write that makes the day stale
-- clears the claim, so the new version is rolled up at the next pass.
ALTER TABLE rollup_pending ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
