-- Every documented error: clear message, SQLSTATE, and nothing changed.
SET client_min_messages = warning;
\set VERBOSITY default
SELECT aggr_create('lb', 'scores'::regclass, key => 'score DESC', sum_value => 'points');
SELECT aggr_create('ns', 'scores'::regclass, key => 'score', namespace => 'game');

-- unknown names, NULL arguments
SELECT aggr_count('nope');
SELECT aggr_count(NULL);
SELECT aggr_at('lb', NULL);
-- an offset in an empty range (an empty namespace, empty bounds): the hint says
-- the range is empty (not "offsets run from 0 to -1")
SELECT * FROM aggr_at('ns', 0, namespace => -12345);
SELECT * FROM aggr_at('ns', -1, namespace => 1, lower => 10, upper => 5);
-- duplicate name
SELECT aggr_create('lb', 'scores'::regclass, key => 'id');
-- tables without primary key (partitioned ones too), views, row-level security
CREATE TABLE no_pk (a int);
SELECT aggr_create('x', 'no_pk'::regclass, key => 'a');
CREATE VIEW v AS SELECT * FROM scores;
SELECT aggr_create('x', 'v'::regclass, key => 'score');
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
SELECT aggr_create('x', 'parted'::regclass, key => 'id');
-- Tables whose rows the triggers on this table never see. A foreign table
-- (contrib's file_fdw):
CREATE EXTENSION file_fdw;
CREATE SERVER err_files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE err_foreign (id int, v int) SERVER err_files OPTIONS (filename '/dev/null', format 'csv');
SELECT aggr_create('x', 'err_foreign'::regclass, key => 'v');
DROP EXTENSION file_fdw CASCADE;
-- A Citus distributed table: Citus cannot be installed here, so its catalog
-- is faked (a pg_extension row for citus and its pg_dist_partition, in a
-- transaction rolled back at the end). Without Citus nothing is looked up.
BEGIN;
SET LOCAL allow_system_table_mods = on;
CREATE SCHEMA err_citus;
CREATE TABLE err_citus.pg_dist_partition (logicalrelid regclass NOT NULL, partmethod "char" NOT NULL);
INSERT INTO pg_catalog.pg_extension (oid, extname, extowner, extnamespace, extrelocatable, extversion)
  VALUES (3999999999, 'citus', current_user::regrole, 'err_citus'::regnamespace, false, '13.2');
CREATE TABLE err_dist (id int PRIMARY KEY, v int);
CREATE TABLE err_plain (id int PRIMARY KEY, v int);
INSERT INTO err_citus.pg_dist_partition VALUES ('err_dist', 'h');
SELECT aggr_create('err_plain_v', 'err_plain'::regclass, key => 'v');  -- not listed: accepted
SAVEPOINT s;
SELECT aggr_create('err_dist_v', 'err_dist'::regclass, key => 'v');
ROLLBACK TO s;
-- A table distributed after aggr_create: reads refuse its aggregate. The
-- check is made when the aggregate is compiled, and again after an
-- invalidation of the table (Citus invalidates its relcache when it lists
-- it; ALTER TABLE does here), within the transaction too.
INSERT INTO err_plain VALUES (1, 10), (2, 20);
SELECT aggr_count('err_plain_v');  -- compiled and held for the transaction
INSERT INTO err_citus.pg_dist_partition VALUES ('err_plain', 'h');
ALTER TABLE err_plain SET (fillfactor = 90);
SAVEPOINT s;
SELECT aggr_count('err_plain_v');
ROLLBACK TO s;
SAVEPOINT s;
SELECT * FROM aggr_verify('err_plain_v');
ROLLBACK TO s;
DELETE FROM err_citus.pg_dist_partition WHERE logicalrelid = 'err_plain'::regclass;
ALTER TABLE err_plain SET (fillfactor = 100);
SELECT aggr_count('err_plain_v');  -- listed no more: 2 again
-- citus_add_local_table_to_metadata makes the table (same OID) the shard
-- of a new shell table and renames its triggers <trigger>_<shard id>, as here:
SELECT tgname AS row_trigger, tgname || '_102008' AS row_copy, tgname || '_truncate' AS truncate_trigger,
       tgname || '_truncate_102008' AS truncate_copy
  FROM pg_trigger WHERE tgrelid = 'err_plain'::regclass AND tgname ~ '^aggr_ext_[0-9]+$' \gset
ALTER TRIGGER :"row_trigger" ON err_plain RENAME TO :"row_copy";
SAVEPOINT s;
SELECT aggr_count('err_plain_v');  -- its triggers are gone from its table
ROLLBACK TO s;
\set VERBOSITY terse
SAVEPOINT s;
INSERT INTO err_plain VALUES (3, 30);  -- refused by the copy of the row trigger
ROLLBACK TO s;
\set VERBOSITY default
ALTER TRIGGER :"row_copy" ON err_plain RENAME TO :"row_trigger";
-- The copy of the TRUNCATE trigger does nothing (Citus leaves those on
-- shards after aggr_drop): here the aggregate keeps its 2 entries.
ALTER TRIGGER :"truncate_trigger" ON err_plain RENAME TO :"truncate_copy";
TRUNCATE err_plain;
SELECT aggr_count('err_plain_v') AS entries, (SELECT count(*) FROM err_plain) AS rows;
ROLLBACK;
-- Without Citus nothing of the above is looked up: a trigger renamed like a
-- shard's copy is only a trigger aggr_create did not make.
CREATE TABLE err_nocitus (id int PRIMARY KEY, v int);
SELECT aggr_create('err_nocitus_v', 'err_nocitus'::regclass, key => 'v');
SELECT tgname AS row_trigger, tgname || '_102008' AS row_copy
  FROM pg_trigger WHERE tgrelid = 'err_nocitus'::regclass AND tgname ~ '^aggr_ext_[0-9]+$' \gset
ALTER TRIGGER :"row_trigger" ON err_nocitus RENAME TO :"row_copy";
SELECT aggr_count('err_nocitus_v');
INSERT INTO err_nocitus VALUES (1, 1);
ALTER TRIGGER :"row_copy" ON err_nocitus RENAME TO :"row_trigger";
INSERT INTO err_nocitus VALUES (1, 1);
SELECT aggr_count('err_nocitus_v');
SELECT aggr_drop('err_nocitus_v');
DROP TABLE err_nocitus;
CREATE TABLE secret (id int PRIMARY KEY, v int);
ALTER TABLE secret ENABLE ROW LEVEL SECURITY;
SELECT aggr_create('x', 'secret'::regclass, key => 'v');
-- bad key, sum and namespace expressions
SELECT aggr_create('x', 'scores'::regclass, key => 'score DESC; DROP TABLE scores');
SELECT aggr_create('x', 'scores'::regclass, key => 'score LIMIT 1');
SELECT aggr_create('x', 'scores'::regclass, key => 'no_such_column');
SELECT aggr_create('x', 'scores'::regclass, key => 'score + random()');
SELECT aggr_create('x', 'scores'::regclass, key => 'score USING <');
SELECT aggr_create('x', 'scores'::regclass, key => 'point(score, score)');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', sum_value => 'points::numeric');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', sum_value => 'points::text');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', sum_value => 'points, id');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', namespace => 'game::numeric');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', namespace => '(SELECT 1)');
-- expressions that cannot be kept exact: anonymous records (their type id
-- means something only in the creating session), whole rows, system columns
-- (VACUUM FULL changes them)
SELECT aggr_create('x', 'scores'::regclass, key => 'ROW(score, id)');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', namespace => 'ROW(game)');
SELECT aggr_create('x', 'scores'::regclass, key => 'scores');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', sum_value => 'length(scores::text)');
SELECT aggr_create('x', 'scores'::regclass, key => 'ctid');
SELECT aggr_create('x', 'scores'::regclass, key => 'xmin::text::int8');
SELECT aggr_create('x', 'scores'::regclass, key => 'score', namespace => 'tableoid');
SELECT count(*) AS nothing_created FROM aggr_aggregates WHERE name = 'x';
-- namespace rules
SELECT aggr_count('ns');
SELECT aggr_count('lb', namespace => 1);
SELECT aggr_count('ns', namespace => 'abc');
SELECT aggr_count('ns', namespace => '3'), (SELECT count(*) FROM scores WHERE game = 3) AS oracle;
-- offsets, limits and bounds
SELECT * FROM aggr_at('lb', 60000);
SELECT * FROM aggr_at('lb', -60001);
SELECT * FROM aggr_at('lb', 9223372036854775807);
SELECT * FROM aggr_page('lb', 0, -1);
SELECT * FROM aggr_page('lb', -60001, 5);
SELECT aggr_count('lb', lower => 'abc');
SELECT aggr_count('lb', lower => now());
SELECT aggr_count('lb', lower => ROW(1, 2));
SELECT aggr_count('lb', lower => '4000') = (SELECT count(*) FROM scores WHERE score <= 4000) AS untyped_literal_ok;
SELECT aggr_count('lb', lower => 4000::bigint) = (SELECT count(*) FROM scores WHERE score <= 4000) AS bigint_bound_ok;
-- a bound beyond the key type's range means what it means in SQL (every score is below it)
SELECT aggr_count('lb', lower => 40000000000) = (SELECT count(*) FROM scores WHERE score <= 40000000000) AS huge_bound_ok;
SELECT aggr_sum('ns', namespace => 1);
SELECT * FROM aggr_page_rows('lb', 0, 1, NULL::no_pk);
-- NULL namespace values are refused like a NOT NULL constraint
CREATE TABLE maybe (id int PRIMARY KEY, g int, v int);
INSERT INTO maybe VALUES (1, NULL, 1);
SELECT aggr_create('maybe_ns', 'maybe'::regclass, key => 'v', namespace => 'g');
DELETE FROM maybe;
SELECT aggr_create('maybe_ns', 'maybe'::regclass, key => 'v', namespace => 'g');
INSERT INTO maybe VALUES (2, NULL, 2);
SELECT aggr_count('maybe_ns', namespace => 1);
-- oversize keys are rejected, as btree rejects them
CREATE TABLE docs (id int PRIMARY KEY, body text);
SELECT aggr_create('docs_body', 'docs'::regclass, key => 'body');
INSERT INTO docs VALUES (1, repeat('x', 2000));
INSERT INTO docs VALUES (2, repeat('y', 300));
SELECT aggr_count('docs_body');
-- keys may use a quarter of a node minus 64 bytes: an aggregate created with
-- larger nodes takes longer keys
CREATE TABLE long_docs (id int PRIMARY KEY, body text);
SET aggr_ext.node_bytes = 3200;
SELECT aggr_create('long_docs_body', 'long_docs'::regclass, key => 'body');
RESET aggr_ext.node_bytes;
INSERT INTO long_docs VALUES (1, repeat('x', 2000));
INSERT INTO long_docs VALUES (2, repeat('y', 600));
SELECT aggr_count('long_docs_body'), (SELECT count(*) FROM long_docs) AS rows;
SELECT aggr_drop('long_docs_body');
DROP TABLE long_docs;
-- a cleared aggregate refuses reads until backfilled
SELECT aggr_clear('lb');
SELECT aggr_count('lb');
SELECT state FROM aggr_status('lb');
CALL aggr_backfill('lb', wait => true);
SELECT aggr_count('lb') = (SELECT count(*) FROM scores) AS back;
-- privileges: reading needs SELECT on the table, maintenance needs ownership
CREATE ROLE aggr_reader;
CREATE ROLE aggr_stranger;
GRANT SELECT ON scores TO aggr_reader;
SET ROLE aggr_reader;
SELECT aggr_count('lb') = 60000 AS reader_can_count;
SELECT aggr_clear('lb');
SELECT aggr_drop('lb');
SELECT * FROM aggr_verify('lb');
SELECT count(*) FROM aggr_internal.nodes;
RESET ROLE;
SET ROLE aggr_stranger;
SELECT aggr_count('lb');
SELECT * FROM aggr_at('lb', 0);
SELECT aggr_create('mine', 'scores'::regclass, key => 'score');
RESET ROLE;
-- column privileges: the key and primary key columns are enough
REVOKE SELECT ON scores FROM aggr_reader;
GRANT SELECT (id, score, points) ON scores TO aggr_reader;
SET ROLE aggr_reader;
SELECT aggr_count('lb') = 60000 AS column_privileges_ok;
SELECT aggr_count('ns', namespace => 1);
SELECT * FROM aggr_page_rows('lb', 0, 1, NULL::scores);
RESET ROLE;
REVOKE ALL ON scores FROM aggr_reader;
DROP ROLE aggr_reader;
DROP ROLE aggr_stranger;
-- SQLSTATEs of the errors above, for programs that branch on them
CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$;
SELECT q, sqlstate_of(q) FROM (VALUES
  ($q$SELECT aggr_count('nope')$q$),
  ($q$SELECT aggr_count(NULL)$q$),
  ($q$SELECT aggr_create('lb', 'scores'::regclass, key => 'id')$q$),
  ($q$SELECT aggr_create('x', 'no_pk'::regclass, key => 'a')$q$),
  ($q$SELECT aggr_create('x', 'v'::regclass, key => 'score')$q$),
  ($q$SELECT aggr_create('x', 'scores'::regclass, key => 'score LIMIT 1')$q$),
  ($q$SELECT aggr_create('x', 'scores'::regclass, key => 'score + random()')$q$),
  ($q$SELECT aggr_create('x', 'scores'::regclass, key => 'score', sum_value => 'points::text')$q$),
  ($q$SELECT aggr_create('x', 'scores'::regclass, key => 'ROW(score, id)')$q$),
  ($q$SELECT aggr_create('x', 'scores'::regclass, key => 'scores')$q$),
  ($q$SELECT aggr_create('x', 'scores'::regclass, key => 'ctid')$q$),
  ($q$SELECT aggr_count('ns')$q$),
  ($q$SELECT * FROM aggr_at('lb', 60000)$q$),
  ($q$SELECT aggr_count('lb', lower => now())$q$),
  ($q$SELECT aggr_sum('ns', namespace => 1)$q$),
  ($q$INSERT INTO docs VALUES (3, repeat('x', 2000))$q$),
  ($q$INSERT INTO maybe VALUES (3, NULL, 2)$q$)) t(q);
DROP FUNCTION sqlstate_of(text);
-- a domain over an integer or numeric type is a valid sum_value
CREATE DOMAIN pts_dom AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN cents_dom AS numeric(12,2);
CREATE TABLE dom_sums (id int PRIMARY KEY, k int NOT NULL, p pts_dom, m cents_dom);
INSERT INTO dom_sums SELECT g, g % 10, g * 1000, g / 3.0 FROM generate_series(1, 100) g;
SELECT aggr_create('dom_p', 'dom_sums'::regclass, key => 'k', sum_value => 'p');
SELECT aggr_create('dom_m', 'dom_sums'::regclass, key => 'k', sum_value => 'm');
INSERT INTO dom_sums VALUES (101, 1, 5, 1.25);
UPDATE dom_sums SET m = m + 0.5 WHERE k = 4;
SELECT aggr_sum('dom_p') IS NOT DISTINCT FROM (SELECT sum(p) FROM dom_sums) AS domain_int_sum_ok,
       aggr_sum('dom_m', lower => 3) IS NOT DISTINCT FROM (SELECT sum(m) FROM dom_sums WHERE k >= 3) AS domain_numeric_sum_ok;
SELECT p.status AS p_status, m.status AS m_status FROM aggr_verify('dom_p') p, aggr_verify('dom_m') m;
SELECT aggr_drop('dom_p'), aggr_drop('dom_m');
DROP TABLE dom_sums;
DROP DOMAIN pts_dom, cents_dom;
-- a temporary table: other sessions cannot read it, and it ends without DROP
CREATE TEMP TABLE temp_scores (id int PRIMARY KEY, v int);
SELECT aggr_create('temp_v', 'temp_scores'::regclass, key => 'v');
DROP TABLE temp_scores;
-- dropped source table: the aggregate goes with it
CREATE TABLE gone (id int PRIMARY KEY, v int);
SELECT aggr_create('gone_v', 'gone'::regclass, key => 'v');
DROP TABLE gone;
SELECT aggr_count('gone_v');
SELECT aggr_drop('gone_v');
SELECT aggr_drop('lb'), aggr_drop('ns'), aggr_drop('maybe_ns'), aggr_drop('docs_body');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgname LIKE 'aggr_ext_%';
SELECT (SELECT count(*) FROM aggr_internal.trees) AS trees_left, (SELECT count(*) FROM aggr_internal.nodes) AS nodes_left;

-- Errors during the ordered scan of a build, of a row (a NULL namespace)
-- or of the sort (temp_file_limit), are the aggregate's: they keep the
-- caller's context lines (here PL/pgSQL's) and show no internal query.
CREATE TABLE scan_err (id int PRIMARY KEY, g int, k text);
INSERT INTO scan_err SELECT g, g % 3, md5(g::text) FROM generate_series(1, 60000) g;
UPDATE scan_err SET g = NULL WHERE id = 4000;
DO $$ BEGIN PERFORM aggr_create('scan_err_ns', 'scan_err', key => 'k', namespace => 'g', build => 'now'); END $$;
BEGIN;
SET LOCAL maintenance_work_mem = '1MB';
SET LOCAL temp_file_limit = '64kB';
SELECT aggr_create('scan_err_sort', 'scan_err', key => 'k', build => 'now');
ROLLBACK;
SELECT count(*) AS aggregates_left FROM aggr_internal.aggregates WHERE name LIKE 'scan_err%';
DROP TABLE scan_err;
