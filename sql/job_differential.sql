-- Randomized differential test of backfill, rebuild, cancel/resume and
-- repair: random key and namespace types (namespaces whose encodings do not
-- sort like their values: int 255/256, texts of several lengths and
-- collations, uuid), random batch sizes from 1 up, random writes committed
-- between job steps, cancel and resume at random points. After every job the
-- aggregate is compared with plain SQL over the table: every entry with its
-- position (row_number() in the aggregate's order), both ways, plus the
-- total and aggr_verify. The last query prints how many checks ran (must be
-- more than zero) and how many failed (must be zero).
SET client_min_messages = warning;
SELECT setseed(0.2026);

CREATE TABLE jd_results (cfg text, round int, action text, differs bigint, entries bigint, table_rows bigint, verify text);

-- Random writes: updates of keys and namespaces, inserts, deletes.
CREATE PROCEDURE jd_write(ns_gen text, key_gen text) LANGUAGE plpgsql AS $$
DECLARE
  n int := 1 + (random() * 6)::int;
BEGIN
  FOR i IN 1..n LOOP
    CASE (random() * 3)::int
      WHEN 0 THEN EXECUTE format('UPDATE jd SET (%s) = (SELECT %s) WHERE id = %s', 'k1, k2', key_gen, 1 + (random() * 400)::int);
      WHEN 1 THEN EXECUTE format('UPDATE jd SET ns = %s WHERE id = %s', ns_gen, 1 + (random() * 400)::int);
      WHEN 2 THEN EXECUTE format('INSERT INTO jd SELECT nextval(''jd_ids''), %s, k.* FROM (SELECT %s) k', ns_gen, key_gen);
      ELSE DELETE FROM jd WHERE id = 1 + (random() * 400)::int;
    END CASE;
  END LOOP;
END $$;

-- Entries of the aggregate against the table, with positions, both ways.
CREATE FUNCTION jd_check(order_spec text, key_text text) RETURNS TABLE (differs bigint, entries bigint, table_rows bigint, verify text)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format($q$
    WITH t AS (SELECT ns::text AS ns, id::text AS id, %2$s AS key,
                      row_number() OVER (PARTITION BY ns ORDER BY %1$s, id) - 1 AS pos FROM jd),
         a AS (SELECT n.ns::text AS ns, p.id, p.key, p.position AS pos
                 FROM (SELECT DISTINCT ns FROM jd) n, LATERAL aggr_page('jd_agg', 0, 1000000, namespace => n.ns) p)
    SELECT (SELECT count(*) FROM ((TABLE t EXCEPT ALL TABLE a) UNION ALL (TABLE a EXCEPT ALL TABLE t)) d),
           (SELECT entries FROM aggr_status('jd_agg')), (SELECT count(*) FROM jd), (SELECT status FROM aggr_verify('jd_agg'))
  $q$, order_spec, key_text);
END $$;

-- Drives the current job step by step, committing random writes between
-- steps; cancels and resumes a backfill at random points.
CREATE PROCEDURE jd_drive(ns_gen text, key_gen text, kind text, batch int) LANGUAGE plpgsql AS $$
DECLARE
  more bool := true;
BEGIN
  WHILE more LOOP
    IF random() < 0.3 THEN CALL jd_write(ns_gen, key_gen); END IF;
    COMMIT;
    IF kind = 'backfill' AND random() < 0.05 THEN
      PERFORM aggr_backfill_cancel('jd_agg');
      COMMIT;
      IF random() < 0.5 THEN CALL jd_write(ns_gen, key_gen); COMMIT; END IF;
      CALL aggr_backfill('jd_agg', batch_size => batch, background => false);
      COMMIT;
    END IF;
    more := aggr_job_step('jd_agg');
    COMMIT;
  END LOOP;
END $$;

CREATE PROCEDURE jd_run(cfg text, ns_type text, ns_gen text, key_types text, key_gen text, key_spec text,
                        order_spec text, key_text text, rounds int) LANGUAGE plpgsql AS $$
DECLARE
  action text;
  batch int;
  r record;
BEGIN
  DROP TABLE IF EXISTS jd;
  DROP SEQUENCE IF EXISTS jd_ids;
  CREATE SEQUENCE jd_ids START 401;
  EXECUTE format('CREATE TABLE jd (id int PRIMARY KEY, ns %s NOT NULL, k1 %s, k2 %s)', ns_type,
                 split_part(key_types, ',', 1), split_part(key_types, ',', 2));
  EXECUTE format('INSERT INTO jd SELECT g, %s, k.* FROM generate_series(1, 400) g, LATERAL (SELECT %s WHERE g > 0) k',
                 ns_gen, key_gen);
  PERFORM aggr_create('jd_agg', 'jd'::regclass, key => key_spec, namespace => 'ns', build => 'now');
  COMMIT;
  FOR round IN 1..rounds LOOP
    action := (ARRAY['backfill', 'rebuild', 'repair'])[1 + floor(random() * 3)::int];
    batch := (ARRAY[1, 2, 3, 7, 50, 1000])[1 + floor(random() * 6)::int];
    IF action = 'backfill' THEN
      PERFORM aggr_clear('jd_agg');
      CALL aggr_backfill('jd_agg', batch_size => batch, background => false);
      COMMIT;
      CALL jd_drive(ns_gen, key_gen, action, batch);
    ELSIF action = 'rebuild' THEN
      PERFORM aggr_rebuild('jd_agg', batch_size => batch, background => false);
      COMMIT;
      CALL jd_drive(ns_gen, key_gen, action, batch);
    ELSE
      ALTER TABLE jd DISABLE TRIGGER USER;
      CALL jd_write(ns_gen, key_gen);
      ALTER TABLE jd ENABLE TRIGGER USER;
      PERFORM aggr_repair('jd_agg');
      COMMIT;
    END IF;
    SELECT * INTO r FROM jd_check(order_spec, key_text);
    INSERT INTO jd_results VALUES (cfg, round, action || ' batch ' || batch, r.differs, r.entries, r.table_rows, r.verify);
    COMMIT;
  END LOOP;
  PERFORM aggr_drop('jd_agg');
  DROP TABLE jd;
  COMMIT;
END $$;

-- int4 namespaces across the byte boundaries of their encoding
CALL jd_run('int4 ns, int key', 'int4', '(ARRAY[255, 256, 65535, 65536, -1, 0, 16777216])[1 + floor(random() * 7)::int]',
            'int4,int4', '(random() * 100)::int, NULL::int', 'k1', 'k1 ASC NULLS LAST', 'k1::text', 8);
-- int2 / int8 namespaces, DESC key
CALL jd_run('int2 ns, int DESC key', 'int2', '(ARRAY[127, 128, 255, 256, -32768, 32767])[1 + floor(random() * 6)::int]::int2',
            'int4,int4', '(random() * 100)::int, NULL::int', 'k1 DESC', 'k1 DESC NULLS FIRST', 'k1::text', 8);
CALL jd_run('int8 ns, numeric key', 'int8', '(ARRAY[255, 256, 4294967296, -4294967296, 9223372036854775807])[1 + floor(random() * 5)::int]::int8',
            'numeric,int4', 'round((random() * 100)::numeric, 2), NULL::int', 'k1', 'k1 ASC NULLS LAST', 'k1::text', 8);
-- text namespaces of several lengths, in the C and an ICU collation
CALL jd_run('text C ns, text key', 'text COLLATE "C"', '(ARRAY[''a'', ''ab'', ''B'', '''', ''zz'', ''é'', repeat(''x'', 200)])[1 + floor(random() * 7)::int]',
            'text COLLATE "sv-x-icu",int4', '(ARRAY[''a'', ''Å'', ''ö'', ''z'', NULL])[1 + floor(random() * 5)::int], NULL::int', 'k1', 'k1 ASC NULLS LAST', 'k1::text', 8);
CALL jd_run('text icu ns, multi-column key', 'text COLLATE "en-x-icu"', '(ARRAY[''a'', ''A'', ''b'', ''B'', ''ä'', repeat(''y'', 130)])[1 + floor(random() * 6)::int]',
            'int4,text', '(random() * 5)::int, (ARRAY[''x'', ''y'', NULL])[1 + floor(random() * 3)::int]', 'k1, k2 DESC',
            'k1 ASC NULLS LAST, k2 DESC NULLS FIRST', 'ROW(k1, k2)::text', 8);
-- uuid namespaces
CALL jd_run('uuid ns, int key', 'uuid', '(ARRAY[''00000000-0000-0000-0000-0000000000ff'', ''00000000-0000-0000-0000-000000000100'', ''ffffffff-0000-0000-0000-000000000000'']::uuid[])[1 + floor(random() * 3)::int]',
            'int4,int4', '(random() * 100)::int, NULL::int', 'k1', 'k1 ASC NULLS LAST', 'k1::text', 8);

SELECT count(*) > 0 AS checks_ran, count(*) FILTER (WHERE differs IS DISTINCT FROM 0 OR entries IS DISTINCT FROM table_rows OR verify IS DISTINCT FROM 'ok') AS failed
  FROM jd_results;
SELECT * FROM jd_results WHERE differs IS DISTINCT FROM 0 OR entries IS DISTINCT FROM table_rows OR verify IS DISTINCT FROM 'ok';

DROP PROCEDURE jd_run, jd_drive, jd_write;
DROP FUNCTION jd_check;
DROP TABLE jd_results;
