-- Aggregates on partitioned tables: one tree per leaf partition (sub-
-- partitions and the default partition included), each kept by that
-- partition's triggers; reads by the partitioned table's aggregate name
-- combine them. Everything is compared with plain SQL over the partitioned
-- table, as the owner (a non-superuser) and as a reader with SELECT only.
SET client_min_messages = warning;
CREATE ROLE part_owner;
CREATE ROLE part_reader;
GRANT CREATE ON SCHEMA public TO part_owner;
SET ROLE part_owner;

CREATE TABLE pt (
    id     int NOT NULL,
    region int NOT NULL,
    grp    int NOT NULL,
    score  int,
    name   text COLLATE "en-x-icu",
    pts    bigint NOT NULL,
    PRIMARY KEY (id, region)
) PARTITION BY LIST (region);
CREATE TABLE pt_1 PARTITION OF pt FOR VALUES IN (1);
CREATE TABLE pt_23 PARTITION OF pt FOR VALUES IN (2, 3) PARTITION BY RANGE (id);
CREATE TABLE pt_23_lo PARTITION OF pt_23 FOR VALUES FROM (MINVALUE) TO (3000);
CREATE TABLE pt_23_hi PARTITION OF pt_23 DEFAULT;
-- a partition whose columns are in another order (and one dropped): whole
-- rows are converted to the partitioned table's row type
CREATE TABLE pt_4 (junk int, pts bigint NOT NULL, name text COLLATE "en-x-icu", score int, grp int NOT NULL,
                   region int NOT NULL, id int NOT NULL);
ALTER TABLE pt_4 DROP COLUMN junk;
ALTER TABLE pt ATTACH PARTITION pt_4 FOR VALUES IN (4);
CREATE TABLE pt_def PARTITION OF pt DEFAULT;

-- deterministic pseudo-random rows; NULL scores and names, repeated keys
CREATE FUNCTION pt_rows(lo int, hi int) RETURNS TABLE (id int, region int, grp int, score int, name text, pts bigint)
LANGUAGE sql IMMUTABLE AS $$
  SELECT g, (g * 37) % 7, g % 3,
         CASE WHEN g % 23 = 0 THEN NULL ELSE (g * 7919) % 500 END,
         CASE WHEN g % 29 = 0 THEN NULL ELSE (ARRAY['b', 'B', 'a', 'Á', 'á', 'c', 'ab', 'Ab'])[1 + g % 8] || (g % 13)::text END,
         (g * 31) % 100
    FROM generate_series(lo, hi) g
$$;
INSERT INTO pt SELECT * FROM pt_rows(1, 6000);

SELECT aggr_create('pt_score', 'pt'::regclass, key => 'score DESC', sum_value => 'pts', build => 'now');
SELECT aggr_create('pt_name', 'pt'::regclass, key => 'name NULLS FIRST', sum_value => 'pts', namespace => 'grp', build => 'now');
SELECT aggr_create('pt_multi', 'pt'::regclass, key => 'score, name DESC', build => 'now');
-- the parts: one per leaf partition
SELECT name, source, state FROM aggr_aggregates WHERE name LIKE 'pt_score%' ORDER BY name COLLATE "C";

-- The differential check: every read of every aggregate against plain SQL
-- over pt, at many offsets; returns the mismatches (none expected).
CREATE FUNCTION pt_mismatches() RETURNS TABLE (what text, detail text) LANGUAGE plpgsql AS $$
DECLARE
  n int := (SELECT count(*) FROM pt);
  k int;
  g int;
  s int;
  got text;
  want text;
  ids text[];
BEGIN
  IF aggr_count('pt_score') IS DISTINCT FROM n::bigint THEN
    what := 'count'; detail := aggr_count('pt_score') || ' <> ' || n; RETURN NEXT; END IF;
  IF aggr_sum('pt_score') IS DISTINCT FROM (SELECT coalesce(sum(pts), 0) FROM pt) THEN
    what := 'sum'; RETURN NEXT; END IF;
  FOREACH s IN ARRAY ARRAY[0, 1, 77, 250, 251, 499, 500] LOOP
    IF aggr_rank('pt_score', s) IS DISTINCT FROM (SELECT count(*) + 1 FROM pt WHERE score > s OR score IS NULL) THEN
      what := 'rank'; detail := s::text; RETURN NEXT; END IF;
    IF aggr_count('pt_score', lower => 400, upper => s) IS DISTINCT FROM (SELECT count(*) FROM pt WHERE score <= 400 AND score >= s) THEN
      what := 'range count'; detail := s::text; RETURN NEXT; END IF;
    IF aggr_sum('pt_score', lower => s, upper_inclusive => false, upper => 10) IS DISTINCT FROM
       (SELECT coalesce(sum(pts), 0) FROM pt WHERE score <= s AND score > 10) THEN
      what := 'range sum'; detail := s::text; RETURN NEXT; END IF;
  END LOOP;
  FOR k IN SELECT DISTINCT least(x, greatest(n - 1, 0)) FROM unnest(ARRAY[0, 1, 2, 17, n / 3, n / 2, n - 2, n - 1, 1234]) x LOOP
    got := (SELECT id FROM aggr_at('pt_score', k));
    want := (SELECT ROW(id, region)::text FROM pt ORDER BY score DESC NULLS FIRST, id, region OFFSET k LIMIT 1);
    IF got IS DISTINCT FROM want THEN what := 'at'; detail := k || ': ' || got || ' <> ' || want; RETURN NEXT; END IF;
    got := (SELECT string_agg(id, ' ' ORDER BY position) FROM aggr_page('pt_score', k, 9));
    want := (SELECT string_agg(r, ' ') FROM (SELECT ROW(id, region)::text AS r FROM pt ORDER BY score DESC NULLS FIRST, id, region OFFSET k LIMIT 9) x);
    IF got IS DISTINCT FROM want THEN what := 'page'; detail := k::text; RETURN NEXT; END IF;
    got := (SELECT string_agg(id, ' ' ORDER BY position DESC) FROM aggr_page('pt_score', k, 9, descending => true));
    want := (SELECT string_agg(r, ' ') FROM (SELECT ROW(id, region)::text AS r FROM pt ORDER BY score ASC NULLS LAST, id DESC, region DESC OFFSET k LIMIT 9) x);
    IF got IS DISTINCT FROM want THEN what := 'page descending'; detail := k::text; RETURN NEXT; END IF;
    IF EXISTS ((SELECT * FROM aggr_page_rows('pt_score', k, 5, NULL::pt) EXCEPT ALL
                SELECT * FROM (SELECT * FROM pt ORDER BY score DESC NULLS FIRST, id, region OFFSET k LIMIT 5) x)
               UNION ALL
               (SELECT * FROM (SELECT * FROM pt ORDER BY score DESC NULLS FIRST, id, region OFFSET k LIMIT 5) x EXCEPT ALL
                SELECT * FROM aggr_page_rows('pt_score', k, 5, NULL::pt))) THEN
      what := 'page_rows'; detail := k::text; RETURN NEXT; END IF;
    got := (SELECT string_agg(id, ' ' ORDER BY position) FROM aggr_page('pt_multi', k, 4));
    want := (SELECT string_agg(r, ' ') FROM (SELECT ROW(id, region)::text AS r FROM pt ORDER BY score, name DESC, id, region OFFSET k LIMIT 4) x);
    IF got IS DISTINCT FROM want THEN what := 'multi page'; detail := k::text; RETURN NEXT; END IF;
    -- within bounds
    got := (SELECT id FROM aggr_at('pt_score', k % 50, lower => 300, upper => 100));
    want := (SELECT ROW(id, region)::text FROM pt WHERE score BETWEEN 100 AND 300 ORDER BY score DESC, id, region OFFSET k % 50 LIMIT 1);
    IF got IS DISTINCT FROM want THEN what := 'at in range'; detail := k::text; RETURN NEXT; END IF;
  END LOOP;
  -- positions of some rows
  FOR k IN SELECT x FROM unnest(ARRAY[1, 23, 500, 2999, 3000, 4444, 5999, 7001]) x LOOP
    got := (SELECT aggr_position('pt_score', ROW(p.id, p.region))::text FROM pt p WHERE p.id = k);
    want := (SELECT pos::text FROM (SELECT id, row_number() OVER (ORDER BY score DESC NULLS FIRST, id, region) - 1 AS pos FROM pt) x WHERE x.id = k);
    IF got IS DISTINCT FROM want THEN what := 'position'; detail := k || ': ' || got || ' <> ' || want; RETURN NEXT; END IF;
    got := (SELECT aggr_position_of('pt_score', p.score, ROW(p.id, p.region))::text FROM pt p WHERE p.id = k);
    IF got IS DISTINCT FROM want THEN what := 'position_of'; detail := k || ': ' || got || ' <> ' || want; RETURN NEXT; END IF;
  END LOOP;
  -- a random entry within bounds is one of them, at its position
  IF (SELECT count(*) FROM aggr_random('pt_score', lower => 300, upper => 100) r
       WHERE r.position = (SELECT x.pos FROM (SELECT ROW(id, region)::text AS rid,
                                                     row_number() OVER (ORDER BY score DESC NULLS FIRST, id, region) - 1 AS pos FROM pt) x
                            WHERE x.rid = r.id)
         AND (r.key)::int BETWEEN 100 AND 300) <> 1 AND (SELECT count(*) FROM pt WHERE score BETWEEN 100 AND 300) > 0 THEN
    what := 'random'; RETURN NEXT; END IF;
  -- the namespaced text key (ICU collation, NULL names first)
  FOR g IN 0..3 LOOP
    IF aggr_count('pt_name', namespace => g) IS DISTINCT FROM (SELECT count(*) FROM pt WHERE grp = g) THEN
      what := 'ns count'; detail := g::text; RETURN NEXT; END IF;
    IF aggr_rank('pt_name', 'b5'::text, namespace => g) IS DISTINCT FROM (SELECT count(*) + 1 FROM pt WHERE grp = g AND (name < 'b5' OR name IS NULL)) THEN
      what := 'ns rank'; detail := g::text; RETURN NEXT; END IF;
    FOR k IN SELECT DISTINCT x FROM unnest(ARRAY[0, 5, 333, 1001, 1999]) x LOOP
      got := (SELECT string_agg(id, ' ' ORDER BY position) FROM aggr_page('pt_name', k, 6, namespace => g));
      want := (SELECT string_agg(r, ' ') FROM (SELECT ROW(id, region)::text AS r FROM pt WHERE grp = g ORDER BY name NULLS FIRST, id, region OFFSET k LIMIT 6) x);
      IF got IS DISTINCT FROM want THEN what := 'ns page'; detail := g || '/' || k; RETURN NEXT; END IF;
    END LOOP;
    got := aggr_min('pt_name', namespace => g) || '|' || aggr_max('pt_name', namespace => g);
    want := (SELECT min(name) FILTER (WHERE name IS NOT NULL) || '|' || max(name) FROM pt WHERE grp = g);
    IF (SELECT count(*) FROM pt WHERE grp = g AND name IS NULL) = 0 AND got IS DISTINCT FROM want THEN
      what := 'ns min/max'; detail := g || ': ' || got || ' <> ' || want; RETURN NEXT; END IF;
  END LOOP;
  -- keyset pagination over the whole aggregate equals ORDER BY
  ids := ARRAY(SELECT id FROM aggr_paginate('pt_multi', page_size => 50));
  IF ids IS DISTINCT FROM ARRAY(SELECT ROW(id, region)::text FROM pt ORDER BY score, name DESC, id, region LIMIT 50) THEN
    what := 'paginate'; RETURN NEXT; END IF;
END $$;

SELECT count(*) AS mismatches FROM pt_mismatches();
-- the same by key selection alone, without merging the last few entries
SET aggr_ext.partition_merge_rows = 0;
SELECT count(*) AS mismatches_selection_only FROM pt_mismatches();
RESET aggr_ext.partition_merge_rows;

-- Partitions that each hold one range of the key: the interpolated guesses
-- of the selection are poor and the weighted-median rounds do the work.
CREATE TABLE rk (k int, id int, PRIMARY KEY (k, id)) PARTITION BY RANGE (k);
CREATE TABLE rk_0 PARTITION OF rk FOR VALUES FROM (0) TO (100);
CREATE TABLE rk_1 PARTITION OF rk FOR VALUES FROM (100) TO (1000);
CREATE TABLE rk_2 PARTITION OF rk FOR VALUES FROM (1000) TO (100000);
INSERT INTO rk SELECT g % 100, g FROM generate_series(1, 300) g;
INSERT INTO rk SELECT 100 + g % 900, g FROM generate_series(1, 5000) g;
INSERT INTO rk SELECT 1000 + (g * 7) % 99000, g FROM generate_series(1, 20000) g;
SELECT aggr_create('rk_k', 'rk'::regclass, key => 'k DESC', build => 'now');
SET aggr_ext.partition_merge_rows = 0;
SELECT count(*) AS checked,
       count(*) FILTER (WHERE (SELECT id FROM aggr_at('rk_k', o)) IS DISTINCT FROM
                              (SELECT ROW(k, id)::text FROM rk ORDER BY k DESC, id OFFSET o LIMIT 1)) AS at_mismatches,
       count(*) FILTER (WHERE (SELECT array_agg(id ORDER BY position) FROM aggr_page('rk_k', o, 30)) IS DISTINCT FROM
                              (SELECT array_agg(ROW(k, id)::text) FROM (SELECT k, id FROM rk ORDER BY k DESC, id OFFSET o LIMIT 30) x)) AS page_mismatches
  FROM unnest(ARRAY[0, 1, 19985, 19999, 20000, 20001, 24990, 24999, 25000, 25001, 25299] || ARRAY(SELECT generate_series(3, 25299, 1597))) o;
RESET aggr_ext.partition_merge_rows;
SELECT aggr_drop('rk_k');
DROP TABLE rk;

-- Random DML through the partitioned table: inserts, updates that move rows
-- between partitions (and sub-partitions), key and sum changes, deletes,
-- COPY, a rolled back savepoint; checked after each round.
SELECT setseed(0.42);
CREATE FUNCTION pt_round(r int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pt SELECT id + 10000 * r, region, grp, score, name, pts FROM pt_rows(1, 300) WHERE random() < 0.5;
  UPDATE pt SET region = (region + 1 + (random() * 5)::int) % 7 WHERE random() < 0.05;        -- row movement
  UPDATE pt SET id = id + 200000 WHERE id < 3000 AND region IN (2, 3) AND random() < 0.05;         -- into the other sub-partition
  UPDATE pt SET score = CASE WHEN random() < 0.1 THEN NULL ELSE (random() * 500)::int END, pts = pts + 1 WHERE random() < 0.05;
  UPDATE pt SET name = CASE WHEN random() < 0.1 THEN NULL ELSE 'á' || (random() * 9)::int END, grp = (grp + 1) % 3 WHERE random() < 0.03;
  DELETE FROM pt WHERE random() < 0.04;
END $$;
SELECT pt_round(1);
SELECT count(*) AS mismatches FROM pt_mismatches();
SELECT pt_round(2);
SELECT pt_round(3);
SELECT count(*) AS mismatches FROM pt_mismatches();
BEGIN;
SELECT pt_round(4);
SAVEPOINT s;
DELETE FROM pt WHERE region = 1;
UPDATE pt SET region = 1 WHERE region = 5;
SELECT count(*) AS mismatches_in_savepoint FROM pt_mismatches();
ROLLBACK TO s;
SELECT count(*) AS mismatches_after_rollback_to FROM pt_mismatches();
COMMIT;
BEGIN;
DELETE FROM pt;
SELECT aggr_count('pt_score') AS emptied;
ROLLBACK;
BEGIN;
TRUNCATE pt;
SELECT aggr_count('pt_score') AS truncated, aggr_count('pt_name', namespace => 1) AS truncated_ns;
INSERT INTO pt SELECT * FROM pt_rows(1, 400);
SELECT count(*) AS mismatches_after_truncate FROM pt_mismatches();
ROLLBACK;
COPY pt (id, region, grp, score, name, pts) FROM STDIN;
90001	1	0	7	zz	5
90002	2	1	\N	\N	6
90003	3	2	499	Ab3	7
90004	4	0	0	a	8
90005	6	1	250	b	9
\.
SELECT count(*) AS mismatches FROM pt_mismatches();
-- TRUNCATE of one partition, then of the whole table
TRUNCATE pt_23_lo;
SELECT count(*) AS mismatches FROM pt_mismatches();
SELECT verify.status, verify.table_count = (SELECT count(*) FROM pt) AS counted
  FROM unnest(ARRAY['pt_score', 'pt_name', 'pt_multi']) a, LATERAL aggr_verify(a) verify;

-- A reader with SELECT on the partitioned table only reads it whole.
GRANT SELECT ON pt TO part_reader;
SET ROLE part_reader;
SELECT aggr_count('pt_score') = (SELECT count(*) FROM pt) AS reader_count,
       (SELECT array_agg(id ORDER BY position) FROM aggr_page('pt_score', 100, 20)) =
       (SELECT array_agg(ROW(id, region)::text) FROM (SELECT * FROM pt ORDER BY score DESC NULLS FIRST, id, region OFFSET 100 LIMIT 20) x) AS reader_page;
SELECT count(*) FROM aggr_page_rows('pt_score', 0, 10, NULL::pt);
SELECT aggr_clear('pt_score');  -- not the owner
SELECT aggr_count('pt_score:public.pt_1');  -- a part by its own name: SELECT on that partition
SET ROLE part_owner;

-- Partition DDL.
-- CREATE TABLE ... PARTITION OF: an empty part, at once.
CREATE TABLE pt_7 PARTITION OF pt FOR VALUES IN (7);
INSERT INTO pt SELECT id + 50000, 7, grp, score, name, pts FROM pt_rows(1, 200);
-- ATTACH PARTITION of a populated table (itself partitioned): parts built in the ATTACH's transaction
DELETE FROM pt WHERE region IN (8, 9);
CREATE TABLE pt_89 (LIKE pt) PARTITION BY LIST (region);
CREATE TABLE pt_8 PARTITION OF pt_89 FOR VALUES IN (8);
CREATE TABLE pt_9 PARTITION OF pt_89 FOR VALUES IN (9);
ALTER TABLE pt_89 ADD PRIMARY KEY (id, region);
INSERT INTO pt_89 SELECT id + 60000, 8 + id % 2, grp, score, name, pts FROM pt_rows(1, 700);
BEGIN;
ALTER TABLE pt ATTACH PARTITION pt_89 FOR VALUES IN (8, 9);
SELECT count(*) AS mismatches_in_attach_transaction FROM pt_mismatches();
COMMIT;
SELECT name FROM aggr_aggregates WHERE name LIKE 'pt_score:%' ORDER BY name COLLATE "C";
SELECT count(*) AS mismatches FROM pt_mismatches();
-- DETACH PARTITION: the detached table's parts go (its triggers too)
ALTER TABLE pt DETACH PARTITION pt_23;
SELECT count(*) AS mismatches FROM pt_mismatches();
SELECT count(*) AS triggers_left_on_detached FROM pg_trigger WHERE tgrelid IN ('pt_23_lo'::regclass, 'pt_23_hi'::regclass);
INSERT INTO pt_23 VALUES (99999, 2, 0, 1, 'x', 1);
-- ... and comes back
ALTER TABLE pt ATTACH PARTITION pt_23 FOR VALUES IN (2, 3);
SELECT count(*) AS mismatches FROM pt_mismatches();
-- DETACH CONCURRENTLY is refused (it leaves a window where the partition
-- is gone for new snapshots of pt but still in its part)
ALTER TABLE pt DETACH PARTITION pt_7 CONCURRENTLY;
-- DROP of a partition drops its part
DROP TABLE pt_7;
SELECT count(*) AS parts_of_dropped FROM aggr_aggregates WHERE name LIKE '%.pt_7';
SELECT count(*) AS mismatches FROM pt_mismatches();
-- a part cannot be dropped on its own; reading it by its name reads its partition
SELECT aggr_drop('pt_score:public.pt_1');
SELECT aggr_count('pt_score:public.pt_1') = (SELECT count(*) FROM pt_1) AS part_read;
-- a foreign-table partition (whose rows would fire no trigger here) cannot
-- exist: PostgreSQL refuses it under a primary key
RESET ROLE;
CREATE FOREIGN DATA WRAPPER pt_fdw;
CREATE SERVER pt_server FOREIGN DATA WRAPPER pt_fdw;
GRANT USAGE ON FOREIGN SERVER pt_server TO part_owner;
SET ROLE part_owner;
CREATE FOREIGN TABLE pt_f PARTITION OF pt FOR VALUES IN (20) SERVER pt_server;
SELECT count(*) AS foreign_partition_refused FROM pg_class WHERE relname = 'pt_f';

-- whole rows of a plain table whose primary key is not its first column
-- (every fetch after the first failed: 'column is not in index')
CREATE TABLE pk_second (a int, id int PRIMARY KEY);
INSERT INTO pk_second SELECT g % 4, g FROM generate_series(1, 10) g;
SELECT aggr_create('pk_second_a', 'pk_second'::regclass, key => 'a');
SELECT * FROM aggr_page_rows('pk_second_a', 2, 4, NULL::pk_second);
SELECT aggr_drop('pk_second_a');
DROP TABLE pk_second;

-- Maintenance on the partitioned table's aggregate acts on every part.
SELECT aggr_clear('pt_score');
SELECT aggr_count('pt_score');
CALL aggr_backfill('pt_score', wait => true);
SELECT aggr_rebuild('pt_name', background => false);
SELECT aggr_count('pt_name', namespace => 1) = (SELECT count(*) FROM pt WHERE grp = 1) AS read_during_rebuild;
CALL aggr_wait('pt_name');
-- a rebuild of every part, cancelled through the partitioned table's name
SELECT aggr_rebuild('pt_score', background => false);
SELECT aggr_job_step('pt_score') AS stepped, (SELECT job IS NOT NULL FROM aggr_status('pt_score')) AS job_shown;
SELECT aggr_backfill_cancel('pt_score');
SELECT job IS NULL AS no_job, state FROM aggr_status('pt_score');
SELECT aggr_backfill_cancel('pt_score');
SELECT count(*) AS mismatches FROM pt_mismatches();
SELECT aggr_set_write_mode('pt_multi', 'deferred');
SELECT pt_round(5);
SELECT count(*) AS mismatches FROM pt_mismatches();
SELECT aggr_merge('pt_multi') >= 0 AS merged;
SELECT aggr_set_write_mode('pt_multi', 'direct');
SELECT state, entries = (SELECT count(*) FROM pt) AS entries FROM aggr_status('pt_score');
-- drift a part (triggers disabled), then find and repair it through the parent
CREATE TEMP TABLE gone AS SELECT count(*) AS n FROM pt_1 WHERE id % 5 = 0;
ALTER TABLE pt_1 DISABLE TRIGGER USER;
DELETE FROM pt_1 WHERE id % 5 = 0;
DO $$ DECLARE t name; BEGIN
  FOR t IN SELECT tgname FROM pg_trigger WHERE tgrelid = 'pt_1'::regclass LOOP
    EXECUTE format('ALTER TABLE pt_1 ENABLE ALWAYS TRIGGER %I', t);
  END LOOP;
END $$;
SELECT status, missing, extra = (SELECT n FROM gone) AS extra FROM aggr_verify('pt_score');
SELECT kind, count(*) = (SELECT n FROM gone) AS all_listed FROM aggr_diff('pt_score') GROUP BY kind;
SELECT a, inserted, deleted = (SELECT n FROM gone) AS deleted, updated
  FROM unnest(ARRAY['pt_score', 'pt_name', 'pt_multi']) a, LATERAL aggr_repair(a);
SELECT count(*) AS mismatches FROM pt_mismatches();
SELECT status FROM aggr_verify('pt_score');

-- build => 'background': a backfill job per part; reads wait for all of them
CREATE TABLE bg (id int, k int, v int, PRIMARY KEY (id, k)) PARTITION BY HASH (k);
CREATE TABLE bg_0 PARTITION OF bg FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE bg_1 PARTITION OF bg FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO bg SELECT g, g % 10, g % 77 FROM generate_series(1, 5000) g;
SELECT aggr_create('bg_v', 'bg'::regclass, key => 'v', build => 'background');
CALL aggr_wait('bg_v');
SELECT aggr_count('bg_v') = 5000 AS built, (SELECT id FROM aggr_at('bg_v', 2500)) =
       (SELECT ROW(id, k)::text FROM bg ORDER BY v, id, k OFFSET 2500 LIMIT 1) AS at_ok;

-- aggr_drop of the partitioned table's aggregate drops every part and trigger
SELECT aggr_drop('pt_multi');
SELECT count(*) AS parts_left FROM aggr_aggregates WHERE name LIKE 'pt_multi%';
-- DROP TABLE of the partitioned table drops everything
DROP TABLE pt;
DROP TABLE bg;
SELECT count(*) AS aggregates_left FROM aggr_aggregates;
RESET ROLE;

-- Edges of the selection across parts, from descents only
-- (aggr_ext.partition_merge_rows = 0) through some parts' ranges in memory
-- and others not (3, 40) to whole parts in memory (100000): an empty part,
-- nearly all rows in one part, keys repeated across parts (ties broken by
-- the primary key), NULL keys, a DESC key, namespaces, and then deltas
-- pending in deferred mode.
CREATE TABLE sel (id int, p int, ns int, k int, PRIMARY KEY (id, p)) PARTITION BY LIST (p);
CREATE TABLE sel_0 PARTITION OF sel FOR VALUES IN (0);
CREATE TABLE sel_1 PARTITION OF sel FOR VALUES IN (1);
CREATE TABLE sel_2 PARTITION OF sel FOR VALUES IN (2);
CREATE TABLE sel_3 PARTITION OF sel FOR VALUES IN (3);  -- stays empty
INSERT INTO sel SELECT g, CASE WHEN g % 50 = 0 THEN 1 WHEN g % 77 = 0 THEN 2 ELSE 0 END, g % 3,
                       CASE WHEN g % 31 = 0 THEN NULL ELSE g % 10 END
  FROM generate_series(1, 2000) g;
SELECT aggr_create('sel_k', 'sel'::regclass, key => 'k DESC', namespace => 'ns', build => 'now');
SELECT aggr_create('sel_a', 'sel'::regclass, key => 'k', build => 'now');
CREATE FUNCTION sel_mismatches() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM (
    SELECT o FROM generate_series(0, 2) n, generate_series(0, 665, 7) o
     WHERE (SELECT array_agg(id ORDER BY position) FROM aggr_page('sel_k', o, 5, namespace => n)) IS DISTINCT FROM
           (SELECT array_agg(ROW(id, p)::text) FROM (SELECT id, p FROM sel WHERE ns = n ORDER BY k DESC, id, p OFFSET o LIMIT 5) x)
    UNION ALL
    SELECT o FROM generate_series(0, (SELECT count(*) - 1 FROM sel), 13) o
     WHERE (SELECT id FROM aggr_at('sel_a', o)) IS DISTINCT FROM
           (SELECT ROW(id, p)::text FROM sel ORDER BY k, id, p OFFSET o LIMIT 1)
    UNION ALL
    SELECT o FROM generate_series(0, 9) o
     WHERE (SELECT id FROM aggr_at('sel_a', -1 - o)) IS DISTINCT FROM
           (SELECT ROW(id, p)::text FROM sel ORDER BY k DESC NULLS FIRST, id DESC, p DESC OFFSET o LIMIT 1)) x
$$;
SET aggr_ext.partition_merge_rows = 0;
SELECT sel_mismatches() AS by_descents;
SET aggr_ext.partition_merge_rows = 3;
SELECT sel_mismatches() AS some_in_memory;
SET aggr_ext.partition_merge_rows = 40;
SELECT sel_mismatches() AS most_in_memory;
SET aggr_ext.partition_merge_rows = 100000;
SELECT sel_mismatches() AS all_in_memory;
RESET aggr_ext.partition_merge_rows;
SELECT sel_mismatches() AS mismatches;
-- all rows in one part
DELETE FROM sel WHERE p <> 0;
SELECT sel_mismatches() AS one_part;
INSERT INTO sel SELECT g, CASE WHEN g % 50 = 0 THEN 1 WHEN g % 77 = 0 THEN 2 ELSE 0 END, g % 3,
                       CASE WHEN g % 31 = 0 THEN NULL ELSE g % 10 END
  FROM generate_series(1, 2000) g WHERE g % 50 = 0 OR g % 77 = 0;
-- deltas pending in deferred mode (the merger may fold them at any time:
-- the answers are the same either way)
SELECT aggr_set_write_mode(a, 'deferred') FROM unnest(ARRAY['sel_k', 'sel_a']) a;
UPDATE sel SET k = (k + 3) % 10 WHERE id % 7 = 0;
DELETE FROM sel WHERE id % 11 = 0;
INSERT INTO sel SELECT g, g % 3, g % 3, g % 10 FROM generate_series(3001, 3100) g;
UPDATE sel SET p = 2 WHERE p = 1 AND id % 4 = 0;  -- moves rows between parts
SET aggr_ext.partition_merge_rows = 0;
SELECT sel_mismatches() AS deferred_by_descents;
SET aggr_ext.partition_merge_rows = 3;
SELECT sel_mismatches() AS deferred_some_in_memory;
RESET aggr_ext.partition_merge_rows;
SELECT sel_mismatches() AS deferred;
SELECT aggr_set_write_mode(a, 'direct') FROM unnest(ARRAY['sel_k', 'sel_a']) a;
-- A corrupt part (garbage in its leaves): reads through the partitioned
-- table's name raise XX001, whichever way the selection goes.
CREATE FUNCTION sel_sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
UPDATE aggr_internal.nodes SET payload = '\xdeadbeef'
 WHERE get_byte(payload, 1) = 1 AND tree_id IN (
   SELECT t.tree_id FROM aggr_internal.trees t JOIN aggr_internal.aggregates a USING (aggr_id)
    WHERE a.name = 'sel_a:public.sel_2' AND t.generation = a.generation);
SELECT m AS merge_rows, sel_sqlstate(format('SET aggr_ext.partition_merge_rows = %s; SELECT * FROM aggr_at(%L, 1000)', m, 'sel_a')) AS at,
       sel_sqlstate(format('SET aggr_ext.partition_merge_rows = %s; SELECT * FROM aggr_page(%L, 5, 10)', m, 'sel_a')) AS page,
       sel_sqlstate($$SELECT aggr_rank('sel_a', 5)$$) AS rank
  FROM unnest(ARRAY[0, 3, 256]) m;
RESET aggr_ext.partition_merge_rows;
SELECT aggr_drop(a) FROM unnest(ARRAY['sel_k', 'sel_a']) a;
DROP TABLE sel;
DROP FUNCTION sel_mismatches(), sel_sqlstate(text);
DROP FOREIGN DATA WRAPPER pt_fdw CASCADE;
DROP FUNCTION pt_mismatches(), pt_round(int), pt_rows(int, int);
REVOKE CREATE ON SCHEMA public FROM part_owner;
DROP OWNED BY part_owner;
DROP ROLE part_reader;
DROP ROLE part_owner;
