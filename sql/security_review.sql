-- Hostile-owner attacks found in review. Each part names what it checks.
SET client_min_messages = warning;
\set VERBOSITY terse
CREATE ROLE regress_rv_hostile;
CREATE ROLE regress_rv_reader;
CREATE SCHEMA rv AUTHORIZATION regress_rv_hostile;
GRANT USAGE ON SCHEMA rv TO PUBLIC;

-- 1. Reading another role's aggregate must not run that role's code as the
-- reader. Compiling an aggregate folds constants, which runs IMMUTABLE
-- functions of its key; such a function may call a VOLATILE one. A reader
-- (a superuser monitoring with aggr_status) compiled it as itself, so the
-- owner's code ran with superuser rights (it could ALTER ROLE itself
-- SUPERUSER). Every run of the owner's code is recorded here with the
-- role it ran as.
SET ROLE regress_rv_hostile;
CREATE TABLE rv.ran_as (who name, superuser bool);
GRANT INSERT ON rv.ran_as TO PUBLIC;
CREATE SEQUENCE rv.runs;  -- counts runs even in transactions that roll back
GRANT USAGE ON SEQUENCE rv.runs TO PUBLIC;
CREATE FUNCTION rv.record_caller() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM nextval('rv.runs');
  INSERT INTO rv.ran_as SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
  RETURN 0;
END $$;
CREATE FUNCTION rv.zero(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN $1 * 0 + rv.record_caller(); END $$;
CREATE TABLE rv.t (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO rv.t SELECT g, g % 10 FROM generate_series(1, 100) g;
SELECT aggr_create('rv_agg', 'rv.t', key => 'v + rv.zero(0)', sum_value => 'v');
GRANT SELECT ON rv.t TO regress_rv_reader;
DELETE FROM rv.ran_as;
RESET ROLE;
-- a superuser monitors and reads it
SELECT name, state, entries FROM aggr_status('rv_agg');
SELECT aggr_count('rv_agg') = (SELECT count(*) FROM rv.t) AS count_ok,
       aggr_sum('rv_agg', lower => 3, upper => 5) = (SELECT sum(v) FROM rv.t WHERE v BETWEEN 3 AND 5) AS sum_ok,
       aggr_rank('rv_agg', 5) = (SELECT count(*) + 1 FROM rv.t WHERE v < 5) AS rank_ok;
-- a reader with SELECT reads it
SET ROLE regress_rv_reader;
SELECT aggr_count('rv_agg', lower => 2) = (SELECT count(*) FROM rv.t WHERE v >= 2) AS reader_count_ok;
RESET ROLE;
-- the owner's code ran as the owner only (or not at all)
SELECT who, superuser, count(*) > 0 AS ran FROM rv.ran_as GROUP BY who, superuser ORDER BY who;
SELECT count(*) AS runs_as_others FROM rv.ran_as WHERE who <> 'regress_rv_hostile';
-- A role with no privilege on the table is refused before anything of the
-- owner's runs (in a new session: nothing compiled yet).
CREATE ROLE regress_rv_stranger;
SELECT last_value AS runs_before FROM rv.runs \gset
\c
SET client_min_messages = warning;
\set VERBOSITY terse
SET ROLE regress_rv_stranger;
SELECT aggr_count('rv_agg');
RESET ROLE;
SELECT last_value - :runs_before AS runs_for_stranger FROM rv.runs;
DROP ROLE regress_rv_stranger;

-- 2. aggr_aggregates lists only the aggregates the caller may read. Without
-- a security barrier a caller's own cheap function in a WHERE on the view
-- ran below the filter and saw every aggregate's name and key expression.
CREATE ROLE regress_rv_snoop;
SET ROLE regress_rv_snoop;
CREATE TEMP TABLE seen (name text, key text);
CREATE FUNCTION pg_temp.leak(text, text) RETURNS bool LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN INSERT INTO pg_temp.seen VALUES ($1, $2); RETURN true; END $$;
SELECT count(*) AS listed FROM aggr_aggregates WHERE pg_temp.leak(name, key);
SELECT count(*) AS leaked FROM pg_temp.seen;
RESET ROLE;
DROP TABLE pg_temp.seen;
DROP FUNCTION pg_temp.leak(text, text);
DROP ROLE regress_rv_snoop;

-- 3. Crash recovery empties an unlogged table without firing a trigger, and
-- the WAL-logged trees kept every row (aggr_count 1000 on an empty table
-- after an immediate shutdown): aggr_create refuses unlogged tables.
CREATE UNLOGGED TABLE rv_unlogged (id int PRIMARY KEY, v int);
SELECT aggr_create('rv_ul', 'rv_unlogged', key => 'v');
SELECT count(*) AS created FROM aggr_aggregates WHERE name = 'rv_ul';
DROP TABLE rv_unlogged;

-- 4. The merger prepares each deferred aggregate as its owner, which folds
-- the owner's key functions: one that sleeps in a background worker stalled
-- merging for every role of the database. Now an aggregate whose
-- preparation takes over 5 s fails that round and the others are merged.
SET ROLE regress_rv_hostile;
CREATE FUNCTION rv.stall(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF pg_catalog.current_setting('application_name') = '' THEN  -- a background worker
    PERFORM pg_catalog.pg_sleep(30);
  END IF;
  RETURN $1;
END $$;
CREATE TABLE rv.stalls (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('rv_stall', 'rv.stalls', key => 'v + rv.stall(0)');
SELECT aggr_set_write_mode('rv_stall', 'deferred');
INSERT INTO rv.stalls VALUES (1, 1);  -- launches the merger, which stalls on this aggregate
RESET ROLE;
CREATE TABLE rv_merged (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('rv_merged', 'rv_merged', key => 'v');
SELECT aggr_set_write_mode('rv_merged', 'deferred');
INSERT INTO rv_merged SELECT g, g FROM generate_series(1, 100) g;
DO $$
DECLARE deadline timestamptz := clock_timestamp() + interval '25 seconds';
BEGIN
  WHILE clock_timestamp() < deadline AND EXISTS (
      SELECT FROM aggr_internal.deltas d JOIN aggr_internal.aggregates a USING (aggr_id) WHERE a.name = 'rv_merged') LOOP
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT count(*) AS others_still_pending FROM aggr_internal.deltas d JOIN aggr_internal.aggregates a USING (aggr_id)
 WHERE a.name = 'rv_merged';
SELECT aggr_count('rv_merged') = (SELECT count(*) FROM rv_merged) AS others_exact;
SELECT aggr_drop('rv_merged');
DROP TABLE rv_merged;
SELECT aggr_drop('rv_stall');

-- clean up
SELECT aggr_drop('rv_agg');
DROP SCHEMA rv CASCADE;
DROP ROLE regress_rv_hostile, regress_rv_reader;
