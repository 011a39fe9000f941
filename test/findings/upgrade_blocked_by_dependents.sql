-- FINDING (not in REGRESS: fails today). ALTER EXTENSION aggr_ext UPDATE
-- (1.0 -> 1.1) fails as soon as a user object depends on aggr_at,
-- aggr_page, aggr_page_rows or aggr_job_status: the upgrade script DROPs
-- them to change their signatures (bounds, descending, int8 limit), and a
-- view or a BEGIN ATOMIC SQL function calling them holds a dependency:
--   ERROR: cannot drop function aggr_at(text,bigint,"any") because other
--          objects depend on it
-- Impact: the upgrade is refused until the user drops and re-creates every
-- such view / function (the error names only the first).
-- Suggested fix: in 1.0--1.1, ALTER FUNCTION ... RENAME the old signatures
-- (e.g. aggr_at_1_0; the C entry points already accept the 1.0 argument
-- lists) instead of dropping them, so dependents keep working, and drop
-- them in a later version; or state the requirement in README "Upgrading".
-- Run in an empty database.
CREATE EXTENSION aggr_ext VERSION '1.0';
CREATE TABLE s (id int PRIMARY KEY, k int);
INSERT INTO s VALUES (1, 1), (2, 2);
SELECT aggr_create('s', 's', key => 'k', build => 'now');
CREATE VIEW top_s AS SELECT * FROM aggr_page('s', 0, 10);
CREATE FUNCTION second_s() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT id FROM aggr_at('s', 1); END;
ALTER EXTENSION aggr_ext UPDATE;   -- expected to succeed
SELECT extversion FROM pg_extension WHERE extname = 'aggr_ext';  -- expected 1.1
SELECT * FROM top_s;
