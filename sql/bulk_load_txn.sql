-- Spilled runs (aggr_ext.write_buffer_size, in kB) against transaction
-- control: an aggregate dropped or made stale inside a savepoint that rolls
-- back must get the ops it had pending when another table's writes spilled
-- them; plus 2PC, TRUNCATE, cursors and nested savepoints checked against
-- plain SQL.
SET client_min_messages = warning;
SET aggr_ext.write_buffer_size = 64;
CREATE TABLE bt_a (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE bt_b (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('bt_a_v', 'bt_a'::regclass, key => 'v');
SELECT aggr_create('bt_b_v', 'bt_b'::regclass, key => 'v');
CREATE FUNCTION bt_ok(agg text, tab regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint; s bigint; ids int[]; want int[];
BEGIN
  EXECUTE format('SELECT count(*), array_agg(id ORDER BY v, id) FROM %s', tab) INTO n, want;
  SELECT array_agg(id::int ORDER BY position) INTO ids FROM aggr_page(agg, 0, 1000000);
  RETURN concat_ws(' ', CASE WHEN aggr_count(agg) <> n THEN 'count ' || aggr_count(agg) || ' <> ' || n END,
                        CASE WHEN ids IS DISTINCT FROM want THEN 'page differs' END,
                        CASE WHEN (aggr_verify(agg)).status <> 'ok' THEN 'verify ' || (aggr_verify(agg)).status END);
END $$;

-- DROP TABLE inside a savepoint; another table's writes spill the dropped
-- aggregate's pending ops; ROLLBACK TO brings table and aggregate back.
BEGIN;
INSERT INTO bt_a SELECT g, g FROM generate_series(1, 100) g;  -- pending, below the bound
SAVEPOINT s;
DROP TABLE bt_a;
INSERT INTO bt_b SELECT g, g FROM generate_series(1, 5000) g; -- spills
ROLLBACK TO s;
COMMIT;
SELECT 'drop table rolled back' AS step, bt_ok('bt_a_v', 'bt_a'), bt_ok('bt_b_v', 'bt_b');

-- The same with a read (a merge) inside the savepoint, and a read after it.
BEGIN;
UPDATE bt_a SET v = v + 1000 WHERE id % 2 = 0;
SAVEPOINT s;
DROP TABLE bt_a;
INSERT INTO bt_b SELECT g, g FROM generate_series(5001, 10000) g;
SELECT 'inside s' AS step, bt_ok('bt_b_v', 'bt_b');
ROLLBACK TO s;
SELECT 'after rollback to s' AS step, bt_ok('bt_a_v', 'bt_a'), bt_ok('bt_b_v', 'bt_b');
INSERT INTO bt_b SELECT g, g FROM generate_series(10001, 15000) g;
COMMIT;
SELECT 'committed' AS step, bt_ok('bt_a_v', 'bt_a'), bt_ok('bt_b_v', 'bt_b');

-- The same for an aggregate made stale (ALTER TABLE of its key column)
-- inside the savepoint, and for aggr_drop (which flushes first).
BEGIN;
DELETE FROM bt_a WHERE id % 5 = 0;
SAVEPOINT s;
ALTER TABLE bt_a ALTER COLUMN v TYPE bigint;
INSERT INTO bt_b SELECT g, g FROM generate_series(40001, 45000) g;
SELECT 'inside s, stale' AS step, bt_ok('bt_b_v', 'bt_b');
ROLLBACK TO s;
SAVEPOINT s2;
SELECT aggr_drop('bt_a_v');
INSERT INTO bt_b SELECT g, g FROM generate_series(40001, 45000) g;
ROLLBACK TO s2;
COMMIT;
SELECT 'stale and dropped, rolled back' AS step, bt_ok('bt_a_v', 'bt_a'), bt_ok('bt_b_v', 'bt_b');

-- DROP TABLE for good: its ops are dropped, the other aggregate stays exact.
BEGIN;
DELETE FROM bt_a WHERE id < 50;
DROP TABLE bt_a;
INSERT INTO bt_b SELECT g, g FROM generate_series(15001, 20000) g;
COMMIT;
SELECT 'dropped' AS step, bt_ok('bt_b_v', 'bt_b'), count(*) AS aggregates_left FROM aggr_internal.aggregates WHERE name = 'bt_a_v';

-- Two-phase commit of a spilled transaction with a rolled-back savepoint.
BEGIN;
INSERT INTO bt_b SELECT g, g % 977 FROM generate_series(20001, 25000) g;
SAVEPOINT p;
DELETE FROM bt_b WHERE id > 24000;
SELECT aggr_count('bt_b_v') = (SELECT count(*) FROM bt_b) AS inside_p;
ROLLBACK TO p;
PREPARE TRANSACTION 'bt_2pc_a';
COMMIT PREPARED 'bt_2pc_a';
SELECT '2pc commit' AS step, bt_ok('bt_b_v', 'bt_b');
BEGIN;
UPDATE bt_b SET v = -v;
PREPARE TRANSACTION 'bt_2pc_b';
ROLLBACK PREPARED 'bt_2pc_b';
SELECT '2pc rollback' AS step, bt_ok('bt_b_v', 'bt_b');

-- TRUNCATE inside a spilling transaction, kept and rolled back.
BEGIN;
UPDATE bt_b SET v = v + 1 WHERE id % 3 = 0;
SAVEPOINT t;
TRUNCATE bt_b;
INSERT INTO bt_b SELECT g, g % 13 FROM generate_series(1, 4000) g;
SELECT 'after truncate' AS step, bt_ok('bt_b_v', 'bt_b');
ROLLBACK TO t;
SELECT 'truncate rolled back' AS step, bt_ok('bt_b_v', 'bt_b');
COMMIT;
SELECT 'committed' AS step, bt_ok('bt_b_v', 'bt_b');

-- An open cursor that read before a merge refuses rather than answer wrong.
BEGIN;
DECLARE c CURSOR FOR SELECT aggr_count('bt_b_v') FROM generate_series(1, 2);
FETCH 1 FROM c \g /dev/null
INSERT INTO bt_b SELECT g, g FROM generate_series(30001, 35000) g;
SELECT aggr_count('bt_b_v') = (SELECT count(*) FROM bt_b) AS new_statement_sees_all;
FETCH 1 FROM c;
ROLLBACK;
SELECT 'cursor' AS step, bt_ok('bt_b_v', 'bt_b');

-- A spill that fails while writing its run (temp_file_limit) inside a
-- savepoint: after ROLLBACK TO the transaction goes on and commits exact,
-- without a "temporary file leak" warning for the run it abandoned.
CREATE TABLE bt_c (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('bt_c_v', 'bt_c'::regclass, key => 'v');
BEGIN;
INSERT INTO bt_c SELECT g, g FROM generate_series(1, 100) g;
SAVEPOINT f;
SET LOCAL temp_file_limit = 300;
INSERT INTO bt_b SELECT g, g FROM generate_series(100001, 130000) g;
ROLLBACK TO f;
INSERT INTO bt_b SELECT g, g FROM generate_series(100001, 105000) g;
COMMIT;
SELECT 'spill failed in a savepoint' AS step, bt_ok('bt_b_v', 'bt_b'), bt_ok('bt_c_v', 'bt_c');

-- A rebuild job stepped (background => false) inside the writing
-- transaction: its scan sees the transaction's own rows, so the changes
-- recorded before a step must be flushed (and logged) before it scans or
-- swaps; else an entry updated before a step and deleted after it stayed
-- in the new generation. With and without spilling.
CREATE TABLE bt_j (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('bt_j_v', 'bt_j'::regclass, key => 'v');
INSERT INTO bt_j SELECT g, g % 1000 FROM generate_series(1, 5000) g;
BEGIN;
SET LOCAL aggr_ext.write_buffer_size = 65536;
SELECT aggr_rebuild('bt_j_v', batch_size => 1500, background => false);
UPDATE bt_j SET v = v + 1 WHERE id = 10;
SELECT aggr_job_step('bt_j_v');
DELETE FROM bt_j WHERE id = 10;
SELECT bool_and(aggr_job_step('bt_j_v')) IS NOT NULL AS stepped FROM generate_series(1, 10);
COMMIT;
SELECT 'job in the writer, in memory' AS step, bt_ok('bt_j_v', 'bt_j'), job FROM aggr_status('bt_j_v');
BEGIN;
SELECT aggr_rebuild('bt_j_v', batch_size => 1500, background => false);
UPDATE bt_j SET v = v + 1 WHERE id % 3 = 0;
SELECT aggr_job_step('bt_j_v');
DELETE FROM bt_j WHERE id % 7 = 0;
INSERT INTO bt_j SELECT g, g % 1000 FROM generate_series(9001, 12000) g;
SELECT aggr_job_step('bt_j_v');
SAVEPOINT j;
UPDATE bt_j SET v = v + 5 WHERE id % 2 = 0;
SELECT aggr_job_step('bt_j_v');
ROLLBACK TO j;
SELECT bool_and(aggr_job_step('bt_j_v')) IS NOT NULL AS stepped FROM generate_series(1, 30);
COMMIT;
CALL aggr_wait('bt_j_v');
SELECT 'job in the writer, spilled' AS step, bt_ok('bt_j_v', 'bt_j'), job FROM aggr_status('bt_j_v');

RESET aggr_ext.write_buffer_size;
DROP TABLE bt_b, bt_c, bt_j;
DROP FUNCTION bt_ok(text, regclass);
