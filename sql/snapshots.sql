-- Reads answer as of the snapshot and command of the query they run in:
-- cursors fetching after the transaction wrote more rows, WITH HOLD cursors
-- across a commit, reads in functions of a query that also writes, and
-- merges refused where they would fold in what the snapshot cannot see.
-- Every check compares with plain SQL evaluated in the same query.
CREATE TABLE snap (id int PRIMARY KEY, score int NOT NULL);
INSERT INTO snap SELECT g, g % 100 FROM generate_series(1, 1000) g;
SELECT aggr_create('snap_lb', 'snap'::regclass, key => 'score', sum_value => 'score', build => 'now');

-- a cursor fetches after the same transaction inserted, updated and deleted
BEGIN;
DECLARE c CURSOR FOR
  SELECT g, aggr_count('snap_lb') AS agg, (SELECT count(*) FROM snap) AS sql,
         aggr_sum('snap_lb') AS agg_sum, (SELECT sum(score) FROM snap) AS sql_sum,
         aggr_rank('snap_lb', 50) AS agg_rank, (SELECT count(*) + 1 FROM snap WHERE score < 50) AS sql_rank
    FROM generate_series(1, 4) g;
FETCH 1 FROM c;
INSERT INTO snap SELECT g, 7 FROM generate_series(1001, 1010) g;
FETCH 1 FROM c;
UPDATE snap SET score = score + 1 WHERE id <= 100;
DELETE FROM snap WHERE id BETWEEN 200 AND 219;
FETCH 1 FROM c;
-- a newer statement sees everything (and flushes it); the cursor still does not
SELECT aggr_count('snap_lb') = (SELECT count(*) FROM snap) AS now_exact, aggr_count('snap_lb') AS now_count;
FETCH 1 FROM c;
-- entries and whole rows of an open cursor's page are those of its snapshot
DECLARE p CURSOR FOR
  SELECT g, (SELECT array_agg(id::int ORDER BY position) FROM aggr_page('snap_lb', 0, 5)) =
            (SELECT array_agg(id ORDER BY score, id) FROM (SELECT * FROM snap ORDER BY score, id LIMIT 5) s) AS page_ok,
            (SELECT array_agg(r.score ORDER BY r.id) FROM aggr_page_rows('snap_lb', 0, 5, NULL::snap) r) =
            (SELECT array_agg(score ORDER BY id) FROM (SELECT * FROM snap ORDER BY score, id LIMIT 5) s) AS rows_ok
    FROM generate_series(1, 2) g;
FETCH 1 FROM p;
UPDATE snap SET score = -1 WHERE id IN (100, 300, 500);
FETCH 1 FROM p;
COMMIT;

-- a WITH HOLD cursor is read to its end at COMMIT, after a DELETE in its transaction
BEGIN;
DECLARE h CURSOR WITH HOLD FOR
  SELECT g, aggr_count('snap_lb') AS agg, (SELECT count(*) FROM snap) AS sql FROM generate_series(1, 3) g;
FETCH 1 FROM h;
DELETE FROM snap WHERE id > 900;
COMMIT;
FETCH ALL FROM h;
CLOSE h;

-- a PL/pgSQL loop over a query that reads the aggregate while the loop body
-- writes and reads it too
DO $$
DECLARE
  r record;
  bad int := 0;
  n int := 0;
BEGIN
  FOR r IN SELECT g, aggr_count('snap_lb') AS agg, (SELECT count(*) FROM snap) AS sql FROM generate_series(1, 30) g LOOP
    n := n + 1;
    IF r.agg IS DISTINCT FROM r.sql THEN bad := bad + 1; END IF;
    INSERT INTO snap VALUES (5000 + r.g, r.g);
    IF aggr_count('snap_lb') IS DISTINCT FROM (SELECT count(*) FROM snap) THEN bad := bad + 1; END IF;
  END LOOP;
  RAISE NOTICE 'loop: % rows checked, % mismatches', n, bad;
END $$;

-- merges and a deferred aggregate's mode switch inside REPEATABLE READ are refused
SELECT aggr_set_write_mode('snap_lb', 'deferred');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT aggr_count('snap_lb') = (SELECT count(*) FROM snap) AS rr_exact;
SELECT aggr_merge('snap_lb');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT aggr_set_write_mode('snap_lb', 'direct');
ROLLBACK;
SELECT aggr_set_write_mode('snap_lb', 'direct');

SELECT status FROM aggr_verify('snap_lb');
SELECT aggr_drop('snap_lb');
DROP TABLE snap;
