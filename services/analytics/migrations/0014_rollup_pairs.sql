-- Pairs of dimensions a site's queries need, rolled up beside the single ones (see
-- `rollup.rs`): a query grouped by two dimensions, or by one and filtered by one value of
-- another. A pair's rows name it in `dim` as a JSON array of the two names, and hold the two
-- values as a JSON array in `value`; a row with an empty value marks a day or piece as rolled
-- up with the pair, so that a pair asked for later is read from rollups only where it is there.
CREATE TABLE rollup_pairs (
    website_id TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    pair       TEXT NOT NULL,
    PRIMARY KEY (website_id, pair)
);
