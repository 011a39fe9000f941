-- Attacks on an aggregate by roles that do not own it. Each is refused or
-- harmless, and the victim's aggregate is checked after each against plain
-- SQL over its table (aggr_verify ok and aggr_count = count(*)).
-- Roles: a victim owner, a reader with SELECT, an attacker with default
-- privileges only (TEMP), a role owning its own schema.
SET client_min_messages = warning;
\set VERBOSITY default
CREATE ROLE regress_aggr_victim;
CREATE ROLE regress_aggr_reader;
CREATE ROLE regress_aggr_attacker;
CREATE ROLE regress_aggr_schema_owner;
CREATE FUNCTION public.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$;
CREATE SCHEMA victim AUTHORIZATION regress_aggr_victim;
CREATE SCHEMA plant AUTHORIZATION regress_aggr_schema_owner;
GRANT USAGE ON SCHEMA victim TO PUBLIC;

SET ROLE regress_aggr_victim;
CREATE TABLE victim.board (id bigint PRIMARY KEY, score int NOT NULL, secret text);
INSERT INTO victim.board SELECT g, g % 100, 'row ' || g FROM generate_series(1, 1000) g;
SELECT aggr_create('victim_lb', 'victim.board', key => 'score', sum_value => 'score');
GRANT SELECT ON victim.board TO regress_aggr_reader;
RESET ROLE;

-- One row, true when the victim's aggregate is exact (no row at all is false).
\set victim_intact 'SELECT count(*) = 1 AND coalesce(bool_and(ok), false) AS victim_intact FROM (SELECT v.status = ''ok'' AND aggr_count(''victim_lb'') IS NOT DISTINCT FROM (SELECT count(*) FROM victim.board) AND aggr_sum(''victim_lb'') IS NOT DISTINCT FROM (SELECT sum(score) FROM victim.board) AS ok FROM aggr_verify(''victim_lb'') v) s'
:victim_intact;
SELECT aggr_id AS victim_id, 'aggr_ext_' || aggr_id AS row_trig, 'aggr_ext_' || aggr_id || '_truncate' AS trunc_trig
  FROM aggr_internal.aggregates WHERE name = 'victim_lb' \gset

-- 1. The trigger functions attached by a stranger to its own table, naming
-- the victim's aggregate id.
SET ROLE regress_aggr_attacker;
CREATE TEMP TABLE forged (id bigint PRIMARY KEY, score int NOT NULL, secret text);
INSERT INTO forged SELECT g, g % 100, 'x' FROM generate_series(1, 10) g;
-- a row trigger with the real trigger's name: would forge and delete entries
CREATE TRIGGER :"row_trig" AFTER INSERT OR UPDATE OR DELETE ON forged
  FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
INSERT INTO forged VALUES (5000, 7, 'forged entry');
DELETE FROM forged WHERE id <= 10;
UPDATE forged SET score = 99 WHERE id = 1;
DROP TRIGGER :"row_trig" ON forged;
-- the TRUNCATE trigger would empty the victim's trees
CREATE TRIGGER :"trunc_trig" AFTER TRUNCATE ON forged
  FOR EACH STATEMENT EXECUTE FUNCTION aggr_ext_truncate_trigger(:'victim_id');
TRUNCATE forged;
DROP TRIGGER :"trunc_trig" ON forged;
-- the TRUNCATE function as a row trigger
CREATE TRIGGER t_as_row AFTER DELETE ON forged
  FOR EACH ROW EXECUTE FUNCTION aggr_ext_truncate_trigger(:'victim_id');
INSERT INTO forged VALUES (101, 1, 'x');
DELETE FROM forged;
DROP TRIGGER t_as_row ON forged;
RESET ROLE;
:victim_intact;
SET ROLE regress_aggr_attacker;
-- a BEFORE row trigger, a statement-level row trigger, a table of another shape
CREATE TRIGGER t_before BEFORE INSERT ON forged
  FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
INSERT INTO forged VALUES (102, 2, 'x');
DROP TRIGGER t_before ON forged;
CREATE TRIGGER t_stmt AFTER INSERT ON forged
  FOR EACH STATEMENT EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
INSERT INTO forged VALUES (103, 3, 'x');
DROP TRIGGER t_stmt ON forged;
CREATE TEMP TABLE odd_shape (a int, b int, c int, d int);
CREATE TRIGGER :"row_trig" AFTER INSERT OR UPDATE OR DELETE ON odd_shape
  FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
INSERT INTO odd_shape VALUES (1, 2, 3, 4);
-- not a number, no argument
CREATE TRIGGER t_junk AFTER INSERT OR UPDATE OR DELETE ON forged FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger('7junk');
INSERT INTO forged VALUES (104, 4, 'x');
DROP TRIGGER t_junk ON forged;
CREATE TRIGGER t_noarg AFTER INSERT OR UPDATE OR DELETE ON forged FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger();
INSERT INTO forged VALUES (105, 5, 'x');
DROP TRIGGER t_noarg ON forged;
-- called directly
SELECT aggr_ext_row_trigger();
RESET ROLE;
:victim_intact;
-- their SQLSTATEs: 42501 for another table, 39P01 for a trigger defined otherwise
SET ROLE regress_aggr_attacker;
CREATE TRIGGER :"row_trig" AFTER INSERT OR UPDATE OR DELETE ON forged
  FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
CREATE TRIGGER :"trunc_trig" AFTER TRUNCATE ON forged
  FOR EACH STATEMENT EXECUTE FUNCTION aggr_ext_truncate_trigger(:'victim_id');
CREATE TRIGGER t_stmt2 AFTER UPDATE ON forged
  FOR EACH STATEMENT EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
SELECT q, public.sqlstate_of(q) FROM (VALUES
  ($q$INSERT INTO forged VALUES (5000, 7, 'forged')$q$),
  ($q$TRUNCATE forged$q$),
  ($q$UPDATE forged SET score = 1 WHERE false$q$),
  ($q$INSERT INTO odd_shape VALUES (1, 2, 3, 4)$q$)) t(q);
RESET ROLE;
:victim_intact;
-- the same from a role's own schema, with a table of its own, on which it
-- also has an aggregate of its own: that one keeps working
SET ROLE regress_aggr_schema_owner;
CREATE TABLE plant.copy (id bigint PRIMARY KEY, score int NOT NULL, secret text);
INSERT INTO plant.copy SELECT g, g % 100, 'x' FROM generate_series(1, 20) g;
SELECT aggr_create('plant_own', 'plant.copy', key => 'score');
CREATE TRIGGER :"row_trig" AFTER INSERT OR UPDATE OR DELETE ON plant.copy
  FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
CREATE TRIGGER :"trunc_trig" AFTER TRUNCATE ON plant.copy
  FOR EACH STATEMENT EXECUTE FUNCTION aggr_ext_truncate_trigger(:'victim_id');
DELETE FROM plant.copy WHERE id <= 5;
TRUNCATE plant.copy;
DROP TRIGGER :"row_trig" ON plant.copy;
DROP TRIGGER :"trunc_trig" ON plant.copy;
DELETE FROM plant.copy WHERE id <= 5;
SELECT aggr_count('plant_own') IS NOT DISTINCT FROM (SELECT count(*) FROM plant.copy) AS own_count_ok;
SELECT name FROM aggr_aggregates ORDER BY name;
RESET ROLE;
:victim_intact;
-- the owner's own extra trigger on the source table (not the one aggr_create
-- made): it would count every row twice
SET ROLE regress_aggr_victim;
CREATE TRIGGER second_copy AFTER INSERT OR UPDATE OR DELETE ON victim.board
  FOR EACH ROW EXECUTE FUNCTION aggr_ext_row_trigger(:'victim_id');
INSERT INTO victim.board VALUES (1001, 1, 'new');
DROP TRIGGER second_copy ON victim.board;
INSERT INTO victim.board VALUES (1001, 1, 'new');
RESET ROLE;
:victim_intact;

-- 2. Reads: SELECT on the table (or on every column revealed), and row-level
-- security as it is at read time.
SET ROLE regress_aggr_attacker;
SELECT aggr_count('victim_lb');
SELECT state FROM aggr_status('victim_lb');
SELECT phase FROM aggr_job_status('victim_lb');
SELECT status FROM aggr_verify('victim_lb');
SELECT count(*) FROM aggr_diff('victim_lb');
SELECT name FROM aggr_aggregates ORDER BY name;
RESET ROLE;
SET ROLE regress_aggr_reader;
SELECT name FROM aggr_aggregates ORDER BY name;
SELECT aggr_count('victim_lb') IS NOT DISTINCT FROM (SELECT count(*) FROM victim.board) AS reader_count_ok;
RESET ROLE;
SET ROLE regress_aggr_victim;
ALTER TABLE victim.board ENABLE ROW LEVEL SECURITY;
CREATE POLICY low_only ON victim.board FOR SELECT TO regress_aggr_reader USING (score < 10);
RESET ROLE;
SET ROLE regress_aggr_reader;
SELECT count(*) AS reader_sees FROM victim.board;
SELECT aggr_count('victim_lb');
SELECT aggr_sum('victim_lb');
SELECT aggr_rank('victim_lb', 50);
SELECT * FROM aggr_at('victim_lb', 500);
SELECT * FROM aggr_page('victim_lb', 0, 2);
SELECT * FROM aggr_page_rows('victim_lb', 900, 2, NULL::victim.board);
SELECT aggr_min('victim_lb');
SELECT aggr_max('victim_lb');
SELECT entries FROM aggr_status('victim_lb');
SELECT phase FROM aggr_job_status('victim_lb');
SELECT q, public.sqlstate_of(q) FROM (VALUES
  ($q$SELECT aggr_count('victim_lb')$q$),
  ($q$SELECT * FROM aggr_status('victim_lb')$q$)) t(q);
RESET ROLE;
-- the owner is not subject to its policies, unless FORCE ROW LEVEL SECURITY
SET ROLE regress_aggr_victim;
SELECT aggr_count('victim_lb') IS NOT DISTINCT FROM (SELECT count(*) FROM victim.board) AS owner_count_ok;
ALTER TABLE victim.board FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_low ON victim.board FOR SELECT TO regress_aggr_victim USING (score < 5);
SELECT aggr_count('victim_lb');
SELECT status FROM aggr_verify('victim_lb');
SELECT count(*) FROM aggr_diff('victim_lb');
DROP POLICY owner_low ON victim.board;
ALTER TABLE victim.board NO FORCE ROW LEVEL SECURITY;
ALTER TABLE victim.board DISABLE ROW LEVEL SECURITY;
RESET ROLE;
SET ROLE regress_aggr_reader;
SELECT aggr_count('victim_lb') IS NOT DISTINCT FROM (SELECT count(*) FROM victim.board) AS reader_count_ok;
RESET ROLE;
-- only some columns: the score (key, sum) is not among them
SET ROLE regress_aggr_victim;
REVOKE SELECT ON victim.board FROM regress_aggr_reader;
GRANT SELECT (id, secret) ON victim.board TO regress_aggr_reader;
RESET ROLE;
SET ROLE regress_aggr_reader;
SELECT aggr_count('victim_lb');
SELECT state FROM aggr_status('victim_lb');
RESET ROLE;
:victim_intact;

-- 3. aggr_create by a non-owner fails (without waiting: specs/security_lock.spec).
SET ROLE regress_aggr_attacker;
SELECT aggr_create('stolen', 'victim.board', key => 'score');
RESET ROLE;

-- 4. Hints that suggest SQL quote the aggregate's name.
SET ROLE regress_aggr_victim;
SELECT aggr_create($n$x'); DROP TABLE victim.board; --$n$, 'victim.board', key => 'score');
SELECT aggr_clear($n$x'); DROP TABLE victim.board; --$n$);
SELECT aggr_count($n$x'); DROP TABLE victim.board; --$n$);
SELECT * FROM aggr_repair($n$x'); DROP TABLE victim.board; --$n$);
SELECT aggr_create($n$back\slash'$n$, 'victim.board', key => 'score');
SELECT aggr_clear($n$back\slash'$n$);
SELECT aggr_count($n$back\slash'$n$);
SELECT aggr_drop($n$x'); DROP TABLE victim.board; --$n$), aggr_drop($n$back\slash'$n$);
RESET ROLE;
:victim_intact;

-- 5. aggr_wait(NULL) is an error, not "ready"; a non-superuser owner waits
-- for its own job.
SET ROLE regress_aggr_victim;
CALL aggr_wait(NULL);
SELECT aggr_rebuild('victim_lb', background => false);
CALL aggr_wait('victim_lb');
SELECT aggr_clear('victim_lb');
CALL aggr_backfill('victim_lb', wait => true, background => false);
SELECT aggr_clear('victim_lb');
RESET ROLE;
-- with a background worker: the worker connects as the owner, which today
-- must be a LOGIN role (a NOLOGIN owner's worker fails to start, and
-- aggr_wait then waits forever: a jobs/workers bug, reported)
ALTER ROLE regress_aggr_victim LOGIN;
SET ROLE regress_aggr_victim;
CALL aggr_backfill('victim_lb', batch_size => 300, wait => true);
RESET ROLE;
:victim_intact;

-- 5b. The extension in its own schema, a PUBLIC-writable public schema and
-- functions planted there by a stranger: the procedures call their own.
SELECT current_database() AS orig_db \gset
CREATE DATABASE regress_aggr_schema_db;
\c regress_aggr_schema_db
SET client_min_messages = warning;
CREATE SCHEMA aggr_s;
CREATE EXTENSION aggr_ext SCHEMA aggr_s;
GRANT USAGE ON SCHEMA aggr_s TO PUBLIC;
GRANT CREATE ON SCHEMA public TO PUBLIC;
SET ROLE regress_aggr_attacker;
CREATE TABLE public.hijacked (who text, what text);
GRANT INSERT ON public.hijacked TO PUBLIC;
CREATE FUNCTION public.aggr_job_start(name text, kind text, batch_size int4, background bool) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO public.hijacked VALUES (current_user, 'aggr_job_start') $$;
CREATE FUNCTION public.aggr_job_step(name text) RETURNS bool
  LANGUAGE sql AS $$ INSERT INTO public.hijacked VALUES (current_user, 'aggr_job_step') RETURNING false $$;
CREATE FUNCTION public.aggr_job_status(name text,
    OUT phase text, OUT cancelled bool, OUT error text, OUT rows_done int8, OUT rows_total int8, OUT progress text)
  LANGUAGE sql AS $$ INSERT INTO public.hijacked VALUES (current_user, 'aggr_job_status') RETURNING NULL, false, NULL, 0::int8, 0::int8, '' $$;
CREATE FUNCTION public.aggr_wait(name text) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO public.hijacked VALUES (current_user, 'aggr_wait') $$;
RESET ROLE;
SET ROLE regress_aggr_victim;
CREATE TABLE public.t2 (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO public.t2 SELECT g, g % 10 FROM generate_series(1, 500) g;
SELECT aggr_s.aggr_create('t2_v', 'public.t2', key => 'v');
SELECT aggr_s.aggr_clear('t2_v');
CALL aggr_s.aggr_backfill('t2_v', batch_size => 100, wait => true, background => false);
SELECT aggr_s.aggr_rebuild('t2_v', batch_size => 100, background => false);
CALL aggr_s.aggr_wait('t2_v');
SELECT aggr_s.aggr_count('t2_v') IS NOT DISTINCT FROM (SELECT count(*) FROM public.t2) AS t2_count_ok;
RESET ROLE;
SELECT who, what FROM public.hijacked;
\c :orig_db
DROP DATABASE regress_aggr_schema_db;
SET client_min_messages = warning;

-- clean up
SELECT aggr_drop('victim_lb');
DROP SCHEMA victim CASCADE;
SELECT aggr_drop('plant_own');
DROP SCHEMA plant CASCADE;
DROP FUNCTION public.sqlstate_of(text);
DROP ROLE regress_aggr_victim, regress_aggr_reader, regress_aggr_attacker, regress_aggr_schema_owner;
