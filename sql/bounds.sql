-- Bounds and rank keys of another type than the key mean exactly what the
-- same comparison means in SQL (`key > 500.7`, `key >= lower AND key <=
-- upper`), never a rounded cast. Randomized but deterministic (setseed)
-- differential check against plain SQL over the same rows.
SELECT setseed(0.4242);
CREATE TABLE bk (
    id  int PRIMARY KEY,
    k2  int2,
    k4  int4,
    k8  int8,
    kn  numeric,
    kf4 float4,
    kf8 float8,
    v   int
);
INSERT INTO bk
SELECT g,
       CASE WHEN r < 0.05 THEN NULL WHEN r < 0.08 THEN (ARRAY[-32768, 32767])[1 + g % 2]::int2
            ELSE floor(random() * 600 - 300)::int2 END,
       CASE WHEN r < 0.05 THEN NULL WHEN r < 0.08 THEN (ARRAY[-2147483648, 2147483647])[1 + g % 2]::int4
            ELSE floor(random() * 2000 - 1000)::int4 END,
       CASE WHEN r < 0.05 THEN NULL WHEN r < 0.08 THEN (ARRAY[-9223372036854775808, 9223372036854775807])[1 + g % 2]::int8
            WHEN r < 0.14 THEN 9007199254740992 + floor(random() * 8 - 4)::int8   -- 2^53: float8 rounds here
            WHEN r < 0.18 THEN 4611686018427387904 + floor(random() * 2000 - 1000)::int8
            ELSE floor(random() * 2000 - 1000)::int8 END,
       CASE WHEN r < 0.05 THEN NULL WHEN r < 0.08 THEN (ARRAY['NaN', 'Infinity', '-Infinity'])[1 + g % 3]::numeric
            WHEN r < 0.10 THEN 1e-20 * (g % 7 - 3)
            ELSE round((random() * 2000 - 1000)::numeric, g % 4) END,
       CASE WHEN r < 0.05 THEN NULL
            WHEN r < 0.10 THEN (ARRAY['NaN', 'Infinity', '-Infinity', '-0', '1e-45', '3.4e38', '0.1', '-0.5'])[1 + g % 8]::float4
            ELSE round((random() * 2000 - 1000)::numeric, g % 3)::float4 END,
       CASE WHEN r < 0.05 THEN NULL
            WHEN r < 0.10 THEN (ARRAY['NaN', 'Infinity', '-Infinity', '-0', '5e-324', '1e300', '0.1', '0.3'])[1 + g % 8]::float8
            ELSE round((random() * 2000 - 1000)::numeric, g % 3)::float8 END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE floor(random() * 100)::int END
  FROM (SELECT g, random() AS r FROM generate_series(1, 600) g) s;
-- the data the checks run over: NULLs, duplicates, range edges, float specials
SELECT count(*) AS rows, count(DISTINCT k4) AS k4_values, count(*) FILTER (WHERE k8 > 9007199254740000) AS big_k8,
       count(*) FILTER (WHERE kf8 = 'NaN' OR kf4 = 'NaN' OR kn = 'NaN') AS nans, count(*) FILTER (WHERE kf8 IS NULL) AS null_kf8
  FROM bk;

-- Candidate bounds: values from the data, next to them, and at the edges of
-- every type's range; each bound type gets those that cast to it.
CREATE TABLE bound_text (val text);
INSERT INTO bound_text
SELECT DISTINCT x FROM (
    SELECT unnest(ARRAY[k2::text, k4::text, k8::text, kn::text, kf4::text, kf8::text,
                        (kn + 0.5)::text, (k4 - 0.5)::text, (kf8 + 0.25)::text, (k8::numeric + 0.5)::text]) AS x
      FROM bk WHERE id % 67 = 0
    UNION ALL
    SELECT unnest(ARRAY['0', '-0', '0.5', '-0.5', '0.1', '0.3', '1e-20', '1e-45', '1e-320', '32767', '32767.5', '32768',
                        '-32768', '-32768.5', '-32769', '2147483647', '2147483647.5', '2147483648', '-2147483648.5',
                        '-2147483649', '3000000000', '9007199254740992', '9007199254740993', '9007199254740993.5',
                        '4611686018427387904.5', '9223372036854775807', '9223372036854775807.5',
                        '9223372036854775808', '-9223372036854775809', '1e30', '-1e30', '3.4e38', '3.5e38',
                        '1e300', '-1e300', 'NaN', 'Infinity', '-Infinity', '500.7', '700.5', '300.5'])) c
 WHERE x IS NOT NULL;
CREATE TABLE bounds (btype text, n int, val text);
DO $$
DECLARE t text; r record; i int;
BEGIN
  FOREACH t IN ARRAY ARRAY['int2', 'int4', 'int8', 'numeric', 'float4', 'float8'] LOOP
    i := 0;
    FOR r IN SELECT val FROM bound_text ORDER BY val COLLATE "C" LOOP
      BEGIN
        EXECUTE format('SELECT %L::%s', r.val, t);
        INSERT INTO bounds VALUES (t, i, r.val);
        i := i + 1;
      EXCEPTION WHEN others THEN NULL;  -- not a value of that type
      END;
    END LOOP;
  END LOOP;
END $$;
SELECT btype, count(*) AS bounds FROM bounds GROUP BY 1 ORDER BY 1;

-- One aggregate per key column and order; sums of v over each.
CREATE TABLE bound_aggs (agg text, col text, spec text, is_desc bool, nulls_first bool);
INSERT INTO bound_aggs
SELECT 'b_' || col || '_' || o.name, col, col || o.spec, o.is_desc, o.nulls_first
  FROM unnest(ARRAY['k2', 'k4', 'k8', 'kn', 'kf4', 'kf8']) col,
       (VALUES ('asc', '', false, false), ('desc', ' DESC', true, true),
               ('asc_nf', ' NULLS FIRST', false, true), ('desc_nl', ' DESC NULLS LAST', true, false)) o(name, spec, is_desc, nulls_first)
 WHERE o.name IN ('asc', 'desc') OR col IN ('k4', 'kf8');
SELECT count(*) AS aggregates FROM (SELECT aggr_create(agg, 'bk'::regclass, key => spec, sum_value => 'v') FROM bound_aggs) c;

-- checks / mismatches of one aggregate against bounds of one type:
-- aggr_rank of every bound, aggr_count and aggr_sum with one bound (both
-- inclusivities) and with two (every inclusive combination).
CREATE FUNCTION bound_check(a bound_aggs, btype text, OUT checks bigint, OUT mismatches bigint) LANGUAGE plpgsql AS $f$
DECLARE
  lt text := CASE WHEN a.is_desc THEN '>' ELSE '<' END;  -- "comes before" in the aggregate's order
  gt text := CASE WHEN a.is_desc THEN '<' ELSE '>' END;
  null_before text := CASE WHEN a.nulls_first THEN 'true' ELSE 'false' END;
  before text;  -- %1$s: column, %2$s: bound
  lower_in text;
  upper_in text;
BEGIN
  before := format('(%%1$s %s %%2$s OR (%%1$s IS NULL AND %s))', lt, null_before);
  lower_in := format('(CASE WHEN li THEN %%1$s %s= %%2$s ELSE %%1$s %s %%2$s END OR (%%1$s IS NULL AND NOT %s))', gt, gt, null_before);
  upper_in := format('(CASE WHEN ui THEN %%1$s %s= %%2$s ELSE %%1$s %s %%2$s END OR (%%1$s IS NULL AND %s))', lt, lt, null_before);
  EXECUTE format($q$
    WITH b AS (SELECT n, val::%2$s AS b FROM bounds WHERE btype = %3$L),
    nb AS (SELECT count(*) AS cnt FROM b),
    pairs AS (SELECT b1.b AS lo, b2.b AS hi FROM b b1, b b2, nb
               WHERE b2.n = (b1.n * 17 + 5) %% nb.cnt),
    incl AS (SELECT x AS li, y AS ui FROM (VALUES (true), (false)) l(x), (VALUES (true), (false)) u(y)),
    ranks AS (
      SELECT aggr_rank(%1$L, b.b) IS DISTINCT FROM 1 + (SELECT count(*) FROM bk WHERE %4$s) AS bad FROM b),
    one_sided AS (
      SELECT aggr_count(%1$L, lower => b.b, lower_inclusive => li) IS DISTINCT FROM o.lc
             OR aggr_sum(%1$L, lower => b.b, lower_inclusive => li) IS DISTINCT FROM o.ls AS bad_lower,
             aggr_count(%1$L, upper => b.b, upper_inclusive => ui) IS DISTINCT FROM o.uc
             OR aggr_sum(%1$L, upper => b.b, upper_inclusive => ui) IS DISTINCT FROM o.us AS bad_upper
        FROM b, incl,
             LATERAL (SELECT count(*) FILTER (WHERE %5$s) AS lc, coalesce(sum(v) FILTER (WHERE %5$s), 0) AS ls,
                             count(*) FILTER (WHERE %6$s) AS uc, coalesce(sum(v) FILTER (WHERE %6$s), 0) AS us
                        FROM bk) o
       WHERE li = ui),
    two_sided AS (
      SELECT aggr_count(%1$L, lower => lo, upper => hi, lower_inclusive => li, upper_inclusive => ui) IS DISTINCT FROM o.c
             OR aggr_sum(%1$L, lower => lo, upper => hi, lower_inclusive => li, upper_inclusive => ui) IS DISTINCT FROM o.s AS bad
        FROM pairs, incl,
             LATERAL (SELECT count(*) AS c, coalesce(sum(v), 0) AS s FROM bk WHERE %7$s AND %8$s) o)
    SELECT (SELECT count(*) FROM ranks) + 2 * (SELECT count(*) FROM one_sided) + (SELECT count(*) FROM two_sided),
           (SELECT count(*) FILTER (WHERE bad) FROM ranks)
           + (SELECT count(*) FILTER (WHERE bad_lower) + count(*) FILTER (WHERE bad_upper) FROM one_sided)
           + (SELECT count(*) FILTER (WHERE bad) FROM two_sided)$q$,
    a.agg, btype, btype,
    format(before, a.col, 'b.b'), format(lower_in, a.col, 'b.b'), format(upper_in, a.col, 'b.b'),
    format(lower_in, a.col, 'lo'), format(upper_in, a.col, 'hi'))
  INTO checks, mismatches;
EXCEPTION WHEN others THEN  -- an error is a failed check of every kind
  checks := 0;
  mismatches := -1;
END $f$;

-- Every key type against bounds of every numeric type: checks must be > 0,
-- mismatches 0 (-1: a check raised an error).
SELECT a.col AS key, t.btype AS bound, sum(c.checks) AS checks, sum(c.mismatches) AS mismatches
  FROM bound_aggs a, unnest(ARRAY['int2', 'int4', 'int8', 'numeric', 'float4', 'float8']) t(btype),
       LATERAL bound_check(a, t.btype) c
 GROUP BY 1, 2 ORDER BY 1, 2;

-- Deferred aggregates: the same checks over pending deltas (the changes of
-- this open transaction cannot have been merged).
SELECT count(aggr_set_write_mode(agg, 'deferred')) AS deferred FROM bound_aggs WHERE col = 'k4';
BEGIN;
UPDATE bk SET k4 = k4 / 2 + 1, v = v + 1 WHERE id % 5 = 0;
DELETE FROM bk WHERE id % 11 = 0;
INSERT INTO bk (id, k4, v)
SELECT 1000 + g, (ARRAY[NULL, -2147483648, 2147483647, 500, 501, 700, 300])[1 + g % 7], g FROM generate_series(1, 40) g;
SELECT a.col AS key, t.btype AS bound, sum(c.checks) AS checks, sum(c.mismatches) AS mismatches
  FROM bound_aggs a, unnest(ARRAY['int2', 'int4', 'int8', 'numeric', 'float4', 'float8']) t(btype),
       LATERAL bound_check(a, t.btype) c
 WHERE a.col = 'k4'
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) > 0 AS deltas_pending FROM aggr_internal.deltas;
COMMIT;

-- Multi-column keys: ROW bounds and prefixes of other types (k4 DESC NULLS
-- FIRST, then kf8 NULLS LAST).
SELECT aggr_create('b_multi', 'bk'::regclass, key => 'k4 DESC, kf8', sum_value => 'v');
WITH b1 AS (SELECT val::numeric AS b1 FROM bounds WHERE btype = 'numeric'
            UNION SELECT k4 + d FROM bk, (VALUES (0), (0.5)) v(d) WHERE id % 37 = 0 AND k4 IS NOT NULL),
     b2 AS (SELECT val::numeric AS b2 FROM bounds WHERE btype = 'numeric' AND n % 7 = 0),
     checks AS (
       SELECT aggr_rank('b_multi', ROW(b1, b2)) IS DISTINCT FROM
                1 + (SELECT count(*) FROM bk WHERE k4 IS NULL OR k4 > b1 OR (k4 = b1 AND kf8 < b2)) AS bad
         FROM b1, b2
       UNION ALL
       SELECT aggr_rank('b_multi', ROW(b1::float8)) IS DISTINCT FROM
                1 + (SELECT count(*) FROM bk WHERE k4 IS NULL OR k4 > b1::float8)
         FROM b1
       UNION ALL
       SELECT aggr_count('b_multi', lower => ROW(b1), upper => ROW(b1 - 100, b2), lower_inclusive => false) IS DISTINCT FROM
                (SELECT count(*) FROM bk WHERE k4 < b1 AND (k4 > b1 - 100 OR (k4 = b1 - 100 AND kf8 <= b2)))
         FROM b1, b2)
SELECT count(*) > 0 AS checked, count(*) FILTER (WHERE bad) AS mismatches FROM checks;

-- The cases from the report, on an int key ordered DESC.
SELECT aggr_rank('b_k4_desc', 500.7) = 1 + (SELECT count(*) FROM bk WHERE k4 > 500.7 OR k4 IS NULL) AS rank_fraction,
       aggr_count('b_k4_desc', lower => 700.5, upper => 300.5) = (SELECT count(*) FROM bk WHERE k4 BETWEEN 300.5 AND 700.5) AS count_fraction,
       aggr_count('b_k4_desc', upper => 3000000000, upper_inclusive => false) = (SELECT count(*) FROM bk WHERE k4 IS NULL) AS huge_bound,
       aggr_rank('b_k4_asc', 3000000000::int8) = 1 + (SELECT count(*) FROM bk WHERE k4 IS NOT NULL) AS huge_rank;
-- untyped literals are still read as the key type, and so is text (what
-- drivers' untyped parameters arrive as)
SELECT aggr_rank('b_k4_asc', '500') = 1 + (SELECT count(*) FROM bk WHERE k4 < 500) AS untyped_literal,
       aggr_count('b_k4_desc', lower => '500'::text, upper => 300::text) = (SELECT count(*) FROM bk WHERE k4 BETWEEN 300 AND 500) AS text_bounds;
SELECT aggr_rank('b_k4_asc', '500.7');
SELECT aggr_rank('b_k4_asc', '500.7'::text);
-- a typed value SQL cannot compare with the key and that has no cast to it
-- is refused, naming the type
SELECT aggr_rank('b_k4_asc', true);

-- numeric(p,s) keys: a bound with more decimals is not rounded to the scale
CREATE TABLE money_rows (id int PRIMARY KEY, amount numeric(8,2));
INSERT INTO money_rows SELECT g, g / 100.0 FROM generate_series(1, 500) g;
SELECT aggr_create('by_amount', 'money_rows'::regclass, key => 'amount');
SELECT aggr_rank('by_amount', 1.005) = 1 + (SELECT count(*) FROM money_rows WHERE amount < 1.005) AS rank_scale,
       aggr_count('by_amount', lower => '1.005', upper => 2.005::float8) = (SELECT count(*) FROM money_rows WHERE amount >= 1.005 AND amount <= 2.005::float8) AS count_scale;

-- timestamps, timestamptz and dates compare across types as in SQL
CREATE TABLE events (id int PRIMARY KEY, at timestamp, day date);
INSERT INTO events SELECT g, timestamp '2024-01-01' + g * interval '7 hours 13 minutes 1.5 seconds', date '2024-01-01' + g / 3
  FROM generate_series(1, 600) g;
SELECT aggr_create('by_at', 'events'::regclass, key => 'at DESC');
SELECT aggr_create('by_day', 'events'::regclass, key => 'day');
SET TimeZone = 'Asia/Kolkata';
WITH b AS (SELECT timestamp '2024-02-01 10:30:00.25' + g * interval '3 days 5 hours' AS ts FROM generate_series(0, 40) g),
     checks AS (
       SELECT aggr_rank('by_at', ts::timestamptz) IS DISTINCT FROM 1 + (SELECT count(*) FROM events WHERE at > ts::timestamptz) AS bad FROM b
       UNION ALL SELECT aggr_rank('by_at', ts::date) IS DISTINCT FROM 1 + (SELECT count(*) FROM events WHERE at > ts::date) FROM b
       UNION ALL SELECT aggr_count('by_at', lower => ts, upper => ts::date, upper_inclusive => false) IS DISTINCT FROM
                          (SELECT count(*) FROM events WHERE at <= ts AND at > ts::date) FROM b
       UNION ALL SELECT aggr_rank('by_day', ts) IS DISTINCT FROM 1 + (SELECT count(*) FROM events WHERE day < ts) FROM b
       UNION ALL SELECT aggr_count('by_day', lower => ts::timestamptz, lower_inclusive => false) IS DISTINCT FROM
                          (SELECT count(*) FROM events WHERE day > ts::timestamptz) FROM b)
SELECT count(*) > 0 AS checked, count(*) FILTER (WHERE bad) AS mismatches FROM checks;
RESET TimeZone;

-- varchar and char(n) keys against text, name and varchar bounds
CREATE TABLE words (id int PRIMARY KEY, s varchar(10), c char(5));
INSERT INTO words SELECT g, chr(65 + g % 26) || g, chr(65 + g % 26) || (g % 10) FROM generate_series(1, 300) g;
SELECT aggr_create('by_s', 'words'::regclass, key => 's'), aggr_create('by_c', 'words'::regclass, key => 'c DESC');
SELECT aggr_rank('by_s', 'M5'::text) = 1 + (SELECT count(*) FROM words WHERE s < 'M5'::text) AS varchar_text,
       aggr_rank('by_s', 'M5'::name) = 1 + (SELECT count(*) FROM words WHERE s < 'M5'::name) AS varchar_name,
       aggr_rank('by_s', 'M5xxxxxxxxxxxxxxxxx') = 1 + (SELECT count(*) FROM words WHERE s < 'M5xxxxxxxxxxxxxxxxx') AS longer_than_typmod,
       aggr_rank('by_c', 'M5'::text) = 1 + (SELECT count(*) FROM words WHERE c > 'M5'::text) AS char_text,
       aggr_count('by_c', lower => 'Q'::varchar, upper => 'C'::text) = (SELECT count(*) FROM words WHERE c BETWEEN 'C'::text AND 'Q'::varchar) AS char_range;
SELECT aggr_rank('by_c', 'M5 '::varchar) = 1 + (SELECT count(*) FROM words WHERE c > 'M5 '::varchar) AS char_varchar_spaces;

-- a namespace that would change in conversion is refused, an exact one is read
CREATE TABLE ns_rows (id int PRIMARY KEY, grp int, score int);
INSERT INTO ns_rows SELECT g, g % 3, g FROM generate_series(1, 30) g;
SELECT aggr_create('by_grp', 'ns_rows'::regclass, key => 'score', namespace => 'grp');
SELECT aggr_count('by_grp', namespace => 2::int8) AS exact_namespace;
SELECT aggr_count('by_grp', namespace => 1.5);

SELECT aggr_drop(name) FROM aggr_aggregates WHERE name LIKE 'b\_%' OR name IN ('by_amount', 'by_at', 'by_day', 'by_grp', 'by_s', 'by_c');
DROP FUNCTION bound_check(bound_aggs, text);
DROP TABLE bk, bound_text, bounds, bound_aggs, money_rows, events, words, ns_rows;
