-- Upgrading in place: aggregates created under version 1.0 (direct,
-- deferred with pending deltas, namespaced, one with a job in progress) keep
-- working across ALTER EXTENSION aggr_ext UPDATE and verify exact after it;
-- what 1.1 adds works on them; and the updated extension has exactly the
-- objects of a fresh 1.1 install. In databases of its own.
SET client_min_messages = warning;
CREATE DATABASE aggr_upgrade_old;
CREATE DATABASE aggr_upgrade_new;
\c aggr_upgrade_new
CREATE EXTENSION aggr_ext;
CREATE TEMP TABLE fresh_objects AS
  SELECT pg_describe_object(classid, objid, 0) AS object FROM pg_depend
   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'aggr_ext');
CREATE TEMP TABLE fresh_functions AS
  SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result,
         p.proconfig, md5(p.prosrc) AS src
    FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e';
CREATE TEMP TABLE fresh_views AS SELECT v, pg_get_viewdef(v::regclass) || coalesce((SELECT reloptions::text FROM pg_class WHERE oid = v::regclass), '') AS def FROM unnest(ARRAY['aggr_aggregates', 'aggr_progress']) v;
\copy fresh_views TO '/tmp/aggr_upgrade_fresh_views.txt'
\copy fresh_objects TO '/tmp/aggr_upgrade_fresh_objects.txt'
\copy fresh_functions TO '/tmp/aggr_upgrade_fresh_functions.txt'

\c aggr_upgrade_old
SET client_min_messages = warning;
CREATE EXTENSION aggr_ext VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'aggr_ext';
CREATE TABLE up (id int PRIMARY KEY, team int NOT NULL, score int, pts bigint NOT NULL);
INSERT INTO up SELECT g, g % 5, CASE WHEN g % 61 = 0 THEN NULL ELSE (g * 7919) % 3000 END, g % 40 FROM generate_series(1, 20000) g;
SELECT aggr_create('up_lb', 'up'::regclass, key => 'score DESC', sum_value => 'pts', build => 'now');
SELECT aggr_create('up_team', 'up'::regclass, key => 'score', sum_value => 'pts', namespace => 'team', build => 'now');
SELECT aggr_create('up_deferred', 'up'::regclass, key => 'score', sum_value => 'pts', build => 'now');
SELECT aggr_set_write_mode('up_deferred', 'deferred');
UPDATE up SET score = (score + 17) % 3000 WHERE id % 7 = 0;
DELETE FROM up WHERE id % 11 = 0;
-- a rebuild stepped by hand, left in progress across the update
SELECT aggr_rebuild('up_lb', batch_size => 5000, background => false);
SELECT aggr_job_step('up_lb');
INSERT INTO up SELECT g, g % 5, g % 3000, 1 FROM generate_series(30001, 30500) g;
SELECT (SELECT count(*) FROM up) AS rows, aggr_count('up_lb') AS lb, aggr_count('up_deferred') AS deferred;

-- a partitioned table needs the updated catalog: refused, saying so
CREATE TABLE up_parted (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
CREATE TABLE up_parted_1 PARTITION OF up_parted FOR VALUES FROM (0) TO (100);
INSERT INTO up_parted SELECT g, g % 7 FROM generate_series(0, 99) g;
SELECT aggr_create('up_parted_v', 'up_parted'::regclass, key => 'v');

SELECT reloptions AS nodes_options_1_0 FROM pg_class WHERE oid = 'aggr_internal.nodes'::regclass;
ALTER EXTENSION aggr_ext UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'aggr_ext';
-- node rows leave half of each page for their next versions, as in a fresh 1.1
SELECT reloptions AS nodes_options_1_1 FROM pg_class WHERE oid = 'aggr_internal.nodes'::regclass;
-- ... and works once updated, partition DDL included
SELECT aggr_create('up_parted_v', 'up_parted'::regclass, key => 'v');
CREATE TABLE up_parted_2 PARTITION OF up_parted FOR VALUES FROM (100) TO (200);
INSERT INTO up_parted SELECT g, g % 7 FROM generate_series(100, 149) g;
SELECT aggr_count('up_parted_v') = (SELECT count(*) FROM up_parted) AS parted_count,
       aggr_rank('up_parted_v', 3) = (SELECT count(*) + 1 FROM up_parted WHERE v < 3) AS parted_rank;

-- the rebuild finishes; writes go on; everything equals plain SQL
CALL aggr_wait('up_lb');
UPDATE up SET pts = pts + 1 WHERE id % 3 = 0;
CREATE FUNCTION up_check() RETURNS TABLE (what text, ok bool) LANGUAGE sql AS $$
  SELECT 'lb count', aggr_count('up_lb') = (SELECT count(*) FROM up)
  UNION ALL SELECT 'lb sum', aggr_sum('up_lb') = (SELECT sum(pts) FROM up)
  UNION ALL SELECT 'lb order', (SELECT array_agg(id::int ORDER BY position) FROM aggr_page('up_lb', 0, 100000::bigint)) =
                               (SELECT array_agg(id ORDER BY score DESC NULLS FIRST, id) FROM up)
  UNION ALL SELECT 'deferred rank', bool_and(aggr_rank('up_deferred', s) = (SELECT count(*) + 1 FROM up WHERE score < s))
                                    FROM generate_series(0, 3000, 300) s
  UNION ALL SELECT 'team counts', bool_and(aggr_count('up_team', namespace => t) = (SELECT count(*) FROM up WHERE team = t))
                                  FROM generate_series(0, 5) t
  UNION ALL SELECT 'verify', (SELECT bool_and(v.status = 'ok') FROM unnest(ARRAY['up_lb', 'up_team', 'up_deferred']) n,
                                LATERAL aggr_verify(n) v)
$$;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing
  FROM up_check();
-- what 1.1 adds works on aggregates made under 1.0
SELECT background FROM aggr_job_status('up_lb');
SELECT count(*) AS page_rows_with_bigint_limit FROM aggr_page_rows('up_team', 0, 10::bigint, NULL::up, namespace => 1);
CREATE TABLE up_gone (id int PRIMARY KEY, v int);
SELECT aggr_create('up_gone_v', 'up_gone'::regclass, key => 'v');
DROP TABLE up_gone;
SELECT count(*) AS gone_left FROM aggr_internal.aggregates WHERE name = 'up_gone_v';

-- the same objects as a fresh 1.1 install
CREATE TEMP TABLE fresh_objects (object text);
CREATE TEMP TABLE fresh_functions (proname name, args text, result text, proconfig text[], src text);
\copy fresh_objects FROM '/tmp/aggr_upgrade_fresh_objects.txt'
\copy fresh_functions FROM '/tmp/aggr_upgrade_fresh_functions.txt'
CREATE TEMP TABLE updated_objects AS
  SELECT pg_describe_object(classid, objid, 0) AS object FROM pg_depend
   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'aggr_ext');
CREATE TEMP TABLE updated_functions AS
  SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result,
         p.proconfig, md5(p.prosrc) AS src
    FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e';
SELECT (SELECT count(*) FROM fresh_objects) > 20 AS objects_listed,
       (SELECT count(*) FROM ((TABLE fresh_objects EXCEPT TABLE updated_objects) UNION ALL
                              (TABLE updated_objects EXCEPT TABLE fresh_objects)) d) AS objects_differing,
       (SELECT count(*) FROM ((TABLE fresh_functions EXCEPT TABLE updated_functions) UNION ALL
                              (TABLE updated_functions EXCEPT TABLE fresh_functions)) d) AS functions_differing;
-- what differs, if anything
(TABLE fresh_objects EXCEPT TABLE updated_objects) UNION ALL (TABLE updated_objects EXCEPT TABLE fresh_objects);
SELECT * FROM ((TABLE fresh_functions EXCEPT TABLE updated_functions) UNION ALL
               (TABLE updated_functions EXCEPT TABLE fresh_functions)) d ORDER BY 1, 2;
-- the view's definition too
CREATE TEMP TABLE fresh_views (v text, def text);
\copy fresh_views FROM '/tmp/aggr_upgrade_fresh_views.txt'
SELECT v, def IS NOT DISTINCT FROM pg_get_viewdef(v::regclass) || coalesce((SELECT reloptions::text FROM pg_class WHERE oid = v::regclass), '') AS view_same FROM fresh_views ORDER BY v;

\c contrib_regression
DROP DATABASE aggr_upgrade_old;
DROP DATABASE aggr_upgrade_new;
