-- At most aggr_ext.max_job_workers background job workers run at once: a job
-- beyond the bound waits (NOTICE), and a worker that finishes its job takes
-- the waiting one. Both jobs end exact.
SET client_min_messages = notice;
LOAD 'aggr_ext';
ALTER SYSTEM SET aggr_ext.max_job_workers = 1;
ALTER SYSTEM SET aggr_ext.job_delay = 50;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);  -- the reload reaches this session at its next command; checked just below
SHOW aggr_ext.max_job_workers;
CREATE TABLE jw (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL);
INSERT INTO jw SELECT g, (g * 37) % 1000, (g * 91) % 777 FROM generate_series(1, 20000) g;
SELECT aggr_create('jw_a', 'jw'::regclass, key => 'a', build => 'now');
SELECT aggr_create('jw_b', 'jw'::regclass, key => 'b', build => 'now');
SELECT aggr_rebuild('jw_a', batch_size => 500);
-- its worker runs (at most 30 s)
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    EXIT WHEN EXISTS (SELECT FROM aggr_progress WHERE name = 'jw_a' AND pid IS NOT NULL);
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT aggr_rebuild('jw_b', batch_size => 500);   -- waits for the first worker
-- while they run, never more than one job worker (sampled)
DO $$
DECLARE
  most int := 0;
  seen int := 0;
BEGIN
  FOR i IN 1..40 LOOP
    most := greatest(most, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'aggr_ext job')::int);
    seen := seen + (SELECT count(*) FROM aggr_progress WHERE name IN ('jw_a', 'jw_b'))::int;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RAISE NOTICE 'at most % job worker(s) at once; jobs seen running: %', most, seen > 0;
END $$;
UPDATE jw SET a = a + 1 WHERE id % 10 = 0;
SET client_min_messages = warning;  -- aggr_wait's progress notices depend on timing
CALL aggr_wait('jw_a');
CALL aggr_wait('jw_b');
SELECT (SELECT status FROM aggr_verify('jw_a')) AS a_verify, (SELECT status FROM aggr_verify('jw_b')) AS b_verify,
       aggr_count('jw_a') = (SELECT count(*) FROM jw) AS a_count, (SELECT count(*) FROM aggr_progress) AS jobs_left;
ALTER SYSTEM RESET aggr_ext.max_job_workers;
ALTER SYSTEM RESET aggr_ext.job_delay;
SELECT pg_reload_conf();
SELECT aggr_drop('jw_a'), aggr_drop('jw_b');
DROP TABLE jw;
