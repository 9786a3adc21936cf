-- Pairs of `event:goal` and another dimension a site's queries need (see `rollup.rs`), kept as
-- each goal's rows by that dimension. They are recorded apart from `rollup_pairs`, whose every
-- name a release before them must be able to read: a replica of such a release, running beside
-- this one during an upgrade, would otherwise fail its every rollup on a name it does not know.
CREATE TABLE rollup_goal_pairs (
    website_id TEXT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    pair       TEXT NOT NULL,
    PRIMARY KEY (website_id, pair)
);
