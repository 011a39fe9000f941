-- FINDING (behaviour differs from SQL; not in REGRESS). An untyped or text
-- bound is read with the key type's input function when the aggregate
-- function runs, under the settings of that moment; SQL reads the same
-- literal once, when the statement is parsed. In a prepared statement, a
-- view or a PL/pgSQL cached plan the two disagree after SET TimeZone /
-- DateStyle: the SQL count stays, the aggregate's count follows the
-- session. (Direct statements agree: both parse at execution.)
-- Suggested fix: document it ("bounds given as text are read when the call
-- runs"), or, in the parse hook, coerce a Const unknown/text bound of a
-- known aggregate at parse time (would need the aggregate's key type then).
CREATE EXTENSION IF NOT EXISTS aggr_ext;
CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz);
INSERT INTO ev SELECT i, '2020-01-01 00:00+00'::timestamptz + i * interval '1 hour' FROM generate_series(1, 48) i;
SELECT aggr_create('ev', 'ev', key => 'ts', build => 'now');
SET TimeZone = 'UTC';
PREPARE sql_q AS SELECT count(*) FROM ev WHERE ts >= '2020-01-02 00:00';
PREPARE aggr_q AS SELECT aggr_count('ev', lower => '2020-01-02 00:00');
EXECUTE sql_q; EXECUTE aggr_q;   -- 25, 25
SET TimeZone = 'Asia/Tokyo';
EXECUTE sql_q; EXECUTE aggr_q;   -- SQL still 25; the aggregate says 34
DROP TABLE ev;
