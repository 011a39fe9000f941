-- The leaderboard demo: a real workload, every answer next to the plain SQL
-- that computes it, and how long each took (median of several runs).
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
-- Plain SQL is the oracle here: the planner must not answer it from the
-- aggregate until the last part of the demo turns it on.
SET aggr_ext.enable_planner = off;
\o /dev/null
DROP TABLE IF EXISTS scores, scores_plain CASCADE;
SELECT aggr_drop(name) FROM aggr_aggregates;

CREATE FUNCTION pg_temp.median_ms(q text, reps int DEFAULT 7) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; times numeric[] := '{}';
BEGIN
  FOR i IN 1..reps LOOP
    t0 := clock_timestamp();
    EXECUTE q;
    times := times || (extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric;
  END LOOP;
  RETURN round((SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY t) FROM unnest(times) t), 3);
END $$;
CREATE FUNCTION pg_temp.once_ms(q text) RETURNS numeric LANGUAGE sql AS $$ SELECT pg_temp.median_ms(q, 1) $$;
CREATE TEMP TABLE results (step int, what text, aggr_answer text, plain_answer text, aggr_ms numeric, plain_ms numeric);

CREATE TABLE scores (id bigint PRIMARY KEY, game int NOT NULL, score int NOT NULL, points bigint NOT NULL);
CREATE INDEX ON scores (score);
CREATE TABLE scores_plain (LIKE scores INCLUDING ALL);
SELECT aggr_create('leaderboard', 'scores'::regclass, key => 'score DESC', sum_value => 'points');
SELECT aggr_create('per_game', 'scores'::regclass, key => 'score DESC', sum_value => 'points', namespace => 'game');

\o
\echo Loading :rows rows into a table with two aggregates and a btree, and into the same table with the btree only ...
INSERT INTO results SELECT 1, 'INSERT ... SELECT of ' || :rows || ' rows (aggregates vs btree only)', NULL, NULL,
  pg_temp.once_ms(format('INSERT INTO scores SELECT g, g %% 50, (g::bigint * 7919) %% 1000003, g %% 1000 FROM generate_series(1, %s) g', :rows)),
  pg_temp.once_ms(format('INSERT INTO scores_plain SELECT g, g %% 50, (g::bigint * 7919) %% 1000003, g %% 1000 FROM generate_series(1, %s) g', :rows));
VACUUM ANALYZE scores;
VACUUM ANALYZE scores_plain;

SELECT (:rows / 2)::bigint AS mid \gset
SELECT 500000 AS probe \gset
INSERT INTO results VALUES
 (2, 'count(*)', aggr_count('leaderboard')::text, (SELECT count(*) FROM scores)::text,
     pg_temp.median_ms($$SELECT aggr_count('leaderboard')$$), pg_temp.median_ms($$SELECT count(*) FROM scores$$)),
 (3, 'rank of score ' || :probe, aggr_rank('leaderboard', :probe)::text,
     (SELECT count(*) + 1 FROM scores WHERE score > :probe)::text,
     pg_temp.median_ms(format($$SELECT aggr_rank('leaderboard', %s)$$, :probe)),
     pg_temp.median_ms(format($$SELECT count(*) + 1 FROM scores WHERE score > %s$$, :probe))),
 (4, 'entry at offset ' || :mid, (SELECT id || ' @ ' || key FROM aggr_at('leaderboard', :mid)),
     (SELECT id || ' @ ' || score FROM scores ORDER BY score DESC, id OFFSET :mid LIMIT 1),
     pg_temp.median_ms(format($$SELECT * FROM aggr_at('leaderboard', %s)$$, :mid)),
     pg_temp.median_ms(format($$SELECT * FROM scores ORDER BY score DESC, id OFFSET %s LIMIT 1$$, :mid))),
 (5, 'page of 20 rows at offset ' || :mid, (SELECT string_agg(id::text, ',') FROM aggr_page_rows('leaderboard', :mid, 20, NULL::scores)),
     (SELECT string_agg(id::text, ',') FROM (SELECT id FROM scores ORDER BY score DESC, id OFFSET :mid LIMIT 20) p),
     pg_temp.median_ms(format($$SELECT * FROM aggr_page_rows('leaderboard', %s, 20, NULL::scores)$$, :mid)),
     pg_temp.median_ms(format($$SELECT * FROM scores ORDER BY score DESC, id OFFSET %s LIMIT 20$$, :mid))),
 (6, 'sum(points) for scores 900000..100000', aggr_sum('leaderboard', lower => 900000, upper => 100000)::text,
     (SELECT sum(points) FROM scores WHERE score BETWEEN 100000 AND 900000)::text,
     pg_temp.median_ms($$SELECT aggr_sum('leaderboard', lower => 900000, upper => 100000)$$),
     pg_temp.median_ms($$SELECT sum(points) FROM scores WHERE score BETWEEN 100000 AND 900000$$)),
 (7, 'median score (percentile_disc 0.5)', (SELECT key FROM aggr_at('leaderboard', (aggr_count('leaderboard') - 1) / 2)),
     (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY score DESC) FROM scores)::text,
     pg_temp.median_ms($$SELECT key FROM aggr_at('leaderboard', (aggr_count('leaderboard') - 1) / 2)$$),
     pg_temp.median_ms($$SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY score DESC) FROM scores$$)),
 (8, 'rank within game 7', aggr_rank('per_game', :probe, namespace => 7)::text,
     (SELECT count(*) + 1 FROM scores WHERE game = 7 AND score > :probe)::text,
     pg_temp.median_ms(format($$SELECT aggr_rank('per_game', %s, namespace => 7)$$, :probe)),
     pg_temp.median_ms(format($$SELECT count(*) + 1 FROM scores WHERE game = 7 AND score > %s$$, :probe)));

-- "The page around me": my row's exact position (ties broken by id, as the
-- page order), then the page of 20 that holds it.
SELECT (:rows / 3)::bigint AS me \gset
INSERT INTO results VALUES
 (9, 'the page of 20 around player ' || :me,
     (SELECT string_agg(id, ',') FROM aggr_page('leaderboard', aggr_position('leaderboard', :me) / 20 * 20, 20)),
     (SELECT string_agg(id::text, ',' ORDER BY p) FROM (
        SELECT id, p FROM (SELECT id, row_number() OVER (ORDER BY score DESC, id) - 1 AS p FROM scores) r
         WHERE p / 20 = (SELECT p FROM (SELECT id, row_number() OVER (ORDER BY score DESC, id) - 1 AS p FROM scores) r
                          WHERE id = :me) / 20) page),
     pg_temp.median_ms(format($$SELECT * FROM aggr_page('leaderboard', aggr_position('leaderboard', %s) / 20 * 20, 20)$$, :me)),
     pg_temp.median_ms(format($$SELECT id, p FROM (SELECT id, row_number() OVER (ORDER BY score DESC, id) - 1 AS p FROM scores) r
                               WHERE p / 20 = (SELECT p FROM (SELECT id, row_number() OVER (ORDER BY score DESC, id) - 1 AS p
                                                                FROM scores) r WHERE id = %s) / 20$$, :me)));
-- A random opponent, uniformly: both draw one random() after the same
-- setseed, so they pick the same entry.
SELECT setseed(0.42) \gset
SELECT id AS opponent_aggr FROM aggr_random('leaderboard') \gset
SELECT setseed(0.42) \gset
SELECT id AS opponent_plain FROM scores ORDER BY score DESC, id OFFSET floor(random() * (SELECT count(*) FROM scores)) LIMIT 1 \gset
INSERT INTO results VALUES
 (10, 'a random opponent', :'opponent_aggr', :'opponent_plain',
      pg_temp.median_ms($$SELECT * FROM aggr_random('leaderboard')$$),
      pg_temp.median_ms($$SELECT * FROM scores ORDER BY score DESC, id OFFSET floor(random() * (SELECT count(*) FROM scores)) LIMIT 1$$));

\echo
\echo Answers and median timings (ms), aggregate index vs plain SQL:
SELECT what, aggr_answer = plain_answer AS same_answer,
       CASE WHEN length(aggr_answer) > 24 THEN left(aggr_answer, 21) || '...' ELSE aggr_answer END AS answer,
       aggr_ms, plain_ms,
       CASE WHEN step = 1 THEN round(aggr_ms / nullif(plain_ms, 0), 2) || 'x the time'
            ELSE round(plain_ms / nullif(aggr_ms, 0), 1) || 'x faster' END AS ratio
  FROM results ORDER BY step;

\echo
\echo Building an aggregate over the populated table, next to CREATE INDEX on the same key:
SELECT pg_temp.once_ms($$SELECT aggr_create('rebuilt', 'scores'::regclass, key => 'score DESC', build => 'now')$$) AS aggr_create_ms,
       pg_temp.once_ms($$CREATE INDEX scores_score_desc ON scores (score DESC, id)$$) AS create_index_ms;
SELECT name, state, entries, depth, nodes, pg_size_pretty(bytes) AS size, drift_events FROM aggr_status('leaderboard')
UNION ALL SELECT name, state, entries, depth, nodes, pg_size_pretty(bytes), drift_events FROM aggr_status('per_game');
SELECT pg_size_pretty(pg_relation_size('scores_score_desc')) AS btree_on_score_id_size;
SELECT status, table_count, aggregate_count, missing, extra, changed FROM aggr_verify('leaderboard');

\echo
\echo The same plain SQL, unchanged, answered by the planner from the aggregates
\echo (aggr_ext.enable_planner on; README: The planner answers plain SQL):
SET aggr_ext.enable_planner = on;
EXPLAIN (COSTS OFF) SELECT count(*) FROM scores WHERE score > 500000;
EXPLAIN (COSTS OFF) SELECT id, score FROM scores ORDER BY score DESC, id OFFSET 500000 LIMIT 20;
\o /dev/null
CREATE TEMP TABLE planner_results (step int, query text, answer_on text, answer_off text, on_ms numeric, off_ms numeric);
CREATE FUNCTION pg_temp.planner_row(step int, q text) RETURNS planner_results LANGUAGE plpgsql AS $$
DECLARE r planner_results; a text;
BEGIN
  r.step := step; r.query := q;
  SET LOCAL aggr_ext.enable_planner = on;
  EXECUTE 'SELECT string_agg(t::text, '','') FROM (' || q || ') t' INTO a; r.answer_on := a;
  r.on_ms := pg_temp.median_ms(q);
  SET LOCAL aggr_ext.enable_planner = off;
  EXECUTE 'SELECT string_agg(t::text, '','') FROM (' || q || ') t' INTO a; r.answer_off := a;
  r.off_ms := pg_temp.median_ms(q);
  RETURN r;
END $$;
INSERT INTO planner_results
SELECT (pg_temp.planner_row(n, q)).* FROM (VALUES
  (1, format('SELECT count(*) FROM scores WHERE score > %s', :probe)),
  (2, 'SELECT sum(points) FROM scores WHERE score BETWEEN 100000 AND 900000'),
  (3, format('SELECT count(*) FROM scores WHERE game = 7 AND score > %s', :probe)),
  (4, 'SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY score DESC) FROM scores'),
  (5, 'SELECT min(score), max(score) FROM scores'),
  (6, format('SELECT id, score FROM scores ORDER BY score DESC, id OFFSET %s LIMIT 20', :mid))) v(n, q);
\o
SELECT query, answer_on = answer_off AS same_answer, on_ms, off_ms,
       round(off_ms / nullif(on_ms, 0), 1) || 'x faster' AS ratio
  FROM planner_results ORDER BY step;
RESET aggr_ext.enable_planner;
