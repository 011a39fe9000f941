-- Shared by every regression file: the extension and the leaderboard table.
CREATE EXTENSION aggr_ext;
SET client_min_messages = warning;
CREATE TABLE scores (
    id     bigint PRIMARY KEY,
    game   int NOT NULL,
    score  int,
    points bigint NOT NULL
);
-- 60,000 rows: the tree is three levels deep. Scores repeat (ties break on id)
-- and some are NULL.
INSERT INTO scores
SELECT g, g % 7, CASE WHEN g % 97 = 0 THEN NULL ELSE (g * 7919) % 5000 END, (g * 31) % 1000
  FROM generate_series(1, 60000) g;
