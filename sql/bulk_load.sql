-- Large transactions: beyond aggr_ext.write_buffer_size a transaction's
-- changes are sorted into runs on disk and applied in one merge (before a
-- read of the aggregate, or at commit). A 64 kB bound makes every statement
-- below cross it many times; every answer is checked against plain SQL,
-- inside and outside savepoints, after aborts and inside the transaction.
SET client_min_messages = warning;
SET aggr_ext.write_buffer_size = 64;
CREATE TABLE bl (id int PRIMARY KEY, team int NOT NULL, score int, pts bigint NOT NULL);
SELECT aggr_create('bl_lb', 'bl'::regclass, key => 'score DESC NULLS LAST', sum_value => 'pts');
SELECT aggr_create('bl_team', 'bl'::regclass, key => 'score', sum_value => 'pts', namespace => 'team');
SELECT aggr_create('bl_def', 'bl'::regclass, key => 'score', sum_value => 'pts');
SELECT aggr_set_write_mode('bl_def', 'deferred');

CREATE FUNCTION bl_check() RETURNS TABLE (what text, ok bool) LANGUAGE sql AS $$
  SELECT 'count', aggr_count('bl_lb') = (SELECT count(*) FROM bl) AND aggr_count('bl_def') = (SELECT count(*) FROM bl)
  UNION ALL SELECT 'sum', aggr_sum('bl_lb') IS NOT DISTINCT FROM (SELECT sum(pts) FROM bl)
                      AND aggr_sum('bl_def') IS NOT DISTINCT FROM (SELECT sum(pts) FROM bl)
  UNION ALL SELECT 'every entry in order', (SELECT array_agg(id::int ORDER BY position) FROM aggr_page('bl_lb', 0, 1000000)) IS NOT DISTINCT FROM
                                  (SELECT array_agg(id ORDER BY score DESC NULLS LAST, id) FROM bl)
  UNION ALL SELECT 'every sum in order', (SELECT array_agg(sum_value ORDER BY position) FROM aggr_page('bl_def', 0, 1000000)) IS NOT DISTINCT FROM
                                  (SELECT array_agg(pts::numeric ORDER BY score NULLS LAST, id) FROM bl)
  UNION ALL SELECT 'namespaces', bool_and(aggr_count('bl_team', namespace => t) = (SELECT count(*) FROM bl WHERE team = t)
                               AND aggr_sum('bl_team', namespace => t) = (SELECT coalesce(sum(pts), 0) FROM bl WHERE team = t))
                          FROM generate_series(0, 5) t
  UNION ALL SELECT 'ranks', bool_and(aggr_rank('bl_team', s, namespace => 2) = (SELECT count(*) + 1 FROM bl WHERE team = 2 AND score < s))
                          FROM generate_series(0, 100000, 9973) s
$$;
CREATE FUNCTION bl_all_ok() RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE), 'ok') FROM bl_check()
$$;

-- One statement of 20,000 rows: about 40 runs merged at commit.
INSERT INTO bl SELECT g, g % 5, CASE WHEN g % 89 = 0 THEN NULL ELSE (g * 7919) % 100000 END, g % 1000
  FROM generate_series(1, 20000) g;
SELECT bl_all_ok();

-- Every row's key moves (a delete and an insert per row and aggregate).
UPDATE bl SET score = (score * 31 + id) % 100000, pts = pts + 1 WHERE score IS NOT NULL;
SELECT bl_all_ok();

-- Savepoints: a released one, a rolled-back one whose spilled runs also hold
-- ops from before it, and reads (which merge the runs) inside each.
BEGIN;
INSERT INTO bl SELECT g, g % 5, (g * 13) % 100000, 1 FROM generate_series(20001, 25000) g;
SAVEPOINT a;
INSERT INTO bl SELECT g, g % 5, (g * 17) % 100000, 2 FROM generate_series(25001, 30000) g;
UPDATE bl SET score = score + 1 WHERE id % 3 = 0;
ROLLBACK TO a;
SELECT 'after rollback to a' AS step, bl_all_ok();
DELETE FROM bl WHERE id % 7 = 0;
SAVEPOINT b;
INSERT INTO bl SELECT g, g % 5, (g * 19) % 100000, 3 FROM generate_series(30001, 35000) g;
SELECT 'inside b' AS step, bl_all_ok();
RELEASE b;
SAVEPOINT c;
UPDATE bl SET score = NULL WHERE id % 11 = 0;
SELECT 'inside c, read merges the runs' AS step, bl_all_ok();
INSERT INTO bl SELECT g, g % 5, (g * 23) % 100000, 4 FROM generate_series(35001, 40000) g;
ROLLBACK TO c;  -- the runs applied inside c are pending again, without c's ops
SELECT 'after rollback to c' AS step, bl_all_ok();
INSERT INTO bl SELECT g, g % 5, (g * 29) % 100000, 5 FROM generate_series(40001, 45000) g;
COMMIT;
SELECT bl_all_ok();

-- Nested savepoints: the inner one rolls back, the outer one is released,
-- pending ops of both spill together.
BEGIN;
UPDATE bl SET pts = pts + 10 WHERE id % 2 = 0;
SAVEPOINT outer_sp;
UPDATE bl SET score = score + 3 WHERE id % 5 = 1;
SAVEPOINT inner_sp;
DELETE FROM bl WHERE id % 4 = 1;
INSERT INTO bl SELECT g, g % 5, g % 100000, 6 FROM generate_series(45001, 50000) g;
ROLLBACK TO inner_sp;
INSERT INTO bl SELECT g, g % 5, (g * 3) % 100000, 7 FROM generate_series(50001, 53000) g;
RELEASE outer_sp;
COMMIT;
SELECT bl_all_ok();

-- Runs spilled before a savepoint and applied inside it (by a read) are
-- applied again after it rolls back.
BEGIN;
INSERT INTO bl SELECT g, g % 5, (g * 41) % 100000, 11 FROM generate_series(55001, 60000) g;
SAVEPOINT d;
SELECT 'inside d, read merges runs from before d' AS step, bl_all_ok();
DELETE FROM bl WHERE id BETWEEN 55001 AND 56000;
ROLLBACK TO d;
SELECT 'after rollback to d' AS step, bl_all_ok();
COMMIT;
SELECT bl_all_ok();

-- A rolled-back transaction leaves nothing behind.
BEGIN;
INSERT INTO bl SELECT g, g % 5, g % 100000, 8 FROM generate_series(60001, 70000) g;
DELETE FROM bl WHERE id < 10000;
ROLLBACK;
SELECT bl_all_ok();

-- Subtransactions of a PL/pgSQL loop, every third one failing after its change.
DO $$
BEGIN
  FOR i IN 0..29 LOOP
    BEGIN
      INSERT INTO bl SELECT g, g % 5, (g * 7) % 100000, 9 FROM generate_series(70001 + i * 300, 70300 + i * 300) g;
      IF i % 3 = 0 THEN RAISE EXCEPTION 'undo %', i; END IF;
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
  END LOOP;
END $$;
SELECT bl_all_ok();
SELECT count(*) AS rows_left FROM bl;
SELECT a, (aggr_verify(a)).status FROM unnest(ARRAY['bl_lb', 'bl_team', 'bl_def']) a;
RESET aggr_ext.write_buffer_size;
DROP TABLE bl;
DROP FUNCTION bl_check(), bl_all_ok();
