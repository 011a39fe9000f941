-- pgbench script for test/drivers/run.sh: with -M extended / -M prepared,
-- every :variable is sent as an untyped parameter. Each statement records
-- whether an aggr_ext call agrees with the same question in plain SQL.
\set k random(0, 999)
\set ns random(0, 4)
\set lo random(0, 600)
\set hi :lo + random(0, 400)
\set off random(0, 5100)
\set at random(0, 4999)
\set lim random(1, 30)
\set big 3000000000 + random(0, 1000)
\set n random(0, 1999)
INSERT INTO drv_results SELECT 'pgbench', 'rank', aggr_rank('d_lb', :k) IS NOT DISTINCT FROM (SELECT 1 + count(*) FROM drv_scores WHERE score > :k OR score IS NULL);
INSERT INTO drv_results SELECT 'pgbench', 'rank namespace', aggr_rank('d_game', :k, :ns) IS NOT DISTINCT FROM (SELECT 1 + count(*) FROM drv_scores WHERE game = :ns AND score < :k);
INSERT INTO drv_results SELECT 'pgbench', 'count', aggr_count('d_game', :ns, :lo, :hi) IS NOT DISTINCT FROM (SELECT count(*) FROM drv_scores WHERE game = :ns AND score BETWEEN :lo AND :hi);
INSERT INTO drv_results SELECT 'pgbench', 'page', (SELECT string_agg(id, ',' ORDER BY position) FROM aggr_page('d_lb', :off, :lim)) IS NOT DISTINCT FROM (SELECT string_agg(id::text, ',' ORDER BY score DESC, id) FROM (SELECT id, score FROM drv_scores ORDER BY score DESC, id OFFSET :off LIMIT :lim) s);
INSERT INTO drv_results SELECT 'pgbench', 'page int8', (SELECT string_agg(id, ',' ORDER BY position) FROM aggr_page('d_lb', :off, :big)) IS NOT DISTINCT FROM (SELECT string_agg(id::text, ',' ORDER BY score DESC, id) FROM (SELECT id, score FROM drv_scores ORDER BY score DESC, id OFFSET :off LIMIT :big) s);
INSERT INTO drv_results SELECT 'pgbench', 'at', (SELECT id FROM aggr_at('d_lb', :at)) IS NOT DISTINCT FROM (SELECT id::text FROM drv_scores ORDER BY score DESC, drv_scores.id OFFSET :at LIMIT 1);
SELECT 'player' || :n AS pname \gset
INSERT INTO drv_results SELECT 'pgbench', 'text rank', aggr_rank('d_name', :pname) IS NOT DISTINCT FROM (SELECT 1 + count(*) FROM drv_scores WHERE name < :pname);
