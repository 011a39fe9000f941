-- The Convex TableAggregate calls: a row's exact position (indexOf),
-- random entries, bounded keyset pages (paginate), offsets within bounds
-- and from the end. Every answer is checked against plain SQL over the same
-- rows: row_number() OVER (ORDER BY <key spec>, <primary key>) - 1 for
-- positions, rank() / count(*) OVER (ORDER BY <key spec>) for where a
-- bound falls, ORDER BY ... LIMIT after a row-value comparison for pages.
SELECT setseed(0.1515);

-- Ties (few distinct scores), NULL keys, namespaces (game), text with
-- collations, a multi-column key.
CREATE TABLE cv (
    id    int PRIMARY KEY,
    game  int NOT NULL,
    score int,
    name  text NOT NULL,
    v     int NOT NULL
);
INSERT INTO cv
SELECT g, g % 3, CASE WHEN g % 11 = 0 THEN NULL ELSE floor(random() * 25)::int END,
       (ARRAY['a', 'B', 'b', 'Å', 'ö', 'z', 'ab', ''])[1 + floor(random() * 8)::int],
       floor(random() * 100)::int
  FROM generate_series(1, 400) g;
-- Multi-column primary key, with text in it.
CREATE TABLE cm (
    a  int,
    b  text,
    k1 int NOT NULL,
    k2 text NOT NULL,
    v  int NOT NULL,
    PRIMARY KEY (a, b)
);
INSERT INTO cm
SELECT g % 37, (ARRAY['x', 'y, z', '"q"', 'w w'])[1 + g % 4], floor(random() * 6)::int,
       (ARRAY['m', 'n', 'N'])[1 + floor(random() * 3)::int], g
  FROM generate_series(1, 148) g;

SELECT count(*) AS aggregates FROM (
  SELECT aggr_create('cv_asc', 'cv', 'score', sum_value => 'v')
  UNION ALL SELECT aggr_create('cv_desc', 'cv', 'score DESC', sum_value => 'v')
  UNION ALL SELECT aggr_create('cv_nf', 'cv', 'score NULLS FIRST')
  UNION ALL SELECT aggr_create('cv_ns', 'cv', 'score DESC NULLS LAST', sum_value => 'v', namespace => 'game')
  UNION ALL SELECT aggr_create('cv_c', 'cv', 'name COLLATE "C"')
  UNION ALL SELECT aggr_create('cv_icu', 'cv', 'name COLLATE "sv-x-icu" DESC')
  UNION ALL SELECT aggr_create('cv_multi', 'cv', 'game, score DESC NULLS LAST')
  UNION ALL SELECT aggr_create('cm_multi', 'cm', 'k1 DESC, k2 COLLATE "C"', sum_value => 'v')) c;
-- a COLLATE in the key spec: built and verified in that collation's order
SELECT a, (aggr_verify(a)).status FROM unnest(ARRAY['cv_c', 'cv_icu', 'cm_multi']) a;

-- The plain-SQL oracle of one aggregate: per row its id (as aggregate
-- output text), namespace, position, entries strictly before its key
-- (rank) and through its key (count over peers).
CREATE TABLE aggs (agg text PRIMARY KEY, tbl text, nsx text, kx text, spec text, pk text, idx text);
INSERT INTO aggs VALUES
  ('cv_asc',   'cv', NULL,   'score',          'score',                                 'id',   'id'),
  ('cv_desc',  'cv', NULL,   'score',          'score DESC',                            'id',   'id'),
  ('cv_nf',    'cv', NULL,   'score',          'score NULLS FIRST',                     'id',   'id'),
  ('cv_ns',    'cv', 'game', 'score',          'score DESC NULLS LAST',                 'id',   'id'),
  ('cv_c',     'cv', NULL,   'name',           'name COLLATE "C"',                      'id',   'id'),
  ('cv_icu',   'cv', NULL,   'name',           'name COLLATE "sv-x-icu" DESC',          'id',   'id'),
  ('cv_multi', 'cv', NULL,   'ROW(game, score)', 'game, score DESC NULLS LAST',         'id',   'id'),
  ('cm_multi', 'cm', NULL,   'ROW(k1, k2)',    'k1 DESC, k2 COLLATE "C"',               'a, b', 'ROW(a, b)');

CREATE FUNCTION oracle(a aggs) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  DROP TABLE IF EXISTS o;
  EXECUTE format($q$
    CREATE TEMP TABLE o AS
    SELECT %6$s::text AS id, %1$s AS ns, %5$s IS NULL AS knull,
           row_number() OVER w - 1 AS pos, rank() OVER w2 - 1 AS before, count(*) OVER w2 AS through,
           count(*) OVER (PARTITION BY %1$s) AS n
      FROM %2$s WINDOW w AS (PARTITION BY %1$s ORDER BY %3$s, %4$s), w2 AS (PARTITION BY %1$s ORDER BY %3$s)$q$,
    coalesce(a.nsx, 'NULL::int'), a.tbl, a.spec, a.pk, a.kx, a.idx);
  -- bound pairs: keys of two rows of one namespace, every inclusivity;
  -- lo / hi are the positions the bounds select (hi < lo: empty)
  DROP TABLE IF EXISTS cases;
  CREATE TEMP TABLE cases AS
  SELECT r.ns, r.id AS r_id, s.id AS s_id, li, ui,
         CASE WHEN li THEN r.before ELSE r.through END AS lo, CASE WHEN ui THEN s.through ELSE s.before END AS hi
    FROM o r JOIN o s ON s.ns IS NOT DISTINCT FROM r.ns AND s.pos = (r.pos * 13 + 5) % r.n,
         (VALUES (true), (false)) l(li), (VALUES (true), (false)) u(ui)
   WHERE r.pos % 9 = 0 AND NOT r.knull AND NOT s.knull;
END $f$;

-- checks and mismatches of every call against the oracle of aggregate a
CREATE FUNCTION convex_check(a aggs) RETURNS TABLE (kind text, checks bigint, mismatches bigint) LANGUAGE plpgsql AS $f$
DECLARE
  key_of text := format('(SELECT %s FROM %s t WHERE %s::text = %%s)', a.kx, a.tbl, a.idx);   -- key of the row with id text %s
  id_of text := format('(SELECT %s FROM %s t WHERE %s::text = %%s)', a.idx, a.tbl, a.idx);
  c record;
  d bool;
  expected text[];
  got text[];
  page text[];
  cursor_id text;
  last bool;
  pages int;
  good bool;
BEGIN
  PERFORM oracle(a);
  kind := 'position';
  EXECUTE format('SELECT count(*), count(*) FILTER (WHERE aggr_position(%L, %s) IS DISTINCT FROM o.pos) FROM o',
                 a.agg, format(id_of, 'o.id'))
     INTO checks, mismatches;
  RETURN NEXT;
  kind := 'position_of';
  EXECUTE format($q$SELECT count(*), count(*) FILTER (WHERE aggr_position_of(%L, %s, %s, namespace => o.ns) IS DISTINCT FROM o.pos)
                      FROM o$q$, a.agg, format(key_of, 'o.id'), format(id_of, 'o.id'))
     INTO checks, mismatches;
  RETURN NEXT;
  -- another row's key with this id: no such entry
  kind := 'position_of (no entry)';
  EXECUTE format($q$SELECT count(*), count(*) FILTER (WHERE aggr_position_of(%L, %s, %s, namespace => x.ns) IS NOT NULL)
                      FROM o x JOIN o y ON y.ns IS NOT DISTINCT FROM x.ns AND y.pos = (x.pos + 7) %% x.n
                     WHERE x.before <> y.before$q$, a.agg, format(key_of, 'y.id'), format(id_of, 'x.id'))
     INTO checks, mismatches;
  RETURN NEXT;
  -- aggr_at within bounds, from the start and from the end
  kind := 'at (bounds, descending)';
  EXECUTE format($q$
    WITH e AS (
      SELECT c.*, k, dd, CASE WHEN k < 0 THEN k + greatest(hi - lo, 0) ELSE k END AS kr
        FROM cases c, unnest(ARRAY[0, 1, 3, -1, -2]) k, (VALUES (false), (true)) d(dd))
    SELECT count(*), count(*) FILTER (WHERE
             (SELECT (x.position, x.id) FROM aggr_at(%1$L, e.k, namespace => e.ns, lower => %2$s, upper => %3$s,
                                                     lower_inclusive => e.li, upper_inclusive => e.ui, descending => e.dd) x)
             IS DISTINCT FROM
             (SELECT (o.pos, o.id) FROM o WHERE o.ns IS NOT DISTINCT FROM e.ns
                 AND o.pos = CASE WHEN e.dd THEN e.hi - 1 - e.kr ELSE e.lo + e.kr END))
      FROM e WHERE kr >= 0 AND kr < hi - lo$q$, a.agg, format(key_of, 'e.r_id'), format(key_of, 'e.s_id'))
     INTO checks, mismatches;
  RETURN NEXT;
  -- aggr_page / aggr_page_rows within bounds: OFFSET k LIMIT 4 of the range
  kind := 'page (bounds, descending)';
  EXECUTE format($q$
    WITH e AS (
      SELECT c.*, k, dd, CASE WHEN k < 0 THEN k + greatest(hi - lo, 0) ELSE k END AS kr
        FROM cases c, unnest(ARRAY[0, 2, -3, 1000]) k, (VALUES (false), (true)) d(dd))
    SELECT count(*), count(*) FILTER (WHERE
             (SELECT array_agg(x.position || ':' || x.id ORDER BY ord)
                FROM aggr_page(%1$L, e.k, 4, namespace => e.ns, lower => %2$s, upper => %3$s,
                               lower_inclusive => e.li, upper_inclusive => e.ui, descending => e.dd)
                     WITH ORDINALITY x(position, id, key, sum_value, ord))
             IS DISTINCT FROM
             (SELECT array_agg(o.pos || ':' || o.id ORDER BY CASE WHEN e.dd THEN -o.pos ELSE o.pos END)
                FROM o WHERE o.ns IS NOT DISTINCT FROM e.ns
                 AND CASE WHEN e.dd THEN o.pos <= e.hi - 1 - e.kr AND o.pos >= greatest(e.lo, e.hi - e.kr - 4)
                          ELSE o.pos >= e.lo + e.kr AND o.pos < least(e.hi, e.lo + e.kr + 4) END)
             OR (e.k = 0 AND
                 (SELECT array_agg(%4$s::text ORDER BY ordinality)
                    FROM aggr_page_rows(%1$L, 0, 4, NULL::%5$s, namespace => e.ns, lower => %2$s, upper => %3$s,
                                        lower_inclusive => e.li, upper_inclusive => e.ui, descending => e.dd)
                         WITH ORDINALITY t
                  ) IS DISTINCT FROM
                 (SELECT array_agg(o.id ORDER BY CASE WHEN e.dd THEN -o.pos ELSE o.pos END)
                    FROM o WHERE o.ns IS NOT DISTINCT FROM e.ns
                     AND CASE WHEN e.dd THEN o.pos <= e.hi - 1 AND o.pos >= greatest(e.lo, e.hi - 4)
                              ELSE o.pos >= e.lo AND o.pos < least(e.hi, e.lo + 4) END)))
      FROM e WHERE kr >= 0 AND kr <= greatest(hi - lo, 0)$q$,
    a.agg, format(key_of, 'e.r_id'), format(key_of, 'e.s_id'),
    replace(a.idx, '(a, b)', '(t.a, t.b)'), a.tbl)
     INTO checks, mismatches;
  RETURN NEXT;
  -- keyset pages of 7 through a bounded range, both directions: the pages
  -- concatenated are the range in order, is_last only on the last one
  kind := 'paginate (bounds, cursor)';
  checks := 0;
  mismatches := 0;
  FOR c IN SELECT * FROM cases WHERE r_id::text LIKE '%3%' OR hi <= lo LOOP
    FOREACH d IN ARRAY ARRAY[false, true] LOOP
      SELECT coalesce(array_agg(o.id ORDER BY CASE WHEN d THEN -o.pos ELSE o.pos END), '{}') INTO expected
        FROM o WHERE o.ns IS NOT DISTINCT FROM c.ns AND o.pos >= c.lo AND o.pos < c.hi;
      got := '{}';
      cursor_id := NULL;
      pages := 0;
      good := true;
      LOOP
        EXECUTE format($q$
          SELECT coalesce(array_agg(x.id ORDER BY ord), '{}'), bool_and(x.is_last) AND bool_or(x.is_last)
            FROM aggr_paginate(%L, namespace => $1, lower => %s, upper => %s, lower_inclusive => $4, upper_inclusive => $5,
                               after_key => CASE WHEN $6 IS NOT NULL THEN %s END, after_id => %s,
                               page_size => 7, descending => $7)
                 WITH ORDINALITY x(position, id, key, sum_value, is_last, ord)$q$,
          a.agg, format(key_of, '$2'), format(key_of, '$3'), format(key_of, '$6'), format(id_of, '$6'))
          USING c.ns, c.r_id, c.s_id, c.li, c.ui, cursor_id, d
          INTO page, last;
        pages := pages + 1;
        got := got || page;
        EXIT WHEN cardinality(page) = 0 OR last OR pages > 200;
        good := good AND cardinality(page) = 7;  -- only the last page is short
        cursor_id := page[cardinality(page)];
      END LOOP;
      checks := checks + 1;
      IF got IS DISTINCT FROM expected OR NOT good OR (cardinality(page) = 0 AND pages > 1) THEN
        mismatches := mismatches + 1;
      END IF;
    END LOOP;
  END LOOP;
  RETURN NEXT;
END $f$;

-- Every aggregate: checks > 0, mismatches 0.
SELECT a.agg, c.kind, c.checks, c.mismatches
  FROM aggs a, convex_check(a) c ORDER BY a.agg, c.kind;

-- The SQL of the README: keyset pages written as plain SQL, on an integer
-- key without NULLs. Bounds of another type (numeric) mean SQL's
-- comparison; between pages rows move, appear and go: rows that did not
-- move are neither skipped nor repeated.
CREATE TABLE ks (id int PRIMARY KEY, k int NOT NULL);
INSERT INTO ks SELECT g, g % 13 FROM generate_series(1, 200) g;
SELECT aggr_create('ks_k', 'ks', 'k');
CREATE FUNCTION keyset_check(descending bool, OUT checks int, OUT mismatches int) LANGUAGE plpgsql AS $f$
DECLARE
  ck int;          -- cursor: last (k, id) seen
  ci int;
  page text[];
  want text[];
  last bool;
  n int := 0;
  base int := CASE WHEN descending THEN 10000 ELSE 1000 END;  -- ids of the rows it inserts
BEGIN
  checks := 0;
  mismatches := 0;
  LOOP
    SELECT coalesce(array_agg(p.key || '/' || p.id ORDER BY ord), '{}'), bool_or(p.is_last) INTO page, last
      FROM aggr_paginate('ks_k', lower => 2.5, upper => 10.0, upper_inclusive => false, after_key => ck, after_id => ci,
                         page_size => 9, descending => keyset_check.descending)
           WITH ORDINALITY p(position, id, key, sum_value, is_last, ord);
    IF NOT descending THEN
      SELECT coalesce(array_agg(k || '/' || id ORDER BY k, id), '{}') INTO want FROM (
        SELECT k, id FROM ks WHERE k > 2.5 AND k < 10.0 AND (ck IS NULL OR (k, id) > (ck, ci))
         ORDER BY k, id LIMIT 9) s;
    ELSE
      SELECT coalesce(array_agg(k || '/' || id ORDER BY k DESC, id DESC), '{}') INTO want FROM (
        SELECT k, id FROM ks WHERE k > 2.5 AND k < 10.0 AND (ck IS NULL OR (k, id) < (ck, ci))
         ORDER BY k DESC, id DESC LIMIT 9) s;
    END IF;
    checks := checks + 1;
    IF page IS DISTINCT FROM want THEN mismatches := mismatches + 1; END IF;
    EXIT WHEN cardinality(page) = 0 OR last;
    -- the next cursor from the last row's text (read as literals)
    SELECT split_part(page[cardinality(page)], '/', 1)::int, split_part(page[cardinality(page)], '/', 2)::int INTO ck, ci;
    -- writes between pages: rows before and after the cursor come and go
    n := n + 1;
    INSERT INTO ks VALUES (base + n, (n * 5) % 13), (base + 5000 + n, ck);
    DELETE FROM ks WHERE id = (SELECT min(id) FROM ks WHERE k = (n * 7) % 13 AND id < 1000);
    UPDATE ks SET k = (k + 4) % 13 WHERE id = 3 * n;
  END LOOP;
END $f$;
SELECT d AS descending, c.checks, c.mismatches FROM (VALUES (false), (true)) v(d), keyset_check(d) c;
-- text cursors: the previous page's last key and id, as returned
SELECT p1.id AS last_id, p1.key AS last_key,
       (SELECT array_agg(p2.id) FROM aggr_paginate('ks_k', after_key => p1.key, after_id => p1.id, page_size => 3) p2)
       = (SELECT array_agg(id::text ORDER BY k, id) FROM (SELECT k, id FROM ks WHERE (k, id) > (p1.key::int, p1.id::int)
                                                          ORDER BY k, id LIMIT 3) s) AS next_page_matches
  FROM aggr_paginate('ks_k', page_size => 5) p1 WHERE p1.position = 4;
-- a cursor by key alone: past every entry with that key
SELECT (SELECT array_agg(id) FROM aggr_paginate('ks_k', after_key => 4, page_size => 3))
       = (SELECT array_agg(id::text ORDER BY k, id) FROM (SELECT k, id FROM ks WHERE k > 4 ORDER BY k, id LIMIT 3) s)
       AS key_cursor_matches;
-- offset within a WHERE range, counted from either end
SELECT count(*) AS checks, count(*) FILTER (WHERE
         (SELECT id FROM aggr_at('ks_k', o, lower => 3.5, upper => 9) ) IS DISTINCT FROM
         (SELECT ks.id::text FROM ks WHERE k > 3.5 AND k <= 9 ORDER BY ks.k, ks.id OFFSET o LIMIT 1)
         OR (SELECT id FROM aggr_at('ks_k', o, lower => 3.5, upper => 9, descending => true)) IS DISTINCT FROM
            (SELECT ks.id::text FROM ks WHERE k > 3.5 AND k <= 9 ORDER BY ks.k DESC, ks.id DESC OFFSET o LIMIT 1)) AS mismatches
  FROM generate_series(0, (SELECT count(*) - 1 FROM ks WHERE k > 3.5 AND k <= 9)::int) o;

-- long descending pages (read backwards in chunks of 1000 entries)
INSERT INTO ks SELECT g, g % 13 FROM generate_series(20001, 23000) g;
SELECT (SELECT array_agg(id ORDER BY ord) FROM aggr_page('ks_k', 5, 2500, descending => true) WITH ORDINALITY p(position, id, key, sum_value, ord))
       = (SELECT array_agg(id::text ORDER BY k DESC, id DESC) FROM (SELECT k, id FROM ks ORDER BY k DESC, id DESC OFFSET 5 LIMIT 2500) s)
       AS long_descending_page_matches,
       (SELECT array_agg(id ORDER BY ord) FROM aggr_paginate('ks_k', lower => 2, after_key => 9, after_id => 21000, page_size => 3000,
                                                            descending => true) WITH ORDINALITY p(position, id, key, sum_value, is_last, ord))
       = (SELECT array_agg(id::text ORDER BY k DESC, id DESC) FROM (SELECT k, id FROM ks WHERE k >= 2 AND (k, id) < (9, 21000)
                                                                      ORDER BY k DESC, id DESC LIMIT 3000) s)
       AS long_descending_keyset_matches;

-- Positions by id: a missing row, a NULL id, text ids, ROW ids.
SELECT aggr_position('cv_asc', 100000) AS missing, aggr_position('cv_asc', NULL::int) AS null_id,
       aggr_position('cv_asc', '17') = (SELECT p FROM (SELECT id, row_number() OVER (ORDER BY score, id) - 1 AS p FROM cv) s WHERE id = 17) AS text_id,
       aggr_position('cm_multi', ROW(5, 'y, z')) = aggr_position_of('cm_multi', (SELECT ROW(k1, k2) FROM cm WHERE (a, b) = (5, 'y, z')),
                                                                  ROW(5, 'y, z')) AS row_id,
       aggr_position('cm_multi', ROW(5, 'nope')) AS missing_row_id;
-- a NULL key is a key: the NULL-keyed rows' positions
SELECT count(*) AS null_keyed, count(*) FILTER (WHERE aggr_position_of('cv_nf', NULL::int, id) IS DISTINCT FROM p) AS mismatches
  FROM (SELECT id, score, row_number() OVER (ORDER BY score NULLS FIRST, id) - 1 AS p FROM cv) s WHERE score IS NULL;

-- Errors.
SELECT aggr_position('cm_multi', 5);                         -- one field for a two-column primary key
SELECT aggr_position_of('cv_multi', 3, 1);                   -- part of a key
SELECT aggr_position_of('cv_ns', 3, 1);                      -- namespace missing
SELECT aggr_position('cv_asc', 1.5);                         -- id of another value
SELECT * FROM aggr_at('ks_k', 3, lower => 12.5);             -- offset out of range within the bounds
SELECT * FROM aggr_paginate('ks_k', page_size => -1);
SELECT * FROM aggr_paginate('ks_k', after_key => 3, after_id => ROW(1, 2));
SELECT * FROM aggr_paginate_rows('ks_k', NULL::cv);

-- Every 1.0 call form still resolves to one function.
SELECT (SELECT count(*) FROM aggr_at('cv_asc', 0)) + (SELECT count(*) FROM aggr_at('cv_asc', -1, NULL))
       + (SELECT count(*) FROM aggr_at('cv_ns', 0, 1)) + (SELECT count(*) FROM aggr_at('cv_ns', 0, namespace => 1))
       + (SELECT count(*) FROM aggr_page('cv_asc', 0, 2)) + (SELECT count(*) FROM aggr_page('cv_asc', 0, 2::int4))
       + (SELECT count(*) FROM aggr_page('cv_ns', 0, 2, 1)) + (SELECT count(*) FROM aggr_page('cv_ns', 0, 2, namespace => 1))
       + (SELECT count(*) FROM aggr_page_rows('cv_asc', 0, 2, NULL::cv))
       + (SELECT count(*) FROM aggr_page_rows('cv_ns', 0, 2, NULL::cv, 1))
       + (SELECT count(*) FROM aggr_page_rows('cv_ns', 0, 2, NULL::cv, namespace => 1)) AS rows;

-- Random entries: SQL's random() generator, so setseed() repeats them;
-- always inside the bounds; every entry of a small range drawn about
-- equally often; an empty range gives no row.
SELECT setseed(0.25);
CREATE TEMP TABLE draws1 AS SELECT g, r.* FROM generate_series(1, 2000) g CROSS JOIN LATERAL aggr_random('cv_asc', lower => 10 + 0 * g, upper => 11) r;
SELECT setseed(0.25);
CREATE TEMP TABLE draws2 AS SELECT g, r.* FROM generate_series(1, 2000) g CROSS JOIN LATERAL aggr_random('cv_asc', lower => 10 + 0 * g, upper => 11) r;
SELECT count(*) AS draws,
       count(*) FILTER (WHERE d1.key::int NOT BETWEEN 10 AND 11 OR aggr_position('cv_asc', d1.id::int) <> d1.position) AS out_of_range,
       count(*) FILTER (WHERE (d1.position, d1.id) IS DISTINCT FROM (d2.position, d2.id)) AS not_repeated
  FROM draws1 d1 JOIN draws2 d2 USING (g);
SELECT count(*) = (SELECT count(*) FROM cv WHERE score BETWEEN 10 AND 11) AS every_entry_drawn,
       min(n) > 2000.0 / count(*) / 2 AND max(n) < 2000.0 / count(*) * 2 AS about_uniform
  FROM (SELECT id, count(*) AS n FROM draws1 GROUP BY id) s;
SELECT count(*) AS empty_range FROM aggr_random('cv_asc', lower => 30, upper => 40);
SELECT count(*) = 1 AS one_row, bool_and(r.key::int BETWEEN 3 AND 4) AS in_namespace_range
  FROM aggr_random('cv_ns', namespace => 2, lower => 4, upper => 3) r;

-- Deferred mode with pending deltas (the merger paused), then this
-- transaction's own uncommitted changes on top.
ALTER SYSTEM SET aggr_ext.merge_deltas = off;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SELECT aggr_set_write_mode('cv_ns', 'deferred'), aggr_set_write_mode('cm_multi', 'deferred');
UPDATE cv SET score = (score + 3) % 25 WHERE id % 5 = 0;
DELETE FROM cv WHERE id % 17 = 0;
INSERT INTO cv SELECT g, g % 3, CASE WHEN g % 4 = 0 THEN NULL ELSE g % 25 END, 'n', g FROM generate_series(401, 460) g;
UPDATE cm SET k1 = (k1 + 1) % 6 WHERE a % 3 = 0;
INSERT INTO cm SELECT 100 + g, 'new', g % 6, 'm', g FROM generate_series(1, 30) g;
SELECT count(*) > 0 AS pending_deltas FROM aggr_internal.deltas;
SELECT a.agg, c.kind, c.checks, c.mismatches
  FROM aggs a, convex_check(a) c WHERE a.agg IN ('cv_ns', 'cm_multi', 'cv_asc') ORDER BY a.agg, c.kind;
BEGIN;
UPDATE cv SET score = NULL WHERE id % 7 = 1;
UPDATE cv SET game = (game + 1) % 3 WHERE id % 13 = 2;   -- moves between namespaces
DELETE FROM cm WHERE a % 5 = 1;
INSERT INTO cm SELECT 200 + g, 'own', g % 6, 'n', g FROM generate_series(1, 20) g;
SELECT a.agg, c.kind, c.checks, c.mismatches
  FROM aggs a, convex_check(a) c WHERE a.agg IN ('cv_ns', 'cm_multi', 'cv_asc') ORDER BY a.agg, c.kind;
ROLLBACK;
ALTER SYSTEM RESET aggr_ext.merge_deltas;
SELECT pg_reload_conf();
