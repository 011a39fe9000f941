-- The planner answers plain SQL from a matching aggregate (src/pg/planner.cpp).
-- The other suites run with aggr_ext.enable_planner = off (Makefile: their
-- oracles are plain SQL); here it is on, and plain SQL with it off is the oracle.
LOAD 'aggr_ext';
SET aggr_ext.enable_planner = on;
SET client_min_messages = warning;
CREATE TABLE pl (id int PRIMARY KEY, g int NOT NULL, k int, v int NOT NULL, w int);
INSERT INTO pl SELECT i, i % 5, CASE WHEN i % 23 = 0 THEN NULL ELSE (i * 7919) % 1000 END, i % 100, i % 7
  FROM generate_series(1, 3000) i;
SELECT aggr_create('pl_k', 'pl'::regclass, key => 'k DESC', sum_value => 'v', build => 'now');
SELECT aggr_create('pl_g', 'pl'::regclass, key => 'k', sum_value => 'v', namespace => 'g', build => 'now');
ANALYZE pl;

-- ---------------------------------------------------------------- what is matched
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > 500;
EXPLAIN (COSTS OFF) SELECT count(*), sum(v), min(k), max(k), count(id) FROM pl WHERE k BETWEEN 10 AND 20;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE 500 >= k AND k IS NOT NULL;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE g = 3 AND k < 100;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > now()::date - '2000-01-01'::date;  -- stable: evaluated at execution
EXPLAIN (COSTS OFF) SELECT count(*) + 1 AS n FROM pl;
EXPLAIN (COSTS OFF) SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY k), percentile_disc(0.9) WITHIN GROUP (ORDER BY k DESC) FROM pl WHERE k > 10;
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY k), percentile_disc(0.9) WITHIN GROUP (ORDER BY k DESC) FROM pl WHERE k > 10;
SELECT percentile_disc(1.5) WITHIN GROUP (ORDER BY k) FROM pl;  -- SQL's error, from the normal plan
-- pages of whole rows in the aggregate's order (or its reverse)
EXPLAIN (COSTS OFF) SELECT * FROM pl ORDER BY k DESC, id OFFSET 1000 LIMIT 5;
SELECT * FROM pl ORDER BY k DESC, id OFFSET 1000 LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id, k * 2 AS twice FROM pl WHERE g = 2 AND k > 300 ORDER BY k DESC, id DESC LIMIT 3 OFFSET $$2$$::int;
SELECT id, k * 2 AS twice FROM pl WHERE g = 2 AND k > 300 ORDER BY k DESC, id DESC LIMIT 3 OFFSET 2;
EXPLAIN (COSTS OFF) SELECT id FROM pl ORDER BY k LIMIT 3;  -- the reverse, without the primary key (ties: id descending)
-- costed by its rows (a probe each): a page of most of the table is the normal plan's
EXPLAIN (COSTS OFF) SELECT * FROM pl ORDER BY k DESC, id OFFSET 10;
-- not matched: the normal plan
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > 500 OR k < 10;           -- OR
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE w > 3;                       -- not the key
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k::numeric > 500.5;          -- not the key expression
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > random() * 1000;         -- volatile
EXPLAIN (COSTS OFF) SELECT count(w) FROM pl;                                   -- w may be NULL
EXPLAIN (COSTS OFF) SELECT sum(w) FROM pl;                                     -- not the sum_value
EXPLAIN (COSTS OFF) SELECT min(w) FROM pl;
EXPLAIN (COSTS OFF) SELECT percentile_disc(ARRAY[0.5]) WITHIN GROUP (ORDER BY k) FROM pl;
EXPLAIN (COSTS OFF) SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY k) FROM pl;
EXPLAIN (COSTS OFF) SELECT count(*) FILTER (WHERE v > 3) FROM pl;
EXPLAIN (COSTS OFF) SELECT count(DISTINCT k) FROM pl;
EXPLAIN (COSTS OFF) SELECT g, count(*) FROM pl GROUP BY g;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl a JOIN pl b USING (id);
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE g = 3 AND g = 4;            -- two namespaces
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl TABLESAMPLE SYSTEM (50);
EXPLAIN (COSTS OFF) SELECT count(*) OVER () FROM pl;
EXPLAIN (COSTS OFF) SELECT * FROM pl ORDER BY k DESC, id DESC LIMIT 5 OFFSET 10;  -- mixed directions
EXPLAIN (COSTS OFF) SELECT * FROM pl ORDER BY k DESC NULLS LAST, id LIMIT 5;      -- NULLs on the other side
EXPLAIN (COSTS OFF) SELECT * FROM pl ORDER BY k DESC, id;                         -- no OFFSET / LIMIT
EXPLAIN (COSTS OFF) SELECT * FROM pl ORDER BY k DESC, id LIMIT 5 FOR UPDATE;
EXPLAIN (COSTS OFF) SELECT random(), id FROM pl ORDER BY k DESC, id LIMIT 5;
EXPLAIN (COSTS OFF) SELECT * FROM pl ORDER BY k DESC, id FETCH FIRST 5 ROWS WITH TIES;
-- the aggregate's trigger disabled: it misses changes, so it answers nothing
SELECT format('ALTER TABLE pl %s TRIGGER aggr_ext_%s', 'DISABLE', aggr_id) AS disable,
       format('ALTER TABLE pl %s TRIGGER aggr_ext_%s', 'ENABLE ALWAYS', aggr_id) AS enable
  FROM aggr_internal.aggregates WHERE name = 'pl_k' \gset
:disable;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > 500;
:enable;
-- its TRUNCATE trigger disabled: a TRUNCATE would leave the tree full
SELECT format('ALTER TABLE pl %s TRIGGER aggr_ext_%s_truncate', 'DISABLE', aggr_id) AS disable_truncate,
       format('ALTER TABLE pl %s TRIGGER aggr_ext_%s_truncate', 'ENABLE ALWAYS', aggr_id) AS enable_truncate
  FROM aggr_internal.aggregates WHERE name = 'pl_k' \gset
:disable_truncate;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > 500;
CREATE TABLE pl_copy AS SELECT * FROM pl;
BEGIN;
TRUNCATE pl;
INSERT INTO pl SELECT * FROM pl_copy WHERE id <= 10;
SELECT count(*) FROM pl WHERE k > 500;  -- the normal plan's 6, not the tree's
ROLLBACK;
DROP TABLE pl_copy;
:enable_truncate;
SET aggr_ext.enable_planner = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > 500;
SET aggr_ext.enable_planner = on;  -- not RESET: the suites start with it off (Makefile)

-- a cursor declared without SCROLL fetches backward when its plan can (a
-- page's normal plan, a Limit over a Sort, can): the node must too
BEGIN;
EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id, k FROM pl WHERE k > 900 ORDER BY k DESC, id LIMIT 5;
DECLARE c CURSOR FOR SELECT id, k FROM pl WHERE k > 900 ORDER BY k DESC, id LIMIT 5;
FETCH 3 FROM c;
FETCH BACKWARD 1 FROM c;
FETCH ALL FROM c;
FETCH BACKWARD 2 FROM c;
FETCH BACKWARD ALL FROM c;
COMMIT;
SET aggr_ext.enable_planner = off;
SELECT id, k FROM pl WHERE k > 900 ORDER BY k DESC, id LIMIT 5;  -- the oracle
SET aggr_ext.enable_planner = on;

-- a SCROLL cursor rewound after this transaction wrote (the normal plan
-- would answer a new read): the rows it already gave, in the same order of
-- equal keys (the ORDER BY stops before the primary key)
BEGIN;
DECLARE s SCROLL CURSOR FOR SELECT id, k FROM pl WHERE k >= 995 ORDER BY k DESC LIMIT 8;
FETCH 4 FROM s;
INSERT INTO pl VALUES (10001, 1, 1, 1, 1);
FETCH ABSOLUTE 1 FROM s;
FETCH ALL FROM s;
ROLLBACK;
-- and the other way: first read by the normal plan (changes pending), rewound once they are flushed
BEGIN;
INSERT INTO pl VALUES (10001, 1, 1, 1, 1);
DECLARE s SCROLL CURSOR FOR SELECT id, k FROM pl WHERE k >= 995 ORDER BY k DESC LIMIT 8;
FETCH 4 FROM s;
SELECT aggr_count('pl_k') > 0 AS flushed;
FETCH ABSOLUTE 1 FROM s;
FETCH ALL FROM s;
ROLLBACK;

-- a query planned inside a parallel query (a PARALLEL SAFE function's, run
-- by a worker): the normal plan, no error
CREATE FUNCTION planner_in_worker(lo int) RETURNS text LANGUAGE plpgsql PARALLEL SAFE STABLE AS $$
BEGIN
  RETURN concat_ws(' ', (SELECT count(*) FROM pl WHERE k > lo),
                   (SELECT string_agg(id::text, ',') FROM (SELECT id FROM pl ORDER BY k DESC, id OFFSET lo LIMIT 3) s));
END $$;
SELECT planner_in_worker(500);  -- planned outside: the aggregate
SET force_parallel_mode = on;
SELECT planner_in_worker(500);
EXPLAIN (COSTS OFF) SELECT planner_in_worker(500);
RESET force_parallel_mode;
DROP FUNCTION planner_in_worker(int);

-- sum(): NULL over no rows, as SQL says; int4 sums are bigint
SELECT count(*), sum(v), pg_typeof(sum(v)), min(k), max(k) FROM pl WHERE k > 5000;
SELECT count(*), sum(v), pg_typeof(sum(v)), min(k), max(k) FROM pl WHERE k = 10;

-- ---------------------------------------------------------------- differential
-- Random queries, each run with the planner on and off in the same
-- transaction (with this transaction's own changes, and inside
-- subtransactions that roll back): the results must be identical, and the
-- custom node must really have answered some of them.
CREATE TABLE dkeys (id bigint PRIMARY KEY, ns int NOT NULL, ki int, kb bigint, kn numeric(8,2), kt text, kc text COLLATE "C",
                    s int NOT NULL, sn numeric(10,2) NOT NULL);
INSERT INTO dkeys SELECT i, i % 4,
       CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 200 END,
       CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 53) % 300 - 150 END,
       CASE WHEN i % 17 = 0 THEN NULL ELSE ((i * 71) % 1000) / 4.0 END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE chr(65 + (i * 7) % 26) || chr(97 + (i * 3) % 26) END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE chr(65 + (i * 5) % 26) || chr(97 + (i * 11) % 26) END,
       i % 50, (i % 300) / 8.0
  FROM generate_series(1, 1500) i;
SELECT aggr_create('d_ki', 'dkeys'::regclass, key => 'ki', sum_value => 's', build => 'now');
SELECT aggr_create('d_kb', 'dkeys'::regclass, key => 'kb DESC', sum_value => 's', namespace => 'ns', build => 'now');
SELECT aggr_create('d_kn', 'dkeys'::regclass, key => 'kn NULLS FIRST, id', sum_value => 'sn', build => 'now');
SELECT aggr_create('d_kt', 'dkeys'::regclass, key => 'kt DESC NULLS LAST', namespace => 'ns', build => 'now');
SELECT aggr_create('d_kc', 'dkeys'::regclass, key => 'kc', sum_value => 'sn', build => 'now');
SELECT aggr_set_write_mode('d_kb', 'deferred');
ANALYZE dkeys;

CREATE FUNCTION pg_temp.rnd(n int) RETURNS int LANGUAGE sql AS $$ SELECT floor(random() * n)::int $$;
-- A random value for a condition on column c (NULL now and then).
CREATE FUNCTION pg_temp.val(c text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF pg_temp.rnd(25) = 0 THEN RETURN 'NULL'; END IF;
  RETURN CASE c
    WHEN 'ki' THEN (pg_temp.rnd(220) - 10)::text
    WHEN 'kb' THEN CASE WHEN pg_temp.rnd(2) = 0 THEN (pg_temp.rnd(320) - 160)::text ELSE (pg_temp.rnd(320) - 160)::text || '::bigint' END
    WHEN 'kn' THEN (pg_temp.rnd(1100) / 4.0)::text
    ELSE quote_literal(chr(64 + pg_temp.rnd(28)) || CASE WHEN pg_temp.rnd(2) = 0 THEN chr(97 + pg_temp.rnd(26)) ELSE '' END)
  END;
END $$;
-- A random query over dkeys: conditions on one key column (and its
-- aggregate's namespace), random aggregate calls.
CREATE FUNCTION pg_temp.random_query() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  c text := (ARRAY['ki', 'kb', 'kn', 'kt', 'kc'])[1 + pg_temp.rnd(5)];
  ops text[] := ARRAY['<', '<=', '=', '>=', '>'];
  conds text[] := '{}';
  calls text[] := ARRAY['count(*)'];
  q text;
BEGIN
  FOR i IN 1 .. pg_temp.rnd(3) LOOP
    conds := conds || CASE pg_temp.rnd(8)
      WHEN 0 THEN format('%s BETWEEN %s AND %s', c, pg_temp.val(c), pg_temp.val(c))
      WHEN 1 THEN format('%s IS %sNULL', c, CASE WHEN pg_temp.rnd(2) = 0 THEN 'NOT ' ELSE '' END)
      WHEN 2 THEN format('%s %s %s', pg_temp.val(c), ops[1 + pg_temp.rnd(5)], c)
      ELSE format('%s %s %s', c, ops[1 + pg_temp.rnd(5)], pg_temp.val(c)) END;
  END LOOP;
  IF c IN ('kb', 'kt') OR pg_temp.rnd(6) = 0 THEN
    conds := conds || format('ns = %s', pg_temp.rnd(5));
  END IF;
  IF pg_temp.rnd(2) = 0 THEN calls := calls || format('min(%s)', c) || format('max(%s)', c); END IF;
  IF pg_temp.rnd(2) = 0 THEN calls := calls || CASE WHEN c IN ('kn', 'kc') THEN 'sum(sn)' ELSE 'sum(s)' END; END IF;
  IF pg_temp.rnd(3) = 0 THEN calls := calls || 'count(id)'::text; END IF;
  IF pg_temp.rnd(3) = 0 THEN
    calls := calls || format('percentile_disc(%s) WITHIN GROUP (ORDER BY %s %s)',
                             (ARRAY['0', '0.25', '0.5', '0.37', '0.999', '1', 'NULL::float8'])[1 + pg_temp.rnd(7)], c,
                             (ARRAY['', 'DESC'])[1 + pg_temp.rnd(2)]);
  END IF;
  IF pg_temp.rnd(2) = 0 THEN  -- a page of rows
    q := 'SELECT id, ns, ' || c || ' FROM dkeys';
  ELSE
    q := 'SELECT ' || array_to_string(calls, ', ') || ' FROM dkeys';
  END IF;
  IF cardinality(conds) > 0 THEN q := q || ' WHERE ' || array_to_string(conds, ' AND '); END IF;
  IF q LIKE 'SELECT id, ns,%' THEN
    q := q || format(' ORDER BY %s %s %s, id %s', c, (ARRAY['', 'ASC', 'DESC'])[1 + pg_temp.rnd(3)],
                     (ARRAY['', 'NULLS FIRST', 'NULLS LAST'])[1 + pg_temp.rnd(3)], (ARRAY['', 'DESC'])[1 + pg_temp.rnd(2)]);
    q := q || format(' OFFSET %s LIMIT %s', pg_temp.rnd(60), CASE WHEN pg_temp.rnd(10) = 0 THEN 'ALL' ELSE (1 + pg_temp.rnd(12))::text END);
  END IF;
  RETURN q;
END $$;
CREATE TABLE pg_temp.tally (queries int DEFAULT 0, custom int DEFAULT 0, custom_rows int DEFAULT 0, mismatches int DEFAULT 0);
INSERT INTO pg_temp.tally DEFAULT VALUES;
-- Runs q with the planner on and off: 1 when the custom node answered it
-- (2 when it returned rows),
-- 100000 when the answers differ (a count that survives rolled-back subtransactions).
CREATE FUNCTION pg_temp.check(q text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  on_result text;
  off_result text;
  plan text;
BEGIN
  SET LOCAL aggr_ext.enable_planner = on;
  EXECUTE 'EXPLAIN (COSTS OFF, FORMAT JSON) ' || q INTO plan;  -- one row
  EXECUTE 'SELECT array_agg(row(r.*)::text) FROM (' || q || ') r' INTO on_result;
  SET LOCAL aggr_ext.enable_planner = off;
  EXECUTE 'SELECT array_agg(row(r.*)::text) FROM (' || q || ') r' INTO off_result;
  SET LOCAL aggr_ext.enable_planner = on;
  IF on_result IS DISTINCT FROM off_result THEN
    RAISE NOTICE 'mismatch: % gives % with the planner, % without', q, on_result, off_result;
  END IF;
  RETURN (plan LIKE '%AggrExtScan%')::int + (plan LIKE '%AggrExtScan%"Order": %')::int + 100000 * (on_result IS DISTINCT FROM off_result)::int;
END $$;
CREATE FUNCTION pg_temp.record(outcomes int[]) RETURNS void LANGUAGE sql AS $$
  UPDATE pg_temp.tally SET queries = queries + cardinality(outcomes),
         custom = custom + (SELECT count(*) FROM unnest(outcomes) o WHERE o % 100000 >= 1),
         custom_rows = custom_rows + (SELECT count(*) FROM unnest(outcomes) o WHERE o % 100000 = 2),
         mismatches = mismatches + (SELECT count(*) FROM unnest(outcomes) o WHERE o >= 100000) $$;
-- Random changes of this transaction's own (flushed before the next read).
CREATE FUNCTION pg_temp.random_changes() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  i int := 1 + pg_temp.rnd(1500);
BEGIN
  CASE pg_temp.rnd(3)
    WHEN 0 THEN UPDATE dkeys SET ki = CASE WHEN ki IS NULL THEN 7 ELSE NULL END, kb = kb + 1, kt = 'Zz', kc = 'Aa', kn = NULL
                 WHERE id BETWEEN i AND i + 20;
    WHEN 1 THEN DELETE FROM dkeys WHERE id BETWEEN i AND i + 10;
    ELSE INSERT INTO dkeys SELECT 100000 + i * 100 + j, j % 4, j, j - 5, j / 2.0, 'Q' || j, 'q' || j, j, j
           FROM generate_series(1, 5) j ON CONFLICT DO NOTHING;
  END CASE;
  -- Pending changes leave the reads to the normal plan (a plain SELECT
  -- must not flush them: that could wait for other writers); flushed ones
  -- the node reads. Half the time, flush them (an aggr_* read does).
  IF pg_temp.rnd(2) = 0 THEN PERFORM aggr_count('d_ki'); END IF;
END $$;

SET client_min_messages = notice;
SELECT setseed(0.42);
BEGIN;
DO $$
DECLARE
  outcomes int[] := '{}';
BEGIN
  FOR round IN 1 .. 6 LOOP
    FOR i IN 1 .. 40 LOOP outcomes := outcomes || pg_temp.check(pg_temp.random_query()); END LOOP;
    PERFORM pg_temp.random_changes();
    BEGIN  -- a subtransaction that rolls back: its changes must vanish from both answers
      PERFORM pg_temp.random_changes();
      FOR i IN 1 .. 10 LOOP outcomes := outcomes || pg_temp.check(pg_temp.random_query()); END LOOP;
      RAISE EXCEPTION 'roll back';
    EXCEPTION WHEN raise_exception THEN
      NULL;
    END;
  END LOOP;
  PERFORM pg_temp.record(outcomes);
END $$;
COMMIT;  -- this transaction's changes, committed: more queries over them
DO $$
DECLARE
  outcomes int[] := '{}';
BEGIN
  FOR i IN 1 .. 60 LOOP outcomes := outcomes || pg_temp.check(pg_temp.random_query()); END LOOP;
  PERFORM pg_temp.record(outcomes);
END $$;
SELECT mismatches, queries, custom > queries / 4 AS custom_used, custom_rows > queries / 20 AS custom_rows_used FROM pg_temp.tally;

-- ---------------------------------------------------------------- parameters
-- The same shapes as prepared statements, with forced generic plans ($n
-- evaluated by the node at execution) and forced custom plans: each pair
-- of functions differs only in the planner setting its statements were planned with.
DO $do$
DECLARE
  body text := $b$
DECLARE a bigint; b bigint; x bigint; y bigint; p text; q text; m numeric; n2 numeric;
BEGIN
  SELECT count(*), sum(s) INTO a, tot FROM dkeys WHERE ki >= lo AND ki < hi;
  SELECT count(*), min(kb), max(kb) INTO b, x, y FROM dkeys WHERE ns = n AND kb > lo;
  SELECT min(kt), max(kt) INTO p, q FROM dkeys WHERE ns = n AND kt < t;
  SELECT min(kn), max(kn) INTO m, n2 FROM dkeys WHERE kn BETWEEN lo AND hi;
  SELECT percentile_disc(least(1, abs(lo) / 200.0)) WITHIN GROUP (ORDER BY kb DESC) INTO x FROM dkeys WHERE ns = n AND kb < hi;
  mn := x::text;
  SELECT string_agg(r.id::text, ',') INTO p FROM (SELECT id FROM dkeys WHERE ns = n AND kt >= t ORDER BY kt DESC NULLS LAST, id
                                                 OFFSET lo + 10 LIMIT hi + 10) r;
  q := concat(q, '|', p);
  c := a * 1000000 + b;
  mn := concat_ws('/', mn, x, p, m);
  mx := concat_ws('/', y, q, n2);
END $b$;
  setting record;
BEGIN
  FOR setting IN SELECT * FROM (VALUES ('on'), ('off')) a(planner), (VALUES ('force_generic_plan'), ('force_custom_plan')) b(mode) LOOP
    EXECUTE format('CREATE FUNCTION pg_temp.%I(lo int, hi bigint, n int, t text, OUT c bigint, OUT tot numeric, OUT mn text, OUT mx text) '
                   'LANGUAGE plpgsql SET aggr_ext.enable_planner = %s SET plan_cache_mode = %s AS %L',
                   'by_params_' || setting.planner || '_' || setting.mode, setting.planner, setting.mode, body);
  END LOOP;
END $do$;
SELECT setseed(0.7);
BEGIN;
DO $$
DECLARE
  args record;
  differ int := 0;
  runs int := 0;
BEGIN
  FOR round IN 1 .. 4 LOOP
    FOR i IN 1 .. 30 LOOP
      SELECT pg_temp.rnd(220) - 10 AS lo, pg_temp.rnd(220)::bigint - 10 AS hi, pg_temp.rnd(5) AS n,
             CASE WHEN pg_temp.rnd(10) = 0 THEN NULL ELSE chr(65 + pg_temp.rnd(26)) END AS t INTO args;
      runs := runs + 1;
      IF pg_temp.by_params_on_force_generic_plan(args.lo, args.hi, args.n, args.t) IS DISTINCT FROM
         pg_temp.by_params_off_force_generic_plan(args.lo, args.hi, args.n, args.t)
         OR pg_temp.by_params_on_force_custom_plan(args.lo, args.hi, args.n, args.t) IS DISTINCT FROM
         pg_temp.by_params_off_force_custom_plan(args.lo, args.hi, args.n, args.t) THEN
        differ := differ + 1;
        RAISE NOTICE 'mismatch for %', args;
      END IF;
    END LOOP;
    PERFORM pg_temp.random_changes();
  END LOOP;
  RAISE NOTICE 'parameter runs: %, mismatches: %', runs, differ;
END $$;
ROLLBACK;
-- the generic plan really is the custom node, with the parameters in it
PREPARE gen(int, int) AS SELECT count(*), sum(s), min(kb) FROM dkeys WHERE ns = $1 AND kb <= $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE gen(2, 40);

-- ---------------------------------------------------------------- fallback
-- A plan kept across changes of the aggregate (a prepared statement's
-- generic plan): when the aggregate cannot answer at execution, the
-- normal plan kept under the node answers instead.
PREPARE oracle(int, int) AS SELECT count(*), sum(s), min(kb) FROM dkeys WHERE ns = $1 AND kb <= $2;
SET aggr_ext.enable_planner = off;
EXECUTE oracle(2, 40);  -- planned without the node: the oracle
SET aggr_ext.enable_planner = on;
EXECUTE gen(2, 40);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE gen(2, 40);
-- cleared: needs_backfill, the tree is empty
SELECT aggr_clear('d_kb');
EXECUTE gen(2, 40);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE gen(2, 40);
-- building (a background job not stepped yet)
CALL aggr_backfill('d_kb', background => false);
SELECT state FROM aggr_status('d_kb');
EXECUTE gen(2, 40);
DO $$ BEGIN WHILE aggr_job_step('d_kb') LOOP END LOOP; END $$;
SELECT state FROM aggr_status('d_kb');
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE gen(2, 40);
EXECUTE gen(2, 40);
-- another write mode: still the aggregate, still exact
SELECT aggr_set_write_mode('d_kb', 'direct');
EXECUTE gen(2, 40);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE gen(2, 40);
-- dropped (its triggers go: the plan is made again, without the node)
SELECT aggr_drop('d_kb');
EXECUTE gen(2, 40);
EXPLAIN (COSTS OFF) EXECUTE gen(2, 40);
-- created again with another order: the node again, reading the new aggregate
SELECT aggr_create('d_kb', 'dkeys'::regclass, key => 'kb', sum_value => 's', namespace => 'ns', build => 'now');
EXECUTE gen(2, 40);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE gen(2, 40);
EXECUTE oracle(2, 40);

-- a page of rows, the same way
PREPARE page(int, int) AS SELECT id, ki FROM dkeys WHERE ki > $1 ORDER BY ki, id OFFSET $2 LIMIT 4;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE page(50, 100);
EXECUTE page(50, 100);
-- the same page in a subquery: its parent reads the fallback's rows too
PREPARE page_in_subquery(int, int) AS
  SELECT r.id, r.ki FROM (SELECT id, ns, ki FROM dkeys WHERE ki > $1 ORDER BY ki, id OFFSET $2 LIMIT 4) r;
EXECUTE page_in_subquery(50, 100);
SELECT aggr_clear('d_ki');
EXECUTE page_in_subquery(50, 100);
CREATE FUNCTION pg_temp.answered_by(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY SELECT trim(line) FROM pg_temp.explain_analyze(q) line WHERE line LIKE '%Answered by%';
END $$;
CREATE FUNCTION pg_temp.explain_analyze(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q;
END $$;
-- turned off: a plan cached with the node runs its normal plan
SET aggr_ext.enable_planner = off;
SELECT pg_temp.answered_by('EXECUTE gen(2, 40)');
EXECUTE gen(2, 40);
SET aggr_ext.enable_planner = on;
SELECT pg_temp.answered_by('EXECUTE page(50, 100)');  -- (the sort's memory use would differ from one machine to another)
EXECUTE page(50, 100);
EXECUTE page(50, -1);  -- SQL's own error, from the normal plan
RESET plan_cache_mode;

-- ---------------------------------------------------------------- privileges and row-level security
CREATE ROLE planner_reader;
CREATE ROLE planner_owner;
ALTER TABLE pl OWNER TO planner_owner;
SET ROLE planner_reader;
SELECT count(*) FROM pl WHERE k > 500;  -- no SELECT: the executor's own error
RESET ROLE;
GRANT SELECT (k) ON pl TO planner_reader;
SET ROLE planner_reader;
-- a column grantee: the aggregate also reveals columns it may not read, so the normal plan answers
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM pl WHERE k > 500;
SELECT count(*) FROM pl WHERE k > 500;
RESET ROLE;
GRANT SELECT ON pl TO planner_reader;
SET ROLE planner_reader;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM pl WHERE k > 500;
SELECT count(*) FROM pl WHERE k > 500;
PREPARE as_reader AS SELECT count(*) FROM pl WHERE k > 500;
SET plan_cache_mode = force_generic_plan;
EXECUTE as_reader;
RESET ROLE;
-- through a view of the table's owner, by a role that may read the view
-- only: the executor checks the table as the view's owner, and so does the node
CREATE ROLE planner_viewer;
CREATE VIEW pl_view AS SELECT * FROM pl;
ALTER VIEW pl_view OWNER TO planner_owner;
GRANT SELECT ON pl_view TO planner_viewer;
SET ROLE planner_viewer;
SELECT pg_temp.answered_by('SELECT count(*) FROM pl_view WHERE k > 500');
SELECT count(*) FROM pl_view WHERE k > 500;
SELECT count(*) FROM pl WHERE k > 500;  -- the table itself: the executor's own error
RESET ROLE;
DROP VIEW pl_view;
DROP ROLE planner_viewer;
-- row-level security: never the node; answers respect the policies
ALTER TABLE pl ENABLE ROW LEVEL SECURITY;
CREATE POLICY even ON pl FOR SELECT TO planner_reader USING (id % 2 = 0);
SET ROLE planner_reader;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k > 500;
SELECT count(*) FROM pl WHERE k > 500;
EXECUTE as_reader;  -- planned before the policy: made again
EXPLAIN (COSTS OFF) EXECUTE as_reader;
SET aggr_ext.enable_planner = off;
SELECT count(*) FROM pl WHERE k > 500 AND id % 2 = 0;  -- the oracle
SET aggr_ext.enable_planner = on;  -- not RESET: the suites start with it off (Makefile)
RESET ROLE;
RESET plan_cache_mode;
-- Where the normal plan would run parallel workers, the node keeps a
-- serial plan as its fallback: a statement with a Gather runs in parallel
-- mode, where the node cannot read and would always use its child.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET min_parallel_index_scan_size = 0;
CREATE FUNCTION pg_temp.answering(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
    IF line LIKE '%Answered by:%' THEN RETURN trim(split_part(line, ':', 2)); END IF;
  END LOOP;
  RETURN 'no custom scan';
END $$;
CREATE TABLE par (id int PRIMARY KEY, k int NOT NULL, v int NOT NULL);
INSERT INTO par SELECT g, (g * 7919) % 100003, g % 7 FROM generate_series(1, 100000) g;
ANALYZE par;
SELECT aggr_create('par_k', 'par'::regclass, key => 'k', sum_value => 'v', build => 'now');
SELECT pg_temp.answering($q$SELECT count(*) FROM par WHERE k > 500$q$) AS count_answered_by,
       pg_temp.answering($q$SELECT sum(v), min(k), max(k) FROM par$q$) AS sum_min_max_answered_by;
SET aggr_ext.enable_planner = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM par WHERE k > 500;  -- the normal plan is parallel
SET aggr_ext.enable_planner = on;
SELECT (SELECT count(*) FROM par WHERE k > 500) AS planned, (SELECT count(*) FROM par WHERE k + 0 > 500) AS oracle,
       (SELECT sum(v) FROM par) AS planned_sum, (SELECT sum(v + 0) FROM par) AS oracle_sum;
DROP TABLE par;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET min_parallel_index_scan_size;
DROP TABLE pl, dkeys;
SELECT count(*) FROM aggr_aggregates WHERE name IN ('pl_k', 'pl_g', 'd_ki', 'd_kb', 'd_kn', 'd_kt', 'd_kc');  -- gone with their tables
DROP ROLE planner_reader;
DROP ROLE planner_owner;
