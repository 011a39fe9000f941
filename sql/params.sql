-- Parameters whose type the client leaves open (src/pg/params.cpp). SQL
-- PREPARE without types analyzes its statement as the extended protocol
-- does for a driver's untyped $n. The test clusters preload the library
-- (session_preload_libraries); LOAD makes this file independent of that.
LOAD 'aggr_ext';
SELECT aggr_create('p_lb', 'scores'::regclass, key => 'score DESC', build => 'now');
SELECT aggr_create('p_game', 'scores'::regclass, key => 'score', namespace => 'game', build => 'now');
CREATE FUNCTION pg_temp.outcome(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- an untyped key, compared with the same question in plain SQL ($2)
PREPARE rank_of AS
  SELECT aggr_rank('p_lb', $1) = 1 + (SELECT count(*) FROM scores WHERE score > $2 OR score IS NULL) AS same;
EXECUTE rank_of('2500', 2500);
EXECUTE rank_of(2500, 2500);        -- EXECUTE's values are assigned to text, then read as the key
EXPLAIN (COSTS OFF) EXECUTE rank_of('10', 10);
-- a plan cached after five executions keeps working
EXECUTE rank_of('1', 1); EXECUTE rank_of('2', 2); EXECUTE rank_of('3', 3);
EXECUTE rank_of('4', 4); EXECUTE rank_of('5', 5); EXECUTE rank_of('4999', 4999);
-- not a value of the key's type: the key's input function says so
SELECT pg_temp.outcome($$EXECUTE rank_of('abc', 0)$$);

-- JDBC's setString sends varchar: read as the key's / namespace's type too
SELECT aggr_rank('p_lb', '2500'::varchar) = 1 + (SELECT count(*) FROM scores WHERE score > 2500 OR score IS NULL) AS key_same,
       aggr_count('p_game', '3'::varchar(5), upper => '777'::varchar) = (SELECT count(*) FROM scores WHERE game = 3 AND score <= 777) AS count_same;
SELECT pg_temp.outcome($$SELECT aggr_rank('p_lb', 'abc'::varchar)$$);

-- one parameter passed twice, and also to another function's "any"
PREPARE twice AS
  SELECT aggr_count('p_lb', NULL, $1, $1) = (SELECT count(*) FROM scores WHERE score = $2) AS same, pg_typeof($1);
EXECUTE twice('1234', 1234);
-- ... and to another function's VARIADIC "any" (format), in the select list,
-- a subquery and WHERE, with a generic plan too
PREPARE with_format AS
  SELECT aggr_count('p_lb', lower => $1) = (SELECT count(*) FROM scores WHERE score <= $2) AS same,  -- DESC NULLS FIRST: from $1 down
         format('%s', $1) AS formatted, (SELECT format('<%s>', $1)) AS nested
   WHERE format('%s', $1) IS NOT NULL;
EXECUTE with_format('1234', 1234);
SET plan_cache_mode = force_generic_plan;
EXECUTE with_format('4321', 4321);
RESET plan_cache_mode;
-- bounds and namespace as parameters; NULL is unbounded (NULL keys sort last)
PREPARE range AS
  SELECT aggr_count('p_game', $1, $2, $3) = (SELECT count(*) FROM scores WHERE game = $4
                                              AND (score >= $5 OR score IS NULL OR $5 IS NULL)
                                              AND (score <= $6 OR $6 IS NULL)) AS same;
EXECUTE range('3', '100', '2000', 3, 100, 2000);
EXECUTE range('3', NULL, '2000', 3, NULL, 2000);
EXECUTE range('3', '100', NULL, 3, 100, NULL);
-- named arguments, subqueries, LATERAL and table functions
PREPARE nested AS
  SELECT q.r = 1 + (SELECT count(*) FROM scores WHERE game = 2 AND score < 777) AS rank_same,
         c.n = (SELECT count(*) FROM scores WHERE game = 2 AND (score >= 777 OR score IS NULL)) AS count_same,
         (SELECT count(*) FROM aggr_page('p_game', $3, $4, namespace => $2)) AS page_rows
    FROM (SELECT aggr_rank(name => 'p_game', key => $1, namespace => $2) AS r) q,
         LATERAL (SELECT aggr_count('p_game', namespace => $2, lower => $1) AS n) c;
EXECUTE nested('777', '2', 10, 25);
-- 120 parameters in one statement
SELECT 'PREPARE many AS SELECT ' || string_agg(format('aggr_rank(''p_lb'', $%s)', i), ' + ')
       || ' = (SELECT sum(1 + (SELECT count(*) FROM scores WHERE score > i * 41 OR score IS NULL)) FROM generate_series(1, 120) i)'
       || ' AS same' FROM generate_series(1, 120) i
\gexec
SELECT 'EXECUTE many(' || string_agg(format('''%s''', i * 41), ', ') || ')' FROM generate_series(1, 120) i
\gexec

-- plpgsql passes its variables typed: unaffected
CREATE FUNCTION pg_temp.rank_in_plpgsql(k text, n int) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
  EXECUTE 'SELECT aggr_rank(''p_lb'', $1)' INTO r USING n;
  RETURN ARRAY[aggr_rank('p_lb', k), aggr_rank('p_lb', n), r];
END $$;
SELECT pg_temp.rank_in_plpgsql('2500', 2500) = array_fill(1 + (SELECT count(*) FROM scores WHERE score > 2500 OR score IS NULL), ARRAY[3]) AS same;

-- Not typed, as PostgreSQL decides without the library:
-- a parameter PostgreSQL also types elsewhere, before the hook runs (42P08:
-- cast it, $1::int, or have the driver send its type)
SELECT pg_temp.outcome($$PREPARE elsewhere AS SELECT aggr_rank('p_lb', $1) WHERE $1 > 0$$);
SELECT pg_temp.outcome($$PREPARE elsewhere AS SELECT aggr_rank('p_lb', $1), (SELECT $1)$$);
PREPARE cast_it AS SELECT aggr_rank('p_lb', $1::int) = 1 + (SELECT count(*) FROM scores WHERE score > $1 OR score IS NULL) AS same;
EXECUTE cast_it(2500);
-- functions of other libraries or languages with "any" arguments, even
-- named like ours
CREATE SCHEMA other;
CREATE FUNCTION other.aggr_rank("any") RETURNS regtype LANGUAGE internal STRICT AS 'pg_typeof';
CREATE FUNCTION other.aggr_count(text, "any") RETURNS bigint LANGUAGE c AS '$libdir/plpgsql', 'plpgsql_call_handler';
SELECT pg_temp.outcome($$PREPARE hostile1 AS SELECT other.aggr_rank($1)$$);
SELECT pg_temp.outcome($$PREPARE hostile2 AS SELECT other.aggr_count('p_lb', $1)$$);
DROP SCHEMA other CASCADE;
DEALLOCATE ALL;
SELECT aggr_drop('p_lb'), aggr_drop('p_game');
