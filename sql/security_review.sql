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

-- clean up
SELECT aggr_drop('rv_agg');
DROP SCHEMA rv CASCADE;
DROP ROLE regress_rv_hostile, regress_rv_reader;
