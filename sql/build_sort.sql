-- aggr_create(build => 'now') sorts the entries of plain keys (integers,
-- floats, dates, times, timestamps, bool, "char", oid, with an integer
-- primary key) in memory instead of through the SQL ordered scan. Every
-- position of every aggregate is compared with ORDER BY over the same
-- table: NULLs first and last, DESC, NaN, -0, infinities, extremes, ties
-- on the first column decided by the next; with maintenance_work_mem large
-- enough (in memory) and too small (sorted runs spilled and merged).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aggr_ext;
RESET client_min_messages;
SELECT setseed(0.42);
CREATE TABLE bs (id int PRIMARY KEY, f8 float8, f4 float4, i2 int2, i4 int, i8 int8, b bool, c "char",
                 d date, t time, ts timestamp, tz timestamptz, o oid, g int8);
INSERT INTO bs
SELECT g,
       CASE g % 11 WHEN 0 THEN 'NaN' WHEN 1 THEN '-0' WHEN 2 THEN '0' WHEN 3 THEN 'Infinity' WHEN 4 THEN '-Infinity'
                   WHEN 5 THEN NULL ELSE (random() - 0.5) * 1e6 END,
       CASE g % 7 WHEN 0 THEN 'NaN'::float4 WHEN 1 THEN '-0'::float4 WHEN 2 THEN NULL ELSE (random() * 100)::float4 END,
       CASE g % 9 WHEN 0 THEN -32768 WHEN 1 THEN 32767 WHEN 2 THEN NULL ELSE (random() * 200 - 100)::int2 END,
       CASE g % 13 WHEN 0 THEN -2147483648 WHEN 1 THEN 2147483647 WHEN 2 THEN NULL ELSE (random() * 50)::int END,
       CASE g % 10 WHEN 0 THEN -9223372036854775808 WHEN 1 THEN 9223372036854775807 WHEN 2 THEN NULL
                   ELSE (random() * 1e12)::int8 - 500000000000 END,
       CASE g % 3 WHEN 0 THEN true WHEN 1 THEN false ELSE NULL END,
       CASE g % 5 WHEN 0 THEN NULL ELSE chr(1 + (g * 37) % 254)::"char" END,
       CASE g % 8 WHEN 0 THEN 'infinity' WHEN 1 THEN '-infinity' WHEN 2 THEN NULL ELSE date '2000-01-01' + (g % 5000) END,
       CASE g % 6 WHEN 0 THEN NULL ELSE time '00:00' + (g * 7919 % 86400) * interval '1 second' END,
       CASE g % 8 WHEN 0 THEN 'infinity' WHEN 1 THEN '-infinity' WHEN 2 THEN NULL
                  ELSE timestamp '2020-01-01' + (g::int8 * 104729 % 10000000) * interval '1 second' END,
       CASE g % 8 WHEN 0 THEN 'infinity' WHEN 1 THEN '-infinity' WHEN 2 THEN NULL
                  ELSE timestamptz '2020-01-01 00:00+00' + (g::int8 * 15485863 % 10000000) * interval '1 second' END,
       CASE g % 4 WHEN 0 THEN 4294967295 WHEN 1 THEN 0 WHEN 2 THEN NULL ELSE (g::int8 * 2654435761 % 4294967296) END::oid,
       g % 3
FROM generate_series(1, 3000) g;

-- Every position of `agg` against ORDER BY `order_sql`, id: mismatches.
CREATE FUNCTION position_mismatches(agg text, order_sql text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format($q$
    WITH ordered AS (SELECT id, row_number() OVER (ORDER BY %s, id) - 1 AS pos FROM bs)
    SELECT count(*) FILTER (WHERE (SELECT a.id FROM aggr_at(%L, o.pos) a) IS DISTINCT FROM o.id::text)
      FROM ordered o$q$, order_sql, agg) INTO n;
  RETURN n;
END $$;

CREATE TABLE key_specs (k text);
INSERT INTO key_specs VALUES
  ('f8'), ('f8 DESC'), ('f8 NULLS FIRST'), ('f8 DESC NULLS LAST'), ('f4'), ('f4 DESC'),
  ('i2'), ('i2 DESC NULLS LAST'), ('i4'), ('i4 DESC'), ('i8'), ('i8 DESC NULLS LAST'),
  ('b'), ('b DESC'), ('c'), ('c DESC'), ('d'), ('d DESC NULLS LAST'), ('t'), ('t DESC'),
  ('ts'), ('ts DESC'), ('tz NULLS FIRST'), ('tz DESC'), ('o'), ('o DESC NULLS LAST'),
  ('g, f8'), ('g DESC, i8 NULLS FIRST'), ('b, c DESC, i4'), ('i4 DESC, ts NULLS FIRST');

-- Builds an aggregate per key spec under `mem`, counts mismatches, drops it.
CREATE FUNCTION check_builds(mem text) RETURNS TABLE (k text, mismatches bigint, verify text) LANGUAGE plpgsql AS $$
DECLARE s record;
BEGIN
  PERFORM set_config('maintenance_work_mem', mem, true);
  FOR s IN SELECT key_specs.k FROM key_specs ORDER BY 1 LOOP
    PERFORM aggr_create('bs_agg', 'bs', key => s.k, build => 'now');
    k := s.k;
    mismatches := position_mismatches('bs_agg', s.k);
    SELECT v.status INTO verify FROM aggr_verify('bs_agg') v;
    PERFORM aggr_drop('bs_agg');
    RETURN NEXT;
  END LOOP;
END $$;

SET client_min_messages = warning;  -- aggr_create's NOTICEs
-- in memory (3,000 entries of at most ~30 bytes)
SELECT count(*) AS keys, sum(mismatches) AS mismatches, bool_and(verify = 'ok') AS verified FROM check_builds('64MB');
SELECT k, mismatches, verify FROM check_builds('64MB') WHERE mismatches <> 0 OR verify <> 'ok';
-- the same over the 1MB budget: sorted runs in temporary files, merged
-- (40,000 rows: two runs)
INSERT INTO bs (id, i4, g) SELECT g, g % 1000, g % 3 FROM generate_series(3001, 40000) g;
SELECT count(*) AS keys, sum(mismatches) AS mismatches, bool_and(verify = 'ok') AS verified FROM check_builds('1MB');
RESET client_min_messages;

-- a sum, and a later write through the triggers on the sorted build
SELECT aggr_create('bs_sum', 'bs', key => 'i8 DESC NULLS LAST', sum_value => 'i4', build => 'now');
SELECT aggr_sum('bs_sum') = (SELECT sum(i4) FROM bs) AS sum_ok, aggr_count('bs_sum') = (SELECT count(*) FROM bs) AS count_ok;
UPDATE bs SET i8 = i8 + 1 WHERE id % 17 = 0 AND i8 < 9223372036854775807;
SELECT position_mismatches('bs_sum', 'i8 DESC NULLS LAST') AS after_updates, (SELECT status FROM aggr_verify('bs_sum')) AS verify;
SELECT aggr_drop('bs_sum');

-- verify and repair in the transaction that built the aggregate read the
-- generation it built (they used the definition compiled before the build:
-- verify reported every row missing, and repair inserted them all again)
BEGIN;
SELECT aggr_create('bs_tx', 'bs', key => 'f8', build => 'now');
SELECT status, table_count, aggregate_count, missing FROM aggr_verify('bs_tx');
SELECT * FROM aggr_repair('bs_tx');
SELECT aggr_count('bs_tx') = (SELECT count(*) FROM bs) AS count_ok, position_mismatches('bs_tx', 'f8') AS mismatches;
COMMIT;
SELECT status FROM aggr_verify('bs_tx');
SELECT aggr_drop('bs_tx');

-- a column the aggregate reads changes type in the transaction that already
-- used the aggregate: its compiled definition (int8 keys) is kept until the
-- transaction ends, so a build or verify of the float8 values would encode
-- them as int8 bits (a job step built and swapped in such a tree): refused
CREATE TABLE br_stale (id int PRIMARY KEY, v int8);
INSERT INTO br_stale SELECT g, (g * 7919) % 1000 - 500 FROM generate_series(1, 2000) g;
BEGIN;
SELECT aggr_create('br_stale_a', 'br_stale', key => 'v', build => 'now');
ALTER TABLE br_stale ALTER COLUMN v TYPE float8 USING v / 3.0;
SELECT aggr_rebuild('br_stale_a', background => false);
SAVEPOINT s;
SELECT aggr_job_step('br_stale_a');  -- the whole build in one step
ROLLBACK TO s;
SELECT * FROM aggr_verify('br_stale_a');
ROLLBACK;
BEGIN;
SELECT aggr_create('br_stale_a', 'br_stale', key => 'v', build => 'now');
ALTER TABLE br_stale ALTER COLUMN v TYPE float8 USING v / 3.0;
SELECT aggr_rebuild('br_stale_a', batch_size => 500, background => false);
SELECT aggr_job_step('br_stale_a');  -- batches through the held cursor
ROLLBACK;
DROP TABLE br_stale;

-- as a non-superuser table owner: the in-memory build, a spilled build and
-- a background build in one job step (default batch size), against SQL
CREATE ROLE regress_bs_owner;
CREATE SCHEMA bs_owned AUTHORIZATION regress_bs_owner;
SET ROLE regress_bs_owner;
CREATE TABLE bs_owned.t (id int PRIMARY KEY, v float8);
INSERT INTO bs_owned.t SELECT g, CASE g % 9 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN NULL ELSE ((g * 7919) % 1000)::float8 END
  FROM generate_series(1, 30000) g;
SELECT aggr_create('bs_owned_a', 'bs_owned.t', key => 'v DESC', sum_value => 'id', build => 'now');
SELECT aggr_count('bs_owned_a') = 30000 AS count_ok, aggr_sum('bs_owned_a') = (SELECT sum(id) FROM bs_owned.t) AS sum_ok,
       (SELECT a.id FROM aggr_at('bs_owned_a', 12345) a) = (SELECT t.id::text FROM bs_owned.t t ORDER BY t.v DESC, t.id OFFSET 12345 LIMIT 1) AS at_ok;
SET maintenance_work_mem = '1MB';
SELECT aggr_rebuild('bs_owned_a', background => false);
SELECT aggr_job_step('bs_owned_a');  -- over the budget: the held ordered cursor (one batch of 50,000 covers it)
SELECT phase, rows_done FROM aggr_job_status('bs_owned_a');
RESET maintenance_work_mem;
CALL aggr_wait('bs_owned_a');
SELECT status FROM aggr_verify('bs_owned_a');
SELECT aggr_rebuild('bs_owned_a', background => false);
SELECT aggr_job_step('bs_owned_a');  -- the whole generation in one step
SELECT phase, rows_done FROM aggr_job_status('bs_owned_a');
CALL aggr_wait('bs_owned_a');
SELECT status FROM aggr_verify('bs_owned_a');
SELECT aggr_drop('bs_owned_a');
RESET ROLE;
DROP SCHEMA bs_owned CASCADE;
DROP ROLE regress_bs_owner;
DROP TABLE bs, key_specs;
DROP FUNCTION position_mismatches(text, text), check_builds(text);
