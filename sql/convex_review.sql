-- Adversarial review of the Convex-style read API, each case against plain SQL.
SET client_min_messages = warning;
CREATE TABLE rv (id int PRIMARY KEY, k int, g int NOT NULL);
INSERT INTO rv SELECT i, CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 23 END, i % 3 FROM generate_series(1, 300) i;
SELECT aggr_create('rv_asc', 'rv', key => 'k', build => 'now');
SELECT aggr_create('rv_desc', 'rv', key => 'k DESC NULLS LAST', build => 'now');

-- 1. A page whose offset is past the end of a bounded range is empty
-- (it returned entries beyond the upper bound, or before the lower one when
-- descending). Oracle: WHERE <range> ORDER BY ... OFFSET .. LIMIT ..
CREATE FUNCTION rv_page_ok(n text, spec text, lo int, hi int, off int8, lim int8, dsc bool) RETURNS bool
LANGUAGE plpgsql AS $$
DECLARE got text; want text; cmp_lo text; cmp_hi text;
BEGIN
  SELECT string_agg(id, ',' ORDER BY ord) INTO got
    FROM aggr_page(n, off, lim, lower => lo, upper => hi, descending => dsc) WITH ORDINALITY p(position, id, key, sv, ord);
  cmp_lo := CASE WHEN spec = 'k' THEN '>=' ELSE '<=' END;
  cmp_hi := CASE WHEN spec = 'k' THEN '<=' ELSE '>=' END;
  EXECUTE format('SELECT string_agg(id::text, '','' ORDER BY r) FROM (SELECT id, row_number() OVER () r FROM
                    (SELECT id FROM rv WHERE k %s $1 AND k %s $2 ORDER BY %s OFFSET $3 LIMIT $4) s) x',
                 cmp_lo, cmp_hi,
                 CASE WHEN spec = 'k' AND NOT dsc THEN 'k, id' WHEN spec = 'k' THEN 'k DESC, id DESC'
                      WHEN NOT dsc THEN 'k DESC NULLS LAST, id' ELSE 'k NULLS FIRST, id DESC' END)
    INTO want USING lo, hi, off, lim;
  IF got IS DISTINCT FROM want THEN RAISE WARNING '% lo % hi % off % lim % dsc %: got % want %', n, lo, hi, off, lim, dsc, got, want; END IF;
  RETURN got IS NOT DISTINCT FROM want;
END $$;
-- k in [3, 5]: 36 entries; offsets at, just past and far past the end, both directions.
SELECT count(*) FROM rv WHERE k BETWEEN 3 AND 5;
SELECT off, dsc, rv_page_ok('rv_asc', 'k', 3, 5, off, 10, dsc) AS asc_ok, rv_page_ok('rv_desc', 'k DESC', 5, 3, off, 10, dsc) AS desc_ok
  FROM unnest(ARRAY[0, 30, 35, 36, 37, 45, 100, 290, 9223372036854775807]::int8[]) off, (VALUES (false), (true)) d(dsc)
 ORDER BY dsc, off;
-- the same as whole rows
SELECT count(*) AS rows_past_end FROM aggr_page_rows('rv_asc', 40, 10, NULL::rv, lower => 3, upper => 5);
SELECT count(*) AS rows_past_end_desc FROM aggr_page_rows('rv_asc', 40, 10, NULL::rv, lower => 3, upper => 5, descending => true);

-- 2. Untyped parameters passed by name out of declaration order are typed
-- as the positional ones are (were left unknown: 42P18 "could not determine
-- data type of parameter $1"). Oracle: the same calls with typed values.
PREPARE rv_named AS SELECT aggr_count(lower => $1, name => 'rv_asc');
EXECUTE rv_named('3');
SELECT aggr_count('rv_asc', lower => 3) AS want, count(*) FILTER (WHERE k >= 3 OR k IS NULL) AS sql FROM rv;  -- NULL keys sort last
PREPARE rv_keyset AS SELECT id FROM aggr_paginate(page_size => 3, descending => true, name => 'rv_asc', after_key => $1, after_id => $2);
EXECUTE rv_keyset(5, 101);
SELECT id FROM rv WHERE (k, id) < (5, 101) ORDER BY k DESC, id DESC LIMIT 3;
DEALLOCATE rv_named;
DEALLOCATE rv_keyset;
-- ... and so are untyped parameters in ROW(...): multi-column keys and
-- primary keys (were 42P18 too).
CREATE TABLE rv_multi (p1 int, p2 text, a int, b text, PRIMARY KEY (p1, p2));
INSERT INTO rv_multi SELECT i % 7, 'x' || (i % 13), i % 4, chr(97 + i % 5) FROM generate_series(1, 91) i;
SELECT aggr_create('rv_multi', 'rv_multi', key => 'a, b DESC', build => 'now');
PREPARE rv_row_position AS SELECT aggr_position('rv_multi', ROW($1, $2));
EXECUTE rv_row_position(1, 'x1');
SELECT pos AS sql FROM (SELECT p1, p2, row_number() OVER (ORDER BY a, b DESC, p1, p2) - 1 AS pos FROM rv_multi) s
 WHERE (p1, p2) = (1, 'x1');
PREPARE rv_row_keyset AS
  SELECT id FROM aggr_paginate('rv_multi', after_key => ROW($1, $2), after_id => ROW($3, $4), page_size => 3);
EXECUTE rv_row_keyset(1, 'c', 1, 'x1');
SELECT (p1, p2) AS id FROM rv_multi WHERE a > 1 OR a = 1 AND (b < 'c' OR b = 'c' AND (p1, p2) > (1, 'x1'))
 ORDER BY a, b DESC, p1, p2 LIMIT 3;
DEALLOCATE rv_row_position;
DEALLOCATE rv_row_keyset;

-- 3. aggr_aggregates and aggr_progress hide other roles' aggregates even
-- from a leaky function in the caller's own query (the views had no
-- security_barrier: the caller's condition ran below their filter, on
-- every row of aggr_internal). Oracle: the rows the function saw, counted.
CREATE TABLE rv_hidden (id int PRIMARY KEY, v int);
SELECT aggr_create('rv_hidden_aggr', 'rv_hidden', key => 'v', build => 'now');
SELECT aggr_rebuild('rv_hidden_aggr', background => false);  -- a job row for aggr_progress
CREATE ROLE rv_snoop;
CREATE TABLE rv_seen (name text);
GRANT INSERT ON rv_seen TO rv_snoop;
CREATE FUNCTION rv_leak(text) RETURNS bool LANGUAGE sql COST 0.0000001
  AS $$ INSERT INTO rv_seen VALUES ($1) RETURNING true $$;
GRANT EXECUTE ON FUNCTION rv_leak(text) TO rv_snoop;
SET ROLE rv_snoop;
SELECT count(*) FROM aggr_aggregates WHERE rv_leak(name);
SELECT count(*) FROM aggr_progress WHERE rv_leak(name);
RESET ROLE;
SELECT count(*) AS hidden_rows_seen FROM rv_seen WHERE name LIKE 'rv%';
DROP FUNCTION rv_leak(text);
REVOKE ALL ON rv_seen FROM rv_snoop;
DROP ROLE rv_snoop;

-- 4. Whole rows written before ALTER TABLE ... ADD COLUMN ... DEFAULT show
-- the default, as SELECT does (they showed NULL: the stored tuple is
-- shorter than the table), beside a dropped column. Oracle: EXCEPT ALL
-- both ways against SELECT.
CREATE TABLE rv_rows (id int PRIMARY KEY, k int, gone text);
INSERT INTO rv_rows SELECT i, i % 4, 'x' FROM generate_series(1, 8) i;
SELECT aggr_create('rv_rows', 'rv_rows', key => 'k', build => 'now');
ALTER TABLE rv_rows DROP COLUMN gone;
ALTER TABLE rv_rows ADD COLUMN extra int DEFAULT 42, ADD COLUMN note text DEFAULT 'hello';
INSERT INTO rv_rows VALUES (9, 1, 7, 'new');
SELECT count(*) AS differences FROM (
  (SELECT * FROM aggr_page_rows('rv_rows', 0, 100, NULL::rv_rows) EXCEPT ALL SELECT * FROM rv_rows)
  UNION ALL
  (SELECT * FROM rv_rows EXCEPT ALL SELECT * FROM aggr_page_rows('rv_rows', 0, 100, NULL::rv_rows))
  UNION ALL
  (SELECT * FROM aggr_paginate_rows('rv_rows', NULL::rv_rows, page_size => 100, descending => true) EXCEPT ALL SELECT * FROM rv_rows)) d;
SELECT * FROM aggr_page_rows('rv_rows', 0, 3, NULL::rv_rows);

-- 5. The key text a page returns, passed back as the cursor, continues
-- exactly after that entry whatever extra_float_digits is (at 0 floats were
-- written rounded: 0.3 for 0.30000000000000004, and the next page repeated
-- entries). Oracle: ORDER BY x, id over the table.
CREATE TABLE rv_fl (id int PRIMARY KEY, x float8);
INSERT INTO rv_fl SELECT i, (i / 3)::float8 * 0.1::float8 + 0.2::float8 FROM generate_series(1, 30) i;
SELECT aggr_create('rv_fl', 'rv_fl', key => 'x', build => 'now');
SET extra_float_digits = 0;
CREATE FUNCTION rv_walk(dsc bool) RETURNS text LANGUAGE plpgsql AS $$
DECLARE ak text; aid text; r record; n int; seen text := '';
BEGIN
  LOOP
    n := 0;
    FOR r IN SELECT * FROM aggr_paginate('rv_fl', after_key => ak, after_id => aid, page_size => 4, descending => dsc) LOOP
      seen := seen || r.id || ','; ak := r.key; aid := r.id; n := n + 1;
    END LOOP;
    EXIT WHEN n < 4;
  END LOOP;
  RETURN seen;
END $$;
SELECT rv_walk(false) = (SELECT string_agg(id || ',', '' ORDER BY x, id) FROM rv_fl) AS ascending_same,
       rv_walk(true) = (SELECT string_agg(id || ',', '' ORDER BY x DESC, id DESC) FROM rv_fl) AS descending_same;
SELECT key FROM aggr_at('rv_fl', 3);
RESET extra_float_digits;
