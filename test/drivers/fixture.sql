-- The data every driver test asks about (test/drivers/run.sh loads it into a
-- fresh database). Scores repeat and some are NULL; five namespaces.
CREATE EXTENSION aggr_ext;
CREATE TABLE drv_scores (
    id     int PRIMARY KEY,
    game   int NOT NULL,
    score  int,
    name   text NOT NULL,
    points bigint NOT NULL
);
INSERT INTO drv_scores
SELECT g, g % 5, CASE WHEN g % 53 = 0 THEN NULL ELSE (g * 7919) % 1000 END, 'player' || (g * 31) % 2000, g % 100
  FROM generate_series(1, 5000) g;
SELECT aggr_create('d_lb', 'drv_scores'::regclass, key => 'score DESC', sum_value => 'points');
SELECT aggr_create('d_game', 'drv_scores'::regclass, key => 'score', namespace => 'game');
SELECT aggr_create('d_name', 'drv_scores'::regclass, key => 'name');
-- pgbench records each comparison here (it has no other way to report one)
CREATE TABLE drv_results (driver text NOT NULL, kind text NOT NULL, ok bool);
