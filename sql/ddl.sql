-- DDL on the source table: renames keep working, a type change or a dropped
-- column makes the aggregate refuse reads (never a wrong answer), writes go
-- on; DROP EXTENSION removes everything it created, user triggers included.
SET client_min_messages = warning;
CREATE TABLE d (id int PRIMARY KEY, k int, v int NOT NULL, note text);
INSERT INTO d SELECT g, g % 100, g, 'n' FROM generate_series(1, 1000) g;
SELECT aggr_create('d_k', 'd'::regclass, key => 'k', sum_value => 'v');
SELECT aggr_create('d_note', 'd'::regclass, key => 'note');

-- renames: the aggregate follows the table and its columns
ALTER TABLE d RENAME TO d2;
ALTER TABLE d2 RENAME COLUMN k TO kk;
INSERT INTO d2 VALUES (1001, 5, 1001, 'x');
SELECT aggr_count('d_k') = (SELECT count(*) FROM d2) AS count_ok, source FROM aggr_status('d_k');
SELECT status FROM aggr_verify('d_k');
CALL aggr_backfill('d_k', wait => true);
SELECT status FROM aggr_verify('d_k');

-- a column type change rewrites the table without firing row triggers
ALTER TABLE d2 ALTER COLUMN kk TYPE bigint;
SELECT aggr_count('d_k');
SELECT * FROM aggr_verify('d_k');
SELECT state FROM aggr_status('d_k');  -- says so without compiling it
INSERT INTO d2 VALUES (1002, 6, 1002, 'y');   -- writes are not blocked
SELECT aggr_count('d_note') = (SELECT count(*) FROM d2) AS unaffected_aggregate_ok;
SELECT aggr_drop('d_k');
SELECT aggr_create('d_k', 'd2'::regclass, key => 'kk', sum_value => 'v');
SELECT aggr_count('d_k') = (SELECT count(*) FROM d2) AS recreated_ok;

-- a dropped column
ALTER TABLE d2 DROP COLUMN note;
SELECT aggr_count('d_note');
DELETE FROM d2 WHERE id < 10;
SELECT aggr_count('d_k') = (SELECT count(*) FROM d2) AS other_still_ok;
SELECT aggr_drop('d_note');

-- SET UNLOGGED after aggr_create (which refuses unlogged tables): crash
-- recovery would empty the table without triggers, so reads refuse it
ALTER TABLE d2 SET UNLOGGED;
SELECT aggr_count('d_k');
SELECT aggr_rank('d_k', 3);
INSERT INTO d2 VALUES (3001, 7, 3001);   -- writes go on
ALTER TABLE d2 SET LOGGED;
SELECT aggr_rebuild('d_k', background => false);
SELECT aggr_count('d_k') = (SELECT count(*) FROM d2) AS count_ok,
       aggr_rank('d_k', 7) = 1 + (SELECT count(*) FROM d2 WHERE kk < 7) AS rank_ok;
SELECT status FROM aggr_verify('d_k');

-- maintenance is refused in read-only transactions (the heap writes bypass the executor)
BEGIN READ ONLY;
SELECT aggr_clear('d_k');
ROLLBACK;
BEGIN READ ONLY;
SELECT aggr_count('d_k') > 0 AS reads_are_fine;
ROLLBACK;

-- DROP EXTENSION removes its triggers from user tables
SELECT count(*) AS our_triggers FROM pg_trigger WHERE tgrelid = 'd2'::regclass AND tgname LIKE 'aggr_ext_%';
DROP EXTENSION aggr_ext;
SELECT count(*) AS triggers_after_drop FROM pg_trigger WHERE tgrelid = 'd2'::regclass;
SELECT count(*) AS internal_schema_left FROM pg_namespace WHERE nspname = 'aggr_internal';
INSERT INTO d2 VALUES (5000, 1, 1);
DROP TABLE d2;
CREATE EXTENSION aggr_ext;
