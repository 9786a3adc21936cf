-- The markers of rolled-up days and pieces (rows of an empty value, see `Rolled::marker` in
-- `query.rs`), which every query reads before its rows. The primary keys order a kind's rows by
-- day (or bounds) then value: finding a period's markers there walked every row of each kind it
-- reads, thousands a day for a pair with pages. These hold the markers alone.
CREATE INDEX rollups_markers ON rollups (website_id, dim, day) WHERE value = '';
-- A piece's day is there too, which the query joins on: the index alone then answers.
CREATE INDEX rollup_pieces_markers ON rollup_pieces (website_id, dim, start_ts, end_ts, day) WHERE value = '';
