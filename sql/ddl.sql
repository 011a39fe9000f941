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

-- a restore analyzes the key again by name: the stored text names a user
-- function outside pg_catalog with its schema, whatever the search_path of
-- the writer (or the owner context's pg_catalog, pg_temp) then
CREATE SCHEMA ddl_fn_a;
CREATE SCHEMA ddl_fn_b;
CREATE FUNCTION ddl_fn_a.twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2 * $1';
CREATE FUNCTION ddl_fn_b.twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT -$1';
CREATE TABLE ddl_r (id int PRIMARY KEY, v int);
INSERT INTO ddl_r SELECT g, g FROM generate_series(1, 100) g;
SET search_path = ddl_fn_a, public;
SELECT aggr_create('d_fn', 'ddl_r'::regclass, key => 'twice(v) DESC', sum_value => 'twice(v)', namespace => 'v % 2');
RESET search_path;
SELECT key, sum_value, namespace FROM aggr_status('d_fn');
SELECT key FROM aggr_status('d_k');  -- a key that needs no schema is kept as written
-- as if restored from a dump: the stored expressions are analyzed again
UPDATE aggr_internal.aggregates SET origin = 'restored elsewhere' WHERE name = 'd_fn';
SET search_path = ddl_fn_b, public;
INSERT INTO ddl_r SELECT g, g FROM generate_series(101, 120) g;   -- a writer with another twice() in its path
RESET search_path;
SELECT aggr_rank('d_fn', 150, namespace => 0) = 1 + (SELECT count(*) FROM ddl_r WHERE v % 2 = 0 AND ddl_fn_a.twice(v) > 150) AS rank_ok,
       aggr_sum('d_fn', namespace => 1) = (SELECT sum(ddl_fn_a.twice(v)) FROM ddl_r WHERE v % 2 = 1) AS sum_ok;
SELECT aggr_rebuild('d_fn', background => false);   -- the owner context: search_path pg_catalog, pg_temp
SELECT aggr_rank('d_fn', 150, namespace => 0) = 1 + (SELECT count(*) FROM ddl_r WHERE v % 2 = 0 AND ddl_fn_a.twice(v) > 150) AS rank_after_rebuild_ok;
SELECT aggr_drop('d_fn');
DROP TABLE ddl_r;
DROP SCHEMA ddl_fn_a, ddl_fn_b CASCADE;

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
