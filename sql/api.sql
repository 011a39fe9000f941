-- Every query function against the plain SQL that computes the same thing.
SELECT aggr_create('leaderboard', 'scores'::regclass, key => 'score DESC', sum_value => 'points');
SELECT aggr_create('per_game', 'scores'::regclass, key => 'score DESC', sum_value => 'points', namespace => 'game');
SELECT aggr_create('by_score', 'scores'::regclass, key => 'score');

SELECT state, entries, depth >= 3 AS deep, namespaces, drift_events, total_sum = (SELECT sum(points) FROM scores) AS sum_ok
  FROM aggr_status('leaderboard');
SELECT namespaces, entries FROM aggr_status('per_game');

-- count and sum, whole and per namespace
SELECT aggr_count('leaderboard') = (SELECT count(*) FROM scores) AS count_ok,
       aggr_sum('leaderboard') = (SELECT sum(points) FROM scores) AS sum_ok;
SELECT count(*) AS namespaces_checked,
       count(*) FILTER (WHERE aggr_count('per_game', namespace => g) <> (SELECT count(*) FROM scores s WHERE s.game = g)) AS count_mismatches,
       count(*) FILTER (WHERE aggr_sum('per_game', namespace => g) <> (SELECT sum(points) FROM scores s WHERE s.game = g)) AS sum_mismatches
  FROM generate_series(0, 6) g;
SELECT aggr_count('per_game', namespace => 99) AS empty_namespace_count, aggr_sum('per_game', namespace => 99) AS empty_namespace_sum;

-- ranges: lower comes first in aggregate order (DESC: the larger score)
SELECT aggr_sum('leaderboard', lower => 900, upper => 100) = (SELECT sum(points) FROM scores WHERE score BETWEEN 100 AND 900) AS desc_range;
SELECT count(*) AS ranges_checked,
       count(*) FILTER (WHERE aggr_count('leaderboard', lower => hi, upper => lo)
                              <> (SELECT count(*) FROM scores WHERE score BETWEEN lo AND hi)) AS inclusive_mismatches,
       count(*) FILTER (WHERE aggr_count('leaderboard', lower => hi, upper => lo, lower_inclusive => false, upper_inclusive => false)
                              <> (SELECT count(*) FROM scores WHERE score > lo AND score < hi)) AS exclusive_mismatches,
       count(*) FILTER (WHERE aggr_sum('leaderboard', lower => hi, upper => lo)
                              <> (SELECT coalesce(sum(points), 0) FROM scores WHERE score BETWEEN lo AND hi)) AS sum_mismatches,
       count(*) FILTER (WHERE aggr_count('by_score', lower => lo, upper => hi)
                              <> (SELECT count(*) FROM scores WHERE score BETWEEN lo AND hi)) AS asc_mismatches
  FROM (SELECT (g * 37) % 5000 AS lo, (g * 37) % 5000 + (g * 101) % 2000 AS hi FROM generate_series(1, 40) g) r;
-- one-sided bounds; NULLs sort first under DESC, so they are before any lower bound
SELECT aggr_count('leaderboard', lower => 4000) = (SELECT count(*) FROM scores WHERE score <= 4000) AS lower_only,
       aggr_count('leaderboard', upper => 4000) = (SELECT count(*) FROM scores WHERE score >= 4000 OR score IS NULL) AS upper_only,
       aggr_count('by_score', upper => 10) = (SELECT count(*) FROM scores WHERE score <= 10) AS asc_upper_only,
       aggr_count('leaderboard', lower => 100, upper => 900) AS empty_when_reversed;

-- rank = rank() OVER (ORDER BY score DESC) for a row with that score
SELECT count(*) AS ranks_checked,
       count(*) FILTER (WHERE aggr_rank('leaderboard', k) <> (SELECT count(*) + 1 FROM scores WHERE score > k OR score IS NULL)) AS rank_mismatches
  FROM generate_series(-1, 5001, 61) k;
WITH ranked AS (SELECT id, score, rank() OVER (ORDER BY score DESC) AS r FROM scores)
SELECT count(*) AS rows_checked, count(*) FILTER (WHERE aggr_rank('leaderboard', score) <> r) AS rank_mismatches
  FROM ranked WHERE id % 500 = 0 AND score IS NOT NULL;
SELECT aggr_rank('per_game', 2500, namespace => 3) = (SELECT count(*) + 1 FROM scores WHERE game = 3 AND (score > 2500 OR score IS NULL)) AS ns_rank;

-- at: offset k = ORDER BY score DESC, id OFFSET k LIMIT 1; negative from the end
WITH ordered AS (SELECT id, score, row_number() OVER (ORDER BY score DESC, id) - 1 AS pos FROM scores)
SELECT count(*) AS offsets_checked,
       count(*) FILTER (WHERE (SELECT (a.id, a.key) FROM aggr_at('leaderboard', o.pos) a) IS DISTINCT FROM (o.id::text, o.score::text)) AS at_mismatches,
       count(*) FILTER (WHERE (SELECT a.id FROM aggr_at('leaderboard', o.pos - 60000) a) <> o.id::text) AS negative_mismatches
  FROM ordered o WHERE o.pos % 1234 = 0 OR o.pos IN (0, 59999);
SELECT position, id, key, sum_value FROM aggr_at('leaderboard', 0);
SELECT position, id, key FROM aggr_at('leaderboard', -1);
SELECT id, key FROM aggr_at('per_game', 0, namespace => 4);
SELECT id::text, score::text FROM scores WHERE game = 4 ORDER BY score DESC NULLS FIRST, id LIMIT 1;

-- page: = ORDER BY score DESC, id OFFSET n LIMIT 20, compared both ways
SELECT count(*) AS pages_checked, sum(diff) AS differing_rows FROM (
  SELECT off, (SELECT count(*) FROM (
      (SELECT position, id, key FROM aggr_page('leaderboard', off, 20)
       EXCEPT ALL
       SELECT off + row_number() OVER () - 1, id::text, score::text FROM (SELECT id, score FROM scores ORDER BY score DESC, id OFFSET off LIMIT 20) q)
      UNION ALL
      (SELECT off + row_number() OVER () - 1, id::text, score::text FROM (SELECT id, score FROM scores ORDER BY score DESC, id OFFSET off LIMIT 20) q
       EXCEPT ALL
       SELECT position, id, key FROM aggr_page('leaderboard', off, 20))) d) AS diff
  FROM generate_series(0, 60000, 2999) off) p;
SELECT count(*) AS past_the_end FROM aggr_page('leaderboard', 60000, 20);
SELECT count(*) AS partial_last_page FROM aggr_page('leaderboard', 59990, 20);
SELECT count(*) AS zero_limit FROM aggr_page('leaderboard', 5, 0);

-- whole rows of a page, in order, without a hand-written join
SELECT s.* FROM aggr_page_rows('leaderboard', 30000, 5, NULL::scores) s;
SELECT * FROM scores ORDER BY score DESC, id OFFSET 30000 LIMIT 5;

-- min / max in aggregate order (DESC: first is the NULL group, then the largest)
SELECT aggr_min('leaderboard') AS first_key, aggr_max('leaderboard') AS last_key,
       aggr_min('by_score') AS asc_first, aggr_max('by_score') AS asc_last;
SELECT aggr_min('per_game', namespace => 2) IS NOT DISTINCT FROM
         (SELECT score::text FROM scores WHERE game = 2 ORDER BY score DESC NULLS FIRST, id LIMIT 1) AS ns_min_ok,
       aggr_max('per_game', namespace => 2) IS NOT DISTINCT FROM
         (SELECT score::text FROM scores WHERE game = 2 ORDER BY score ASC NULLS LAST, id DESC LIMIT 1) AS ns_max_ok,
       aggr_min('per_game', namespace => 99) AS empty_min;

SELECT status, table_count, aggregate_count, table_sum = aggregate_sum AS sums_equal, missing, extra, changed
  FROM aggr_verify('leaderboard');
SELECT status, table_count, missing, extra, changed FROM aggr_verify('per_game');
SELECT status, table_count, missing, extra, changed FROM aggr_verify('by_score');
SELECT name, source, state FROM aggr_aggregates ORDER BY name;
