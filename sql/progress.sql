-- aggr_progress: one row per running backfill or rebuild. A job stepped by
-- hand shows its phase and counts at every step, against plain SQL over the
-- table (rows_done of the scan is the rows read so far in key order); the
-- view shows a role only the jobs of aggregates it may read; pid is the live
-- background worker's.
SET client_min_messages = warning;
CREATE TABLE prog (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO prog SELECT g, g % 100 FROM generate_series(1, 2500) g;
ANALYZE prog;  -- rows_total is the planner's estimate: 2500
SELECT aggr_create('prog_v', 'prog'::regclass, key => 'v', build => 'now');
SELECT count(*) AS jobs_before FROM aggr_progress WHERE name = 'prog_v';
-- What the view says of prog_v, beside aggr_job_status and the plain SQL
-- count of rows the scan has passed (its snapshot holds ids 1..2500).
CREATE FUNCTION prog_row(expected_done bigint)
  RETURNS TABLE (kind text, phase text, rows_done int8, rows_total int8, scan_percent numeric, batch_size int4,
                 background bool, cancelled bool, error text, pid int, times_ok bool, matches_status bool, done_ok bool)
  LANGUAGE sql AS $$
  SELECT p.kind, p.phase, p.rows_done, p.rows_total, p.scan_percent, p.batch_size, p.background, p.cancelled,
         p.error, p.pid, p.started <= p.updated,
         (p.phase, p.cancelled, p.rows_done, p.rows_total) IS NOT DISTINCT FROM
           (s.phase, s.cancelled, s.rows_done, s.rows_total),
         p.rows_done = expected_done
    FROM aggr_progress p, aggr_job_status('prog_v') s
   WHERE p.name = 'prog_v' AND p.source = 'prog'::regclass
$$;

-- A backfill, stepped, cancelled and resumed.
CALL aggr_backfill('prog_v', batch_size => 1000, background => false);
SELECT * FROM prog_row(0);
SELECT aggr_job_step('prog_v');
SELECT * FROM prog_row((SELECT count(*) FROM (SELECT FROM prog WHERE id <= 2500 ORDER BY v, id LIMIT 1000) s));
SELECT aggr_backfill_cancel('prog_v');
SELECT * FROM prog_row(1000);
CALL aggr_backfill('prog_v', batch_size => 2000, background => false);
SELECT * FROM prog_row(1000);
SELECT aggr_job_step('prog_v');  -- the rest of the scan: it ends, and the estimate becomes the count
SELECT * FROM prog_row((SELECT count(*) FROM prog));
SELECT aggr_job_step('prog_v');  -- replay, swap
SELECT * FROM prog_row((SELECT count(*) FROM prog));
SELECT aggr_job_step('prog_v');  -- cleanup: the job is gone
SELECT count(*) AS jobs_after FROM aggr_progress WHERE name = 'prog_v';

-- A rebuild, with writes during its scan (logged, replayed, not scanned).
SELECT aggr_rebuild('prog_v', batch_size => 1000, background => false);
SELECT aggr_job_step('prog_v');
INSERT INTO prog SELECT g, g % 100 FROM generate_series(2501, 2600) g;
SELECT * FROM prog_row(1000);
SELECT aggr_job_step('prog_v');
SELECT * FROM prog_row(2000);
SELECT aggr_job_step('prog_v');
SELECT * FROM prog_row((SELECT count(*) FROM prog WHERE id <= 2500));
SELECT aggr_job_step('prog_v');
SELECT * FROM prog_row((SELECT count(*) FROM prog WHERE id <= 2500));
SELECT aggr_job_step('prog_v');
SELECT count(*) AS jobs_after FROM aggr_progress WHERE name = 'prog_v';
SELECT aggr_count('prog_v') = (SELECT count(*) FROM prog) AS exact;

-- Per role: exactly as aggr_aggregates.
SELECT aggr_rebuild('prog_v', batch_size => 1000, background => false);
CREATE ROLE prog_reader;
SET ROLE prog_reader;
SELECT count(*) AS reader_sees_job, (SELECT count(*) FROM aggr_aggregates WHERE name = 'prog_v') AS reader_sees_aggregate
  FROM aggr_progress WHERE name = 'prog_v';
RESET ROLE;
GRANT SELECT ON prog TO prog_reader;
SET ROLE prog_reader;
SELECT count(*) AS reader_sees_job, (SELECT count(*) FROM aggr_aggregates WHERE name = 'prog_v') AS reader_sees_aggregate
  FROM aggr_progress WHERE name = 'prog_v';
RESET ROLE;
SELECT aggr_backfill_cancel('prog_v');  -- a cancelled rebuild is discarded
SELECT count(*) AS jobs_after_cancel FROM aggr_progress WHERE name = 'prog_v';

-- A background job: pid is its worker's, the one pg_stat_activity names.
LOAD 'aggr_ext';  -- its settings, for ALTER SYSTEM
ALTER SYSTEM SET aggr_ext.job_delay = '1s';  -- read by a job worker when it starts: many slow steps
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SELECT aggr_rebuild('prog_v', batch_size => 100, background => true);
DO $$
BEGIN
  FOR i IN 1 .. 600 LOOP
    EXIT WHEN (SELECT pid FROM aggr_progress WHERE name = 'prog_v') IS NOT NULL;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT p.background, a.backend_type, a.application_name = 'aggr_ext job ' || i.aggr_id AS names_aggregate
  FROM aggr_progress p
  JOIN aggr_internal.aggregates i USING (name)
  LEFT JOIN pg_stat_activity a ON a.pid = p.pid
 WHERE p.name = 'prog_v';
SET ROLE prog_reader;  -- pg_stat_activity hides the worker from it; the view does not
SELECT pid IS NOT NULL AS reader_sees_pid FROM aggr_progress WHERE name = 'prog_v';
RESET ROLE;
SELECT aggr_backfill_cancel('prog_v');
ALTER SYSTEM RESET aggr_ext.job_delay;
SELECT pg_reload_conf();
DO $$
BEGIN
  FOR i IN 1 .. 600 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'aggr_ext job' AND datname = current_database());
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT count(*) AS jobs_left FROM aggr_progress;
SELECT aggr_drop('prog_v');
DROP TABLE prog;
DROP FUNCTION prog_row(bigint);
DROP ROLE prog_reader;
