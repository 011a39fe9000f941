-- A second differential of the planner (src/pg/planner.cpp) against the
-- normal plan, over key types and bounds sql/planner.sql does not draw:
-- float8 keys with NaN, -0 and infinities, numeric keys with NaN, int4 keys
-- against int8 / int2 values (beyond the int4 range too), bigint keys
-- against int4, an expression key (lower(t)) against text, name and
-- varchar values, $1 bounds, OFFSET / LIMIT with $1, NULL, ALL and 0.
-- Each query runs with the planner on and off in the same transaction,
-- with this transaction's changes, pending or flushed; errors compare too.
-- A page whose ORDER BY stops before the primary key compares its keys
-- only (SQL leaves the order of ties open).
LOAD 'aggr_ext';
SET client_min_messages = warning;
CREATE TABLE dt (id int PRIMARY KEY, ns int NOT NULL, k int, kb bigint, kf float8, kn numeric(8,2), t text, s2 int2 NOT NULL, s8 int8 NOT NULL, sn numeric(10,3) NOT NULL, w int);
INSERT INTO dt SELECT i, i % 3, CASE WHEN i % 17 = 0 THEN NULL ELSE (i * 37) % 300 END,
  CASE WHEN i % 13 = 0 THEN NULL ELSE ((i * 53) % 400 - 200)::bigint * 10000000000 END,
  CASE WHEN i % 11 = 0 THEN NULL WHEN i % 29 = 0 THEN 'NaN' WHEN i % 31 = 0 THEN '-0' WHEN i % 37 = 0 THEN 0 ELSE ((i * 71) % 500) / 7.0 END,
  CASE WHEN i % 19 = 0 THEN NULL ELSE ((i * 7) % 800) / 4.0 END,
  CASE WHEN i % 23 = 0 THEN NULL ELSE chr(65 + (i * 7) % 26) || chr(97 + (i * 3) % 26) END,
  (i % 300)::int2, i::int8 * 1000000000000, (i % 97) / 8.0, i % 9
FROM generate_series(1, 4000) i;
SELECT aggr_create('dt_k', 'dt'::regclass, key => 'k DESC', sum_value => 's2', build => 'now');
SELECT aggr_create('dt_kb', 'dt'::regclass, key => 'kb', sum_value => 's8', namespace => 'ns', build => 'now');
SELECT aggr_create('dt_kf', 'dt'::regclass, key => 'kf', sum_value => 'sn', build => 'now');
SELECT aggr_create('dt_kn', 'dt'::regclass, key => 'kn NULLS FIRST, ns', build => 'now');
SELECT aggr_create('dt_t', 'dt'::regclass, key => 'lower(t) DESC', build => 'now');
ANALYZE dt;
SET client_min_messages = notice;
CREATE FUNCTION pg_temp.rnd(n int) RETURNS int LANGUAGE sql AS $$ SELECT floor(random() * n)::int $$;
CREATE FUNCTION pg_temp.fval(c text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF pg_temp.rnd(20) = 0 THEN RETURN 'NULL'; END IF;
  RETURN CASE c
    WHEN 'k' THEN (ARRAY[(pg_temp.rnd(320) - 10)::text, (pg_temp.rnd(320) - 10)::text || '::int8', (pg_temp.rnd(320)-10)::text || '::int2', '3000000000::int8', '(-3000000000)::int8', '$1'])[1 + pg_temp.rnd(6)]
    WHEN 'kb' THEN (ARRAY[((pg_temp.rnd(400) - 200)::bigint * 10000000000)::text, (pg_temp.rnd(100) - 50)::text || '::int4', '$1::int8'])[1 + pg_temp.rnd(3)]
    WHEN 'kf' THEN (ARRAY[(pg_temp.rnd(800) / 7.0)::float8::text || '::float8', '''NaN''::float8', '''-0''::float8', '0::float4', (pg_temp.rnd(80)/3.0)::float4::text || '::float4', '''Infinity''::float8', '''-Infinity''::float4'])[1 + pg_temp.rnd(7)]
    WHEN 'kn' THEN (ARRAY[(pg_temp.rnd(900) / 4.0)::text, (pg_temp.rnd(900)/3.0)::numeric(10,3)::text, '''NaN''::numeric'])[1 + pg_temp.rnd(3)]
    ELSE quote_literal(lower(chr(64 + pg_temp.rnd(28)) || CASE WHEN pg_temp.rnd(2) = 0 THEN chr(97 + pg_temp.rnd(26)) ELSE '' END)) || (ARRAY['', '::text', '::name', '::varchar'])[1 + pg_temp.rnd(4)]
  END;
END $$;
CREATE FUNCTION pg_temp.fquery(OUT q text, OUT param int) LANGUAGE plpgsql AS $$
DECLARE
  c text := (ARRAY['k', 'kb', 'kf', 'kn', 't'])[1 + pg_temp.rnd(5)];
  e text;
  ops text[] := ARRAY['<', '<=', '=', '>=', '>'];
  conds text[] := '{}';
  calls text[] := ARRAY['count(*)'];
  sumcol text;
BEGIN
  e := CASE c WHEN 't' THEN 'lower(t)' ELSE c END;
  param := pg_temp.rnd(300) - 5;
  FOR i IN 1 .. pg_temp.rnd(3) LOOP
    conds := conds || CASE pg_temp.rnd(7)
      WHEN 0 THEN format('%s BETWEEN %s AND %s', e, pg_temp.fval(c), pg_temp.fval(c))
      WHEN 1 THEN format('%s IS %sNULL', e, CASE WHEN pg_temp.rnd(2) = 0 THEN 'NOT ' ELSE '' END)
      WHEN 2 THEN format('%s %s %s', pg_temp.fval(c), ops[1 + pg_temp.rnd(5)], e)
      ELSE format('%s %s %s', e, ops[1 + pg_temp.rnd(5)], pg_temp.fval(c)) END;
  END LOOP;
  IF c = 'kb' THEN conds := conds || format('ns = %s', pg_temp.rnd(4)); END IF;
  sumcol := CASE c WHEN 'k' THEN 's2' WHEN 'kb' THEN 's8' WHEN 'kf' THEN 'sn' ELSE NULL END;
  IF pg_temp.rnd(2) = 0 AND c <> 't' THEN calls := calls || format('min(%s)', e) || format('max(%s)', e); END IF;
  IF sumcol IS NOT NULL AND pg_temp.rnd(2) = 0 THEN calls := calls || format('sum(%s)', sumcol); END IF;
  IF pg_temp.rnd(3) = 0 THEN calls := calls || format('percentile_disc(%s) WITHIN GROUP (ORDER BY %s %s)', (ARRAY['0','0.3','0.5','1','0.999'])[1 + pg_temp.rnd(5)], e, (ARRAY['', 'DESC'])[1 + pg_temp.rnd(2)]); END IF;
  IF pg_temp.rnd(2) = 0 THEN
    q := format('SELECT id, %s FROM dt', e);
  ELSE
    q := 'SELECT ' || array_to_string(calls, ', ') || ' FROM dt';
  END IF;
  IF cardinality(conds) > 0 THEN q := q || ' WHERE ' || array_to_string(conds, ' AND '); END IF;
  IF q LIKE 'SELECT id,%' THEN
    q := q || CASE c
      WHEN 'k' THEN (ARRAY[' ORDER BY k DESC, id', ' ORDER BY k, id DESC', ' ORDER BY k DESC', ' ORDER BY k NULLS LAST'])[1 + pg_temp.rnd(4)]
      WHEN 'kb' THEN (ARRAY[' ORDER BY kb, id', ' ORDER BY kb DESC, id DESC', ' ORDER BY kb DESC NULLS LAST, id DESC'])[1 + pg_temp.rnd(3)]
      WHEN 'kf' THEN (ARRAY[' ORDER BY kf, id', ' ORDER BY kf DESC, id DESC'])[1 + pg_temp.rnd(2)]
      WHEN 'kn' THEN (ARRAY[' ORDER BY kn NULLS FIRST, ns, id', ' ORDER BY kn DESC NULLS LAST, ns DESC, id DESC', ' ORDER BY kn NULLS FIRST, ns'])[1 + pg_temp.rnd(3)]
      ELSE (ARRAY[' ORDER BY lower(t) DESC, id', ' ORDER BY lower(t) NULLS FIRST, id DESC'])[1 + pg_temp.rnd(2)] END;
    q := q || format(' OFFSET %s LIMIT %s', (ARRAY[pg_temp.rnd(100)::text, '$1', 'NULL'])[1 + pg_temp.rnd(3)], (ARRAY[(1 + pg_temp.rnd(10))::text, '$1 % 7', 'ALL', 'NULL', '0'])[1 + pg_temp.rnd(5)]);
  END IF;
END $$;
CREATE FUNCTION pg_temp.fcheck(q text, p int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE a text; b text; plan text; ea text; eb text; agg text := 'row(r.*)::text';
BEGIN
  IF q LIKE '%ORDER BY%' AND q NOT LIKE '%, id%' THEN agg := '(to_jsonb(r) - ''id'')::text'; END IF;
  SET LOCAL aggr_ext.enable_planner = on;
  BEGIN
    EXECUTE 'EXPLAIN (COSTS OFF) ' || replace(q, '$1', p::text) INTO plan;
    EXECUTE 'SELECT array_agg(' || agg || ') FROM (' || q || ') r' INTO a USING p;
  EXCEPTION WHEN OTHERS THEN ea := SQLERRM; END;
  SET LOCAL aggr_ext.enable_planner = off;
  BEGIN
    EXECUTE 'SELECT array_agg(' || agg || ') FROM (' || q || ') r' INTO b USING p;
  EXCEPTION WHEN OTHERS THEN eb := SQLERRM; END;
  IF a IS DISTINCT FROM b OR ea IS DISTINCT FROM eb THEN
    RAISE NOTICE 'MISMATCH % [$1=%]: on % % / off % %', q, p, left(a, 200), ea, left(b, 200), eb;
    RETURN 1000;
  END IF;
  RETURN (plan LIKE '%AggrExt%')::int;
END $$;
SELECT setseed(0.3);
BEGIN;
DO $$
DECLARE r record; n int := 0; used int := 0; bad int := 0; x int;
BEGIN
  FOR i IN 1 .. 600 LOOP
    SELECT * INTO r FROM pg_temp.fquery();
    IF i % 40 = 0 THEN
      DECLARE j int := 1 + pg_temp.rnd(3900); BEGIN
      CASE pg_temp.rnd(3)
        WHEN 0 THEN UPDATE dt SET k = CASE WHEN k IS NULL THEN 7 ELSE NULL END, kb = kb + 1, kf = 'NaN', kn = NULL, t = 'zz' WHERE id BETWEEN j AND j + 20;
        WHEN 1 THEN DELETE FROM dt WHERE id BETWEEN j AND j + 10;
        ELSE INSERT INTO dt (id, ns, k, kb, kf, kn, t, s2, s8, sn) SELECT 500000 + i * 10 + g, g % 3, g * 10, g, g / 3.0, g, 'q' || g, g, g, g FROM generate_series(1, 5) g;
      END CASE;
      IF pg_temp.rnd(2) = 0 THEN PERFORM aggr_count('dt_k'); END IF;
      END;
    END IF;
    x := pg_temp.fcheck(r.q, r.param);
    n := n + 1; IF x = 1 THEN used := used + 1; END IF; IF x >= 1000 THEN bad := bad + 1; END IF;
  END LOOP;
  RAISE NOTICE 'queries %, mismatches %, the node planned for over half: %', n, bad, used > n / 2;
END $$;
ROLLBACK;
DROP TABLE dt;
