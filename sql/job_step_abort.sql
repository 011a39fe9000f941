-- A job step that aborts after fetching its batch from the held scan cursor
-- (here: a key too large, written while the triggers were disabled) must not
-- leave that cursor past the rows it lost: the next step reopens it and
-- resumes after the committed progress. Before the fix the rebuild ended
-- "ready" without the failed batch's rows.
SET client_min_messages = warning;
CREATE TABLE jsa (id int8 PRIMARY KEY, k text);
INSERT INTO jsa SELECT g, lpad(g::text, 5, '0') FROM generate_series(1, 120) g;
SELECT aggr_create('jsa_k', 'jsa'::regclass, key => 'k', build => 'now');
ALTER TABLE jsa DISABLE TRIGGER USER;
UPDATE jsa SET k = '00060' || repeat('x', 400) WHERE id = 60;
ALTER TABLE jsa ENABLE TRIGGER USER;
SELECT aggr_rebuild('jsa_k', batch_size => 50, background => false);
SELECT aggr_job_step('jsa_k');  -- entries 1..50 in key order
SELECT aggr_job_step('jsa_k');  -- fetches 51..100, refuses the key of id 60
UPDATE jsa SET k = '00060' WHERE id = 60;
SELECT aggr_job_step('jsa_k') FROM generate_series(1, 6);
SELECT state FROM aggr_status('jsa_k');
-- the oracle: the table itself
SELECT status, table_count, aggregate_count, missing, extra FROM aggr_verify('jsa_k');
SELECT (SELECT count(*) FROM jsa WHERE k <= '00100') AS table_upto_100,
       aggr_count('jsa_k', upper => '00100'::text) AS aggregate_upto_100;
SELECT aggr_drop('jsa_k');
DROP TABLE jsa;
