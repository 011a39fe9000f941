-- DROP TABLE, DROP SCHEMA ... CASCADE and DROP OWNED remove the dropped
-- tables' aggregates (trees, pending deltas, jobs and their logs) the way
-- they remove indexes; a rolled-back DROP keeps them; other aggregates are
-- untouched. Run as a non-superuser owner.
SET client_min_messages = warning;
CREATE ROLE dt_owner;
CREATE SCHEMA dt_app AUTHORIZATION dt_owner;
GRANT CREATE ON SCHEMA public TO dt_owner;
CREATE FUNCTION dt_leftovers() RETURNS TABLE (aggregates bigint, trees bigint, nodes bigint, deltas bigint, log bigint, jobs bigint)
LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM aggr_internal.aggregates WHERE name LIKE 'dt\_%'),
         (SELECT count(*) FROM aggr_internal.trees t WHERE NOT EXISTS (SELECT FROM aggr_internal.aggregates a WHERE a.aggr_id = t.aggr_id)),
         (SELECT count(*) FROM aggr_internal.nodes n WHERE NOT EXISTS (SELECT FROM aggr_internal.trees t WHERE t.tree_id = n.tree_id)),
         (SELECT count(*) FROM aggr_internal.deltas d WHERE NOT EXISTS (SELECT FROM aggr_internal.aggregates a WHERE a.aggr_id = d.aggr_id)),
         (SELECT count(*) FROM aggr_internal.log l WHERE NOT EXISTS (SELECT FROM aggr_internal.aggregates a WHERE a.aggr_id = l.aggr_id)),
         (SELECT count(*) FROM aggr_internal.jobs j WHERE NOT EXISTS (SELECT FROM aggr_internal.aggregates a WHERE a.aggr_id = j.aggr_id))
$$;
CREATE FUNCTION dt_names() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT name FROM aggr_internal.aggregates WHERE name LIKE 'dt\_%' ORDER BY name
$$;
-- a table that stays, with its own aggregate
CREATE TABLE dt_keep (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO dt_keep SELECT g, g FROM generate_series(1, 100) g;
SELECT aggr_create('keep_v', 'dt_keep'::regclass, key => 'v', build => 'now');

SET ROLE dt_owner;
CREATE TABLE public.dt_scores (id int PRIMARY KEY, team int NOT NULL, v int NOT NULL);
INSERT INTO public.dt_scores SELECT g, g % 3, g % 50 FROM generate_series(1, 2000) g;
SELECT aggr_create('dt_direct', 'public.dt_scores'::regclass, key => 'v', build => 'now');
SELECT aggr_create('dt_deferred', 'public.dt_scores'::regclass, key => 'v', namespace => 'team', build => 'now');
SELECT aggr_set_write_mode('dt_deferred', 'deferred');
UPDATE public.dt_scores SET v = v + 1 WHERE id % 4 = 0;         -- pending deltas (merged or not)
SELECT aggr_rebuild('dt_direct', batch_size => 100, background => false);  -- a job with a log
SELECT aggr_job_step('dt_direct');
UPDATE public.dt_scores SET v = v + 1 WHERE id % 5 = 0;         -- logged for the job

-- a rolled-back DROP keeps everything
BEGIN;
DROP TABLE public.dt_scores;
ROLLBACK;
SELECT * FROM dt_names();
SELECT aggr_count('dt_direct') = (SELECT count(*) FROM public.dt_scores) AS still_exact;

-- changes buffered in the dropping transaction go nowhere
BEGIN;
INSERT INTO public.dt_scores VALUES (5000, 1, 1);
DROP TABLE public.dt_scores;
COMMIT;
SELECT * FROM dt_names();
-- the name is free again
CREATE TABLE public.dt_scores (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('dt_direct', 'public.dt_scores'::regclass, key => 'v');
DROP TABLE public.dt_scores;

-- DROP SCHEMA ... CASCADE
CREATE TABLE dt_app.t1 (id int PRIMARY KEY, v int NOT NULL);
CREATE TABLE dt_app.t2 (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO dt_app.t1 SELECT g, g FROM generate_series(1, 50) g;
SELECT aggr_create('dt_t1', 'dt_app.t1'::regclass, key => 'v'), aggr_create('dt_t2', 'dt_app.t2'::regclass, key => 'v');
RESET ROLE;
DROP SCHEMA dt_app CASCADE;
SELECT * FROM dt_names();

-- DROP OWNED
SET ROLE dt_owner;
CREATE TABLE public.dt_owned (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('dt_owned', 'public.dt_owned'::regclass, key => 'v');
RESET ROLE;
DROP OWNED BY dt_owner;
SELECT * FROM dt_names();

-- An aggregate whose table went while the event trigger was off: nobody
-- owns it any more, so only the database owner (or a superuser) may drop it;
-- the table's former owner and other roles get 42501.
ALTER EVENT TRIGGER aggr_ext_sql_drop DISABLE;
CREATE ROLE dt_stranger;
CREATE ROLE dt_dbowner;
GRANT CREATE ON SCHEMA public TO dt_owner;  -- DROP OWNED above revoked it
SET ROLE dt_owner;
CREATE TABLE public.dt_orphan (id int PRIMARY KEY, v int NOT NULL);
SELECT aggr_create('dt_orphan_a', 'public.dt_orphan'::regclass, key => 'v'),
       aggr_create('dt_orphan_b', 'public.dt_orphan'::regclass, key => 'v');
DROP TABLE public.dt_orphan;
RESET ROLE;
ALTER EVENT TRIGGER aggr_ext_sql_drop ENABLE ALWAYS;
SELECT * FROM dt_names();
SET ROLE dt_stranger;
SELECT aggr_drop('dt_orphan_a');
RESET ROLE;
SET ROLE dt_owner;
SELECT aggr_drop('dt_orphan_a');
RESET ROLE;
SELECT * FROM dt_names();
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO dt_dbowner', current_database()); END $$;
SET ROLE dt_dbowner;
SELECT aggr_drop('dt_orphan_a');
RESET ROLE;
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO %I', current_database(), current_user); END $$;
SELECT aggr_drop('dt_orphan_b');  -- a superuser
SELECT * FROM dt_names();
DROP ROLE dt_stranger, dt_dbowner;

-- nothing left behind; the other table's aggregate is untouched
SELECT * FROM dt_leftovers();
SELECT aggr_count('keep_v') = (SELECT count(*) FROM dt_keep) AS keep_exact, (SELECT status FROM aggr_verify('keep_v')) AS keep_verify;
SELECT aggr_drop('keep_v');
DROP TABLE dt_keep;
DROP FUNCTION dt_leftovers(), dt_names();
DROP SCHEMA IF EXISTS dt_app;
REVOKE CREATE ON SCHEMA public FROM dt_owner;
DROP ROLE dt_owner;
