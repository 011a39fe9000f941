-- Who runs the table owner's code outside the owner's own statements.
-- A role with no special attributes owns a table whose aggregate key calls
-- its IMMUTABLE plpgsql function. The function records who runs it, whether
-- that role is a superuser, whether it runs inside a security-restricted
-- operation (CREATE TEMP TABLE is refused there) and the search_path, and
-- tries to make its owner a superuser. The merger, job workers and
-- maintenance called by a superuser must run it as the owner, sandboxed,
-- as REINDEX runs index expressions. (A superuser's own reads would run it
-- as the superuser, by design: the oracle reads as the owner.)
SET client_min_messages = warning;
LOAD 'aggr_ext';  -- its settings, for ALTER SYSTEM
ALTER SYSTEM RESET aggr_ext.merge_deltas;
ALTER SYSTEM SET aggr_ext.job_delay = '20ms';
SELECT pg_reload_conf();
CREATE ROLE sec_owner NOLOGIN;  -- a worker could not even connect as it
CREATE SCHEMA sec AUTHORIZATION sec_owner;
-- Which process runs the probe (pg_stat_activity hides it from sec_owner).
CREATE FUNCTION sec_backend() RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
  AS $$ SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid() $$;

SET ROLE sec_owner;
CREATE TABLE sec.log (usr name, super bool, sro bool, path text, backend text);
-- Volatile, so that the immutable probe can write through it.
-- SET ROLE is refused in a security-restricted operation.
CREATE FUNCTION sec.note() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  restricted bool := false;
BEGIN
  BEGIN
    PERFORM pg_catalog.set_config('role', current_user, true);
    RAISE EXCEPTION 'undo the SET ROLE';
  EXCEPTION
    WHEN insufficient_privilege THEN restricted := true;
    WHEN raise_exception THEN NULL;
  END;
  BEGIN
    ALTER ROLE sec_owner SUPERUSER;
  EXCEPTION WHEN OTHERS THEN
    NULL;
  END;
  INSERT INTO sec.log
  SELECT current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), restricted,
         pg_catalog.current_setting('search_path'),
         public.sec_backend();
END $$;
CREATE FUNCTION sec.probe(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM sec.note();
  RETURN v;
END $$;
CREATE TABLE sec.t (id int PRIMARY KEY, score int NOT NULL);
-- An index in aggregate order: the job's ordered scan can read it lazily.
CREATE INDEX ON sec.t ((sec.probe(score) + sec.probe(0)), id);
INSERT INTO sec.t SELECT g, (g * 37) % 101 FROM generate_series(1, 40) g;
-- sec.probe(0) is folded when the aggregate is compiled; sec.probe(score)
-- runs for every row evaluated.
SELECT aggr_create('sec_agg', 'sec.t'::regclass, key => 'sec.probe(score) + sec.probe(0)', build => 'now');
SELECT aggr_set_write_mode('sec_agg', 'deferred');
RESET ROLE;

-- What ran outside the owner's own statements since the last call, grouped.
CREATE FUNCTION sec_report(backends text[]) RETURNS TABLE (usr name, super bool, sro bool, path text, backend text)
LANGUAGE sql AS $$
  SELECT DISTINCT usr, super, sro, path, backend FROM sec.log WHERE backend = ANY (backends) ORDER BY 1, 2, 3, 4, 5
$$;
-- Waits (bounded) for the merger to fold every delta of sec_agg, for its
-- job to end, or for no job worker to run. Reads the internal tables, not
-- aggr_job_status: a read would compile the aggregate as this superuser.
CREATE FUNCTION sec_wait(what text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  j record;
BEGIN
  FOR i IN 1 .. 1200 LOOP
    IF what = 'merge' THEN
      IF NOT EXISTS (SELECT FROM aggr_internal.deltas d JOIN aggr_internal.aggregates a USING (aggr_id)
                      WHERE a.name = 'sec_agg') THEN
        RETURN 'merged';
      END IF;
    ELSIF what = 'no worker' THEN
      PERFORM pg_stat_clear_snapshot();  -- pg_stat_activity is otherwise read once per transaction
      IF NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'aggr_ext job') THEN
        RETURN 'no job worker';
      END IF;
    ELSE
      SELECT phase, error INTO j FROM aggr_internal.jobs JOIN aggr_internal.aggregates a USING (aggr_id)
       WHERE a.name = 'sec_agg';
      IF NOT FOUND THEN RETURN 'job done'; END IF;
      IF j.error IS NOT NULL THEN RETURN 'job failed: ' || j.error; END IF;
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN 'timed out';
END $$;
CREATE FUNCTION sec_exact() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN aggr_count('sec_agg') = (SELECT count(*) FROM sec.t)
               AND (SELECT array_agg(id::int ORDER BY position) FROM aggr_page('sec_agg', 0, 1000)) =
                   (SELECT array_agg(id ORDER BY score, id) FROM sec.t)
              THEN 'exact' ELSE 'WRONG' END
$$;

-- 1. The merger folds the owner's deltas: as the owner, sandboxed. (The
-- log is not emptied first: the merger compiles the aggregate once, maybe
-- as soon as it became deferred.)
SET ROLE sec_owner;
INSERT INTO sec.t SELECT g, (g * 37) % 101 FROM generate_series(41, 60) g;
DELETE FROM sec.t WHERE id % 9 = 0;
RESET ROLE;
SELECT sec_wait('merge');
SELECT * FROM sec_report('{aggr_ext merger}');
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_owner';
SET ROLE sec_owner;
SELECT sec_exact();
RESET ROLE;

-- 2. Maintenance called by a superuser on the owner's table runs the
-- owner's code as the owner, sandboxed (the superuser's backend).
TRUNCATE sec.log;
SELECT status FROM aggr_verify('sec_agg');
SELECT count(*) FROM aggr_diff('sec_agg');
SELECT * FROM aggr_repair('sec_agg');
SELECT aggr_merge('sec_agg') >= 0 AS merged;
SELECT aggr_set_write_mode('sec_agg', 'direct');
SELECT aggr_set_write_mode('sec_agg', 'deferred');
SELECT aggr_create('sec_agg2', 'sec.t'::regclass, key => 'sec.probe(score)', build => 'now');
SELECT aggr_drop('sec_agg2');
SELECT * FROM sec_report('{client backend}');
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_owner';

-- 3. A rebuild started by a superuser: its worker runs steps as the owner.
TRUNCATE sec.log;
SELECT aggr_rebuild('sec_agg', batch_size => 7, background => true);
SELECT sec_wait('job');
SELECT * FROM sec_report('{aggr_ext job}');
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_owner';
SET ROLE sec_owner;
SELECT sec_exact();
RESET ROLE;

-- 4. A backfill started (and cancelled) by a superuser, resumed by the
-- owner: the worker runs as the owner, not as the role that started it.
BEGIN;
SELECT aggr_job_start('sec_agg', 'backfill', 7, true);
SELECT aggr_backfill_cancel('sec_agg');
COMMIT;
SELECT sec_wait('no worker');  -- the worker it launched found the job cancelled
SELECT phase, cancelled FROM aggr_internal.jobs JOIN aggr_internal.aggregates a USING (aggr_id)
 WHERE a.name = 'sec_agg';
TRUNCATE sec.log;
SET ROLE sec_owner;
CALL aggr_backfill('sec_agg', 7);
RESET ROLE;
SELECT sec_wait('job');
SELECT * FROM sec_report('{aggr_ext job}');
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_owner';
SET ROLE sec_owner;
SELECT sec_exact();
RESET ROLE;

-- 5. The same job driven step by step by a superuser (background => false),
-- one transaction per step: the cursor the scan holds across steps is
-- filled as the owner too, not at the superuser's commit.
-- The index makes the scan lazy: each step fetches 7 rows, and the rest of
-- the held cursor is computed when it is materialized.
SET enable_sort = off;
SET enable_seqscan = off;
TRUNCATE sec.log;
SELECT aggr_rebuild('sec_agg', batch_size => 7, background => false);
DO $$ BEGIN WHILE aggr_job_step('sec_agg') LOOP COMMIT; END LOOP; END $$;
RESET enable_sort;
RESET enable_seqscan;
SELECT * FROM sec_report('{client backend}');
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_owner';
SET ROLE sec_owner;
SELECT sec_exact();
RESET ROLE;

-- 6. A job started by a superuser whose worker died is relaunched by a
-- mere reader's read: the new worker runs as the owner, not as the role
-- that started the job, nor as the reader.
CREATE ROLE sec_reader NOLOGIN;
SET ROLE sec_owner;
GRANT USAGE ON SCHEMA sec TO sec_reader;
GRANT SELECT ON sec.t TO sec_reader;
GRANT INSERT ON sec.log TO sec_reader;  -- the probe runs in the reader's own reads
RESET ROLE;
ALTER SYSTEM SET aggr_ext.job_delay = '1s';  -- read by a job worker when it starts
SELECT pg_reload_conf();
SELECT aggr_rebuild('sec_agg', batch_size => 7, background => true);
CREATE FUNCTION sec_kill_job_worker() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. 1200 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'aggr_ext job' THEN
      RETURN 'terminated';
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN 'no worker seen';
END $$;
SELECT sec_kill_job_worker();
SELECT sec_wait('no worker');
ALTER SYSTEM SET aggr_ext.job_delay = '20ms';
SELECT pg_reload_conf();
-- A worker is relaunched once the job has not moved for 5 seconds.
DO $$
BEGIN
  FOR i IN 1 .. 300 LOOP
    EXIT WHEN (SELECT updated < clock_timestamp() - interval '5.5 seconds'
                 FROM aggr_internal.jobs JOIN aggr_internal.aggregates a USING (aggr_id) WHERE a.name = 'sec_agg');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
TRUNCATE sec.log;
SET ROLE sec_reader;
SELECT phase IS NOT NULL AS job_pending FROM aggr_job_status('sec_agg');  -- relaunches the worker
RESET ROLE;
SELECT sec_wait('job');
SELECT * FROM sec_report('{aggr_ext job}');
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_owner';
SET ROLE sec_owner;
SELECT sec_exact();
RESET ROLE;

-- 7. A step that fails as the owner: the worker rolls it back, records the
-- error (with its own transaction) and stops; nothing of the step stays.
CREATE TABLE sec.fail ();
ALTER TABLE sec.fail OWNER TO sec_owner;
SET ROLE sec_owner;
CREATE OR REPLACE FUNCTION sec.probe(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF v > 0 AND EXISTS (SELECT FROM sec.fail) THEN  -- row values only: compiling still works
    RAISE EXCEPTION 'probe refused' USING ERRCODE = 'P0099';
  END IF;
  PERFORM sec.note();
  RETURN v;
END $$;
INSERT INTO sec.fail DEFAULT VALUES;
RESET ROLE;
SELECT aggr_rebuild('sec_agg', batch_size => 7, background => true);
SELECT sec_wait('job');
SELECT count(*) AS trees_of_the_failed_build FROM aggr_internal.trees t JOIN aggr_internal.aggregates a USING (aggr_id)
 WHERE a.name = 'sec_agg' AND t.generation = a.build_generation;
SET ROLE sec_owner;
SELECT aggr_backfill_cancel('sec_agg');
DELETE FROM sec.fail;
SELECT sec_exact();
RESET ROLE;

ALTER SYSTEM RESET aggr_ext.job_delay;
SELECT pg_reload_conf();
SELECT aggr_drop('sec_agg');
DROP SCHEMA sec CASCADE;
DROP FUNCTION sec_report(text[]), sec_wait(text), sec_exact(), sec_backend(), sec_kill_job_worker();
DROP ROLE sec_reader;
DROP ROLE sec_owner;
