-- Backfill, rebuild, repair: each ends exact while the table keeps changing.
-- Jobs here run with background => false and are stepped by hand, so that
-- changes land between (and during) batches deterministically.
SET client_min_messages = warning;
CREATE TABLE events (id int PRIMARY KEY, kind text NOT NULL, at int, weight int NOT NULL);
INSERT INTO events SELECT g, (ARRAY['a','b','c'])[1 + g % 3], (g * 37) % 10000, g % 10 FROM generate_series(1, 20000) g;
CREATE FUNCTION events_exact(agg text) RETURNS TABLE (count_ok bool, sum_ok bool, page_diff bigint, verify text)
LANGUAGE sql AS $$
  SELECT aggr_count(agg) = (SELECT count(*) FROM events),
         aggr_sum(agg) = (SELECT sum(weight) FROM events),
         (SELECT count(*) FROM (
            (SELECT id::text FROM events EXCEPT ALL SELECT id FROM aggr_page(agg, 0, 1000000))
            UNION ALL
            (SELECT id FROM aggr_page(agg, 0, 1000000) EXCEPT ALL SELECT id::text FROM events)) d),
         (SELECT status FROM aggr_verify(agg))
$$;

-- errors whose text carries progress figures: show the SQLSTATE only
CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || split_part(split_part(SQLERRM, ';', 1), ' (', 1); END $$;

-- a background build at create, waited for
SELECT aggr_create('ev', 'events'::regclass, key => 'at DESC', sum_value => 'weight', build => 'background');
CALL aggr_wait('ev');
SELECT * FROM events_exact('ev');
SELECT state, split_part(job, ',', 1) AS job, job_rows_done FROM aggr_status('ev');

-- backfill after clear, stepped, with writes between the batches
SELECT aggr_clear('ev');
CALL aggr_backfill('ev', batch_size => 3000, background => false);
SELECT state, split_part(job, ',', 1) AS job, job_rows_done FROM aggr_status('ev');
SELECT sqlstate_of($$SELECT aggr_count('ev')$$) AS unreachable;
SELECT aggr_job_step('ev');
INSERT INTO events SELECT g, 'd', g % 10000, 1 FROM generate_series(30001, 30500) g;
DELETE FROM events WHERE id % 17 = 0;
SELECT aggr_job_step('ev');
UPDATE events SET at = at + 1, weight = weight + 1 WHERE id % 13 = 0;
UPDATE events SET id = id + 100000 WHERE id % 19 = 0;
SELECT job_rows_done FROM aggr_status('ev');
-- a write and a step in the same transaction, and a rolled back write
BEGIN;
DELETE FROM events WHERE id BETWEEN 100 AND 200;
SELECT aggr_job_step('ev');
COMMIT;
BEGIN;
DELETE FROM events WHERE id BETWEEN 1000 AND 2000;
ROLLBACK;
CALL aggr_wait('ev');
SELECT * FROM events_exact('ev');
SELECT state, split_part(job, ',', 1) AS job, job_rows_done FROM aggr_status('ev');
SELECT count(*) AS log_rows_left FROM aggr_internal.log;
SELECT count(DISTINCT t.generation) AS generations FROM aggr_internal.trees t JOIN aggr_internal.aggregates a USING (aggr_id) WHERE a.name = 'ev';

-- cancel, then resume where it stopped
SELECT aggr_clear('ev');
CALL aggr_backfill('ev', batch_size => 4000, background => false);
SELECT aggr_job_step('ev');
SELECT aggr_backfill_cancel('ev');
SELECT state, split_part(job, ',', 1) AS job, job_rows_done FROM aggr_status('ev');
SELECT sqlstate_of($$SELECT aggr_count('ev')$$) AS unreachable;
SELECT aggr_job_step('ev') AS cancelled_job_does_nothing;
DELETE FROM events WHERE id % 23 = 0;
CALL aggr_backfill('ev', batch_size => 4000, background => false);
SELECT job_rows_done AS resumed_from FROM aggr_status('ev');
CALL aggr_wait('ev');
SELECT * FROM events_exact('ev');

-- rebuild: the live generation answers reads until the swap
SELECT aggr_rebuild('ev', batch_size => 5000, background => false);
SELECT aggr_job_step('ev');
SELECT * FROM events_exact('ev');
INSERT INTO events VALUES (900001, 'z', 5000, 7);
UPDATE events SET weight = 0 WHERE id % 29 = 0;
SELECT aggr_job_step('ev');
SELECT * FROM events_exact('ev');
SELECT state, split_part(job, ',', 1) AS job, job_rows_done FROM aggr_status('ev');
CALL aggr_wait('ev');
SELECT * FROM events_exact('ev');
SELECT count(DISTINCT t.generation) AS generations FROM aggr_internal.trees t JOIN aggr_internal.aggregates a USING (aggr_id) WHERE a.name = 'ev';

-- TRUNCATE during a job is replayed in order
SELECT aggr_rebuild('ev', batch_size => 5000, background => false);
SELECT aggr_job_step('ev');
TRUNCATE events;
INSERT INTO events VALUES (1, 'a', 1, 1), (2, 'b', 2, 2);
SELECT aggr_job_step('ev');
INSERT INTO events VALUES (3, 'c', 3, 3);
CALL aggr_wait('ev');
SELECT * FROM events_exact('ev');
INSERT INTO events SELECT g, (ARRAY['a','b','c'])[1 + g % 3], (g * 37) % 10000, g % 10 FROM generate_series(10, 20000) g;

-- job errors
CALL aggr_backfill('ev', batch_size => 0);
SELECT aggr_rebuild('ev', background => false);
SELECT sqlstate_of($$SELECT aggr_rebuild('ev', background => false)$$) AS second_rebuild;
SELECT sqlstate_of($$CALL aggr_backfill('ev')$$) AS backfill_while_rebuilding;
SELECT aggr_clear('ev');
SELECT aggr_backfill_cancel('ev');
SELECT aggr_backfill_cancel('ev');
SELECT * FROM events_exact('ev');

-- drift: changes the triggers never saw, found by verify and diff, fixed by repair
SET session_replication_role = replica;     -- triggers fire ALWAYS: still exact
DELETE FROM events WHERE id <= 5;
RESET session_replication_role;
SELECT * FROM events_exact('ev');
ALTER TABLE events DISABLE TRIGGER USER;
DELETE FROM events WHERE id BETWEEN 10 AND 14;
INSERT INTO events VALUES (800001, 'x', 42, 4), (800002, 'x', 43, 4);
UPDATE events SET at = -1 WHERE id IN (20, 21);
UPDATE events SET weight = 99 WHERE id = 30;
UPDATE events SET id = 700000 WHERE id = 40;
ALTER TABLE events ENABLE TRIGGER USER;
SELECT status, missing, extra, changed FROM aggr_verify('ev');
SELECT id, kind, table_key, tree_key, table_sum, tree_sum FROM aggr_diff('ev') ORDER BY kind, id;
SELECT * FROM aggr_repair('ev');
SELECT * FROM events_exact('ev');
SELECT count(*) AS diff_after_repair FROM aggr_diff('ev');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM aggr_repair('ev');
ROLLBACK;

-- namespaced aggregates backfill per namespace
SELECT aggr_create('ev_kind', 'events'::regclass, key => 'at', namespace => 'kind', build => 'now');
SELECT aggr_clear('ev_kind');
CALL aggr_backfill('ev_kind', batch_size => 2500, background => false);
SELECT aggr_job_step('ev_kind');
UPDATE events SET kind = 'c' WHERE id % 5 = 0;
CALL aggr_wait('ev_kind');
SELECT count(*) AS ns_checked, count(*) FILTER (WHERE aggr_count('ev_kind', namespace => k) IS DISTINCT FROM (SELECT count(*) FROM events WHERE kind = k)) AS ns_mismatches
  FROM (VALUES ('a'), ('b'), ('c'), ('d')) v(k);
SELECT status FROM aggr_verify('ev_kind');
SELECT aggr_drop('ev'), aggr_drop('ev_kind');

-- An aggregate whose key no longer compiles (a function folded in when it is
-- compiled now raises): reads and writes fail with that error, but its
-- status, its job's status, the cancel of its job and its drop still work.
CREATE FUNCTION bf_offset() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 0';
CREATE TABLE bf_broken (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO bf_broken SELECT g, g FROM generate_series(1, 100) g;
SELECT aggr_create('bf_broken_v', 'bf_broken'::regclass, key => 'v + bf_offset()', sum_value => 'v', build => 'now');
SELECT aggr_rebuild('bf_broken_v', batch_size => 10, background => false);
SELECT aggr_job_step('bf_broken_v');
CREATE OR REPLACE FUNCTION bf_offset() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RAISE EXCEPTION 'bf_offset is broken';
END $$;
SELECT aggr_count('bf_broken_v');
-- A definition that fails to compile leaves no memory behind (the compiled
-- form is kept only once complete); reads that fail midway inside a
-- subtransaction leave no snapshot or relation behind either (the abort
-- releases them; no leak warning at commit), and the reads after them answer.
SELECT aggr_create('bf_ok_v', 'bf_broken'::regclass, key => 'v', build => 'now');
CREATE TEMP TABLE bf_contexts AS SELECT count(*) AS n FROM pg_backend_memory_contexts WHERE name = 'aggr_ext aggregate';
DO $$
DECLARE
  failed int := 0;
BEGIN
  FOR i IN 1 .. 5 LOOP
    BEGIN
      PERFORM aggr_count('bf_broken_v');
    EXCEPTION WHEN raise_exception THEN failed := failed + 1;
    END;
    BEGIN
      PERFORM * FROM aggr_at('bf_ok_v', 1000);
    EXCEPTION WHEN invalid_parameter_value THEN failed := failed + 1;
    END;
    IF aggr_count('bf_ok_v') IS DISTINCT FROM (SELECT count(*) FROM bf_broken) THEN
      RAISE EXCEPTION 'wrong count after a failed read';
    END IF;
  END LOOP;
  IF failed <> 10 THEN
    RAISE EXCEPTION 'expected 10 failed reads, not %', failed;
  END IF;
END $$;
SELECT count(*) - (SELECT n FROM bf_contexts) AS contexts_left_by_failed_compiles
  FROM pg_backend_memory_contexts WHERE name = 'aggr_ext aggregate';
SELECT aggr_drop('bf_ok_v');
SELECT name, state, entries, total_sum = (SELECT sum(v) FROM bf_broken) AS sum_ok, job FROM aggr_status('bf_broken_v');
SELECT phase, rows_done FROM aggr_job_status('bf_broken_v');
SELECT aggr_backfill_cancel('bf_broken_v');
SELECT count(*) AS jobs_left FROM aggr_internal.jobs j JOIN aggr_internal.aggregates a USING (aggr_id) WHERE a.name = 'bf_broken_v';
SELECT aggr_drop('bf_broken_v');
DROP TABLE bf_broken;
DROP FUNCTION bf_offset();
SELECT (SELECT count(*) FROM aggr_internal.trees) AS trees, (SELECT count(*) FROM aggr_internal.jobs) AS jobs,
       (SELECT count(*) FROM aggr_internal.log) AS log;
DROP FUNCTION events_exact(text);
DROP FUNCTION sqlstate_of(text);
DROP TABLE events;
