-- FINDING (not in REGRESS: fails today). aggr_paginate returns the key as
-- text made by the type's output function under the caller's settings; the
-- README says that text "can be passed back as it is". With
-- extra_float_digits < 1 (old drivers and tools still set 0) float4/float8
-- output rounds, the cursor lands before the entry it came from and the
-- next page repeats entries (skips them when descending).
-- Expected: the second page starts at id 5 (no id repeated).
-- Suggested fix: produce the key / id text of results with
-- extra_float_digits = 1 (GUC nest level around the output calls), or
-- document that after_key must be the column value, not the returned text.
CREATE EXTENSION IF NOT EXISTS aggr_ext;
CREATE TABLE fl (id int PRIMARY KEY, x float8);
INSERT INTO fl SELECT i, (i / 3)::float8 * 0.1::float8 + 0.2::float8 FROM generate_series(1, 12) i;
SELECT aggr_create('fl', 'fl', key => 'x', build => 'now');
SET extra_float_digits = 0;
SELECT id, key FROM aggr_paginate('fl', page_size => 4);             -- ends at (0.3, 4)
SELECT id, key FROM aggr_paginate('fl', page_size => 4, after_key => '0.3', after_id => '4');  -- repeats 3, 4
RESET extra_float_digits;
SELECT id, x FROM fl WHERE (x, id) > (0.30000000000000004::float8, 4) ORDER BY x, id LIMIT 4;  -- what it should be
DROP TABLE fl;
