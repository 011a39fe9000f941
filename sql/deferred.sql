-- The deferred write path: writers append deltas, reads add in the deltas
-- their snapshot sees, a merger folds them into the tree. With the merger
-- paused every read below runs over pending deltas; each answer is checked
-- against plain SQL over the same table.
SET client_min_messages = warning;
CREATE TABLE dscores (id int PRIMARY KEY, team int NOT NULL, score int, pts bigint NOT NULL, ratio float8);
INSERT INTO dscores SELECT g, g % 4, CASE WHEN g % 101 = 0 THEN NULL ELSE (g * 7919) % 3000 END, g % 50, g / 7.0
  FROM generate_series(1, 30000) g;
SELECT aggr_create('d_lb', 'dscores'::regclass, key => 'score DESC NULLS LAST', sum_value => 'pts');
SELECT aggr_create('d_team', 'dscores'::regclass, key => 'score', sum_value => 'pts', namespace => 'team');
SELECT aggr_create('d_float', 'dscores'::regclass, key => 'score', sum_value => 'ratio');
SELECT aggr_set_write_mode('d_lb', 'deferred'), aggr_set_write_mode('d_team', 'deferred');
SELECT aggr_set_write_mode('d_float', 'deferred');  -- refused: float sums stay direct
SELECT aggr_set_write_mode('d_lb', 'sometimes');    -- refused
SELECT name, write_mode FROM aggr_aggregates WHERE name LIKE 'd\_%' ORDER BY name;

-- Every answer of both aggregates, compared with plain SQL.
CREATE FUNCTION d_check() RETURNS TABLE (what text, ok bool) LANGUAGE sql AS $$
  SELECT 'count', aggr_count('d_lb') = (SELECT count(*) FROM dscores)
  UNION ALL SELECT 'sum', aggr_sum('d_lb') = (SELECT sum(pts) FROM dscores)
  UNION ALL SELECT 'range', aggr_count('d_lb', lower => 2500, upper => 700) = (SELECT count(*) FROM dscores WHERE score BETWEEN 700 AND 2500)
  UNION ALL SELECT 'range sum', aggr_sum('d_lb', lower => 2500, upper => 700, lower_inclusive => false) = (SELECT sum(pts) FROM dscores WHERE score >= 700 AND score < 2500)
  UNION ALL SELECT 'rank', bool_and(aggr_rank('d_lb', s) = (SELECT count(*) + 1 FROM dscores WHERE score > s)) FROM generate_series(0, 3000, 250) s
  UNION ALL SELECT 'every entry in order', (SELECT array_agg(id::int ORDER BY position) FROM aggr_page('d_lb', 0, 100000)) =
                                  (SELECT array_agg(id ORDER BY score DESC NULLS LAST, id) FROM dscores)
  UNION ALL SELECT 'every sum in order', (SELECT array_agg(sum_value ORDER BY position) FROM aggr_page('d_lb', 0, 100000)) =
                                  (SELECT array_agg(pts::numeric ORDER BY score DESC NULLS LAST, id) FROM dscores)
  UNION ALL SELECT 'pages', bool_and((SELECT array_agg(id::int ORDER BY position) FROM aggr_page('d_lb', o, 37)) =
                                  (SELECT array_agg(id) FROM (SELECT id FROM dscores ORDER BY score DESC NULLS LAST, id OFFSET o LIMIT 37) p))
                            FROM generate_series(0, 31000, 1499) o
  UNION ALL SELECT 'at -1', (SELECT id::int FROM aggr_at('d_lb', -1)) = (SELECT id FROM dscores ORDER BY score ASC NULLS FIRST, id DESC LIMIT 1)
  UNION ALL SELECT 'page_rows', (SELECT array_agg(r.id) FROM aggr_page_rows('d_lb', 12345, 10, NULL::dscores) r) IS NOT DISTINCT FROM
                                  (SELECT array_agg(id) FROM (SELECT id FROM dscores ORDER BY score DESC NULLS LAST, id OFFSET 12345 LIMIT 10) p)
  -- min / max: the first / last key in the aggregate's order (NULL keys included)
  UNION ALL SELECT 'min / max', aggr_max('d_team', namespace => 1) IS NOT DISTINCT FROM
                                  (SELECT d.score::text FROM dscores d WHERE team = 1 ORDER BY d.score DESC NULLS FIRST, id DESC LIMIT 1)
                         AND aggr_min('d_lb') IS NOT DISTINCT FROM (SELECT d.score::text FROM dscores d ORDER BY d.score DESC NULLS LAST, id LIMIT 1)
  UNION ALL SELECT 'namespaces', bool_and(aggr_count('d_team', namespace => t) = (SELECT count(*) FROM dscores WHERE team = t)
                               AND aggr_sum('d_team', namespace => t) = (SELECT coalesce(sum(pts), 0) FROM dscores WHERE team = t))
                          FROM generate_series(0, 5) t
  UNION ALL SELECT 'status entries', (SELECT entries FROM aggr_status('d_lb')) = (SELECT count(*) FROM dscores)
  UNION ALL SELECT 'verify', (SELECT status FROM aggr_verify('d_lb')) = 'ok' AND (SELECT status FROM aggr_verify('d_team')) = 'ok'
$$;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();

-- Pause the merger: the changes below stay pending.
ALTER SYSTEM SET aggr_ext.merge_deltas = off;
SELECT pg_reload_conf();
-- Wait (at most 60 s) until no merger runs that may not have seen it yet;
-- one launched from here on starts paused.
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'aggr_ext merger' AND datname = current_database());
    PERFORM pg_sleep(0.1);
  END LOOP;
  IF EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'aggr_ext merger' AND datname = current_database()) THEN
    RAISE EXCEPTION 'the merger did not stop within 60 s';
  END IF;
END $$;
UPDATE dscores SET score = (score * 13) % 3000 WHERE id % 5 = 0;       -- key changes
UPDATE dscores SET pts = pts + 1 WHERE id % 7 = 0;                     -- sum-only changes
UPDATE dscores SET team = 4 WHERE id % 11 = 0;                         -- namespace moves, a new namespace
DELETE FROM dscores WHERE id % 13 = 0;
INSERT INTO dscores SELECT g, g % 5, (g * 31) % 3000, 7, 0 FROM generate_series(30001, 31000) g;
INSERT INTO dscores SELECT g, 1, 1500, 3, 0 FROM generate_series(26, 2600, 13) g;  -- re-inserted ids
SELECT count(*) > 0 AS deltas_pending FROM aggr_internal.deltas;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();

-- Own uncommitted changes, a rolled-back savepoint, and a repeatable-read
-- snapshot taken before more changes commit.
BEGIN;
DELETE FROM dscores WHERE id BETWEEN 100 AND 5000;
SAVEPOINT s;
UPDATE dscores SET score = 1 WHERE id > 20000;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();
ROLLBACK TO s;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();
COMMIT;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();

-- Folding in: nothing pending after, answers unchanged.
SELECT aggr_merge('d_lb') > 0 AS merged, aggr_merge('d_team') > 0 AS merged_team;
SELECT count(*) AS deltas_left FROM aggr_internal.deltas;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();

-- TRUNCATE and aggr_clear drop pending deltas with the trees.
INSERT INTO dscores SELECT g, g % 4, g % 3000, 1, 0 FROM generate_series(40001, 40100) g;
TRUNCATE dscores;
SELECT count(*) AS deltas_after_truncate FROM aggr_internal.deltas;
INSERT INTO dscores SELECT g, g % 4, (g * 7) % 3000, g % 9, 0 FROM generate_series(1, 5000) g;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();
SELECT aggr_clear('d_team');
SELECT count(*) AS team_deltas_after_clear FROM aggr_internal.deltas d JOIN aggr_internal.aggregates a USING (aggr_id) WHERE a.name = 'd_team';
CALL aggr_backfill('d_team', wait => true, background => false);

-- A rebuild of a deferred aggregate with pending deltas.
UPDATE dscores SET score = score + 1 WHERE id % 3 = 0;
SELECT aggr_rebuild('d_lb', batch_size => 1000, background => false);
UPDATE dscores SET score = score + 1 WHERE id % 4 = 0;
CALL aggr_wait('d_lb');
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();

-- Back to direct: pending deltas are folded in first.
UPDATE dscores SET pts = pts + 2 WHERE id % 6 = 0;
SELECT aggr_set_write_mode('d_lb', 'direct'), aggr_set_write_mode('d_team', 'direct');
SELECT count(*) AS deltas_after_direct FROM aggr_internal.deltas;
SELECT count(*) AS checks, count(*) FILTER (WHERE ok IS NOT TRUE) AS failed, string_agg(what, ', ') FILTER (WHERE ok IS NOT TRUE) AS failing FROM d_check();

ALTER SYSTEM RESET aggr_ext.merge_deltas;
SELECT pg_reload_conf();
DROP FUNCTION d_check();
SELECT aggr_drop('d_lb'), aggr_drop('d_team'), aggr_drop('d_float');
DROP TABLE dscores;
