-- Triggers keep the aggregate exact through every kind of change, inside
SET client_min_messages = warning;
-- transactions, savepoints and rollbacks. The oracle is plain SQL.
SELECT aggr_create('lb', 'scores'::regclass, key => 'score DESC', sum_value => 'points');
SELECT aggr_create('pg', 'scores'::regclass, key => 'score DESC', sum_value => 'points', namespace => 'game');
CREATE FUNCTION check_all() RETURNS TABLE (lb_count bool, lb_sum bool, pg_counts bool, lb_verify text, pg_verify text)
LANGUAGE sql AS $$
  SELECT aggr_count('lb') = (SELECT count(*) FROM scores),
         aggr_sum('lb') = (SELECT coalesce(sum(points), 0) FROM scores),
         (SELECT bool_and(aggr_count('pg', namespace => g) = (SELECT count(*) FROM scores s WHERE s.game = g))
            FROM generate_series(0, 9) g),
         (SELECT status FROM aggr_verify('lb')),
         (SELECT status FROM aggr_verify('pg'))
$$;

-- single rows, bulk statements, key moves, namespace moves, primary key updates
INSERT INTO scores VALUES (100001, 1, 4999, 10), (100002, 9, NULL, 20);
DELETE FROM scores WHERE id % 10 = 3;
UPDATE scores SET score = score + 7 WHERE id % 10 = 4;
UPDATE scores SET game = 8 WHERE id % 10 = 5;
UPDATE scores SET points = points + 1 WHERE id % 10 = 6;
UPDATE scores SET id = id + 1000000 WHERE id % 10 = 7;
UPDATE scores SET score = NULL WHERE id % 10 = 8 AND id < 5000;
UPDATE scores SET score = score WHERE id % 10 = 9;
SELECT * FROM check_all();
SELECT drift_events FROM aggr_status('lb');

-- read-your-writes inside a transaction, and rollback
BEGIN;
INSERT INTO scores SELECT g, g % 7, g % 100, 1 FROM generate_series(200001, 205000) g;
SELECT aggr_count('lb') = (SELECT count(*) FROM scores) AS sees_own_inserts;
DELETE FROM scores WHERE id BETWEEN 200001 AND 201000;
SELECT aggr_count('lb', lower => 99, upper => 0) = (SELECT count(*) FROM scores WHERE score BETWEEN 0 AND 99) AS sees_own_deletes;
ROLLBACK;
SELECT * FROM check_all();

-- savepoints: a rolled-back savepoint leaves exactly what it undid, also
-- when the aggregate was read (and so flushed) inside the savepoint
BEGIN;
INSERT INTO scores VALUES (300001, 2, 1234, 5);
SAVEPOINT a;
INSERT INTO scores VALUES (300002, 2, 1234, 5);
SELECT aggr_rank('lb', 1234) = (SELECT count(*) + 1 FROM scores WHERE score > 1234 OR score IS NULL) AS rank_in_savepoint;
UPDATE scores SET score = 1 WHERE id = 300001;
ROLLBACK TO SAVEPOINT a;
SELECT aggr_count('lb', lower => 1234, upper => 1234) = (SELECT count(*) FROM scores WHERE score = 1234) AS after_rollback_to;
SAVEPOINT b;
DELETE FROM scores WHERE id = 300001;
RELEASE SAVEPOINT b;
SAVEPOINT c;
INSERT INTO scores VALUES (300003, 3, 77, 7);
SAVEPOINT d;
UPDATE scores SET score = 78 WHERE id = 300003;
ROLLBACK TO SAVEPOINT c;
COMMIT;
SELECT * FROM check_all();
SELECT count(*) AS rows_300k FROM scores WHERE id > 300000 AND id < 400000;

-- errors inside PL/pgSQL exception blocks undo just their own changes
DO $$
BEGIN
  FOR i IN 1..50 LOOP
    BEGIN
      INSERT INTO scores VALUES (400000 + i, i % 7, i, i);
      IF i % 3 = 0 THEN
        PERFORM aggr_count('lb');      -- flush inside the block
        RAISE EXCEPTION 'undo %', i;
      END IF;
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
  END LOOP;
END $$;
SELECT * FROM check_all();
SELECT count(*) AS kept_rows FROM scores WHERE id BETWEEN 400001 AND 400050;

-- many single-row statements in one transaction, with repeated changes of
-- the same rows: the root is written once per flush, not once per row
SELECT pg_stat_force_next_flush();
SELECT n_tup_ins + n_tup_upd AS node_writes_before FROM pg_stat_user_tables
 WHERE relid = 'aggr_internal.nodes'::regclass \gset
BEGIN;
DO $$
BEGIN
  FOR i IN 1..20000 LOOP
    INSERT INTO scores VALUES (500000 + i, i % 7, (i * 13) % 5000, i % 10);
  END LOOP;
  FOR i IN 1..2000 LOOP
    UPDATE scores SET score = score + 1 WHERE id = 500000 + (i % 100);
  END LOOP;
END $$;
SELECT aggr_count('lb') = (SELECT count(*) FROM scores) AS bulk_in_tx;
COMMIT;
SELECT * FROM check_all();
SELECT pg_stat_force_next_flush();
-- 22,000 row changes into two aggregates (8 trees, 3-4 levels, and the
-- aggregates earlier tests left on scores): per-row maintenance would write
-- over 130,000 node versions; batching writes 2,000-6,000
SELECT n_tup_ins + n_tup_upd - :node_writes_before < 13000 AS few_node_writes
  FROM pg_stat_user_tables WHERE relid = 'aggr_internal.nodes'::regclass;

-- INSERT ... ON CONFLICT, and a statement that fails half way
INSERT INTO scores VALUES (1, 0, 1, 1), (600001, 0, 1, 1) ON CONFLICT (id) DO NOTHING;
INSERT INTO scores VALUES (2, 0, 2, 2) ON CONFLICT (id) DO UPDATE SET score = 2;
INSERT INTO scores VALUES (600002, 0, 1, 1), (1, 0, 1, 1);
SELECT * FROM check_all();

-- two-phase commit
BEGIN;
INSERT INTO scores VALUES (700001, 5, 55, 5);
PREPARE TRANSACTION 'aggr_2pc';
COMMIT PREPARED 'aggr_2pc';
SELECT * FROM check_all();

-- TRUNCATE empties the aggregate in the same transaction
BEGIN;
TRUNCATE scores;
SELECT aggr_count('lb') AS after_truncate, aggr_count('pg', namespace => 1) AS ns_after_truncate;
INSERT INTO scores VALUES (1, 1, 10, 1), (2, 1, 20, 2), (3, 2, 30, 3);
COMMIT;
SELECT * FROM check_all();
SELECT id, key, sum_value FROM aggr_page('lb', 0, 10);

-- clear one namespace, then backfill
SELECT aggr_clear('pg', namespace => 1);
SELECT state FROM aggr_status('pg');
CALL aggr_backfill('pg', wait => true);
SELECT * FROM check_all();

-- a big INSERT ... SELECT is one batched flush per 64 MB of changes
INSERT INTO scores SELECT g, g % 7, (g * 7919) % 5000, g % 1000 FROM generate_series(1000, 200000) g;
SELECT * FROM check_all();
SELECT entries, depth FROM aggr_status('lb');
SELECT aggr_drop('lb'), aggr_drop('pg');
DROP FUNCTION check_all();
