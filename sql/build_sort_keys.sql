-- The in-memory build sort with other key shapes: expression keys of plain types (an
-- SQL function, casts to oid and "char", a boolean expression, a negated
-- float), a table with a dropped column and a generated key column, and a
-- composite int2/int4 primary key, against ORDER BY over the same table.
-- Then a key function that raises (the same error in memory and through
-- the SQL ordered scan).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aggr_ext;
RESET client_min_messages;
CREATE TABLE br (junk text, a int, id int, v int, f float8, b int2, PRIMARY KEY (b, id));
ALTER TABLE br DROP COLUMN junk;
ALTER TABLE br ADD COLUMN g int8 GENERATED ALWAYS AS (v * 3 - 7) STORED;
INSERT INTO br (a, id, v, f, b)
SELECT g % 5, g, CASE WHEN g % 17 = 0 THEN NULL ELSE (g * 7919) % 1000 - 500 END,
  CASE g % 9 WHEN 0 THEN 'NaN' WHEN 1 THEN '-0' WHEN 2 THEN '0' WHEN 3 THEN 'Infinity' WHEN 4 THEN '-Infinity'
             WHEN 5 THEN NULL ELSE ((g * 31) % 100) / 7.0 END,
  (g % 3 - 1)::int2 FROM generate_series(1, 5000) g;
CREATE FUNCTION br_sq(x int) RETURNS int8 LANGUAGE sql IMMUTABLE AS 'SELECT (x::int8 * x) % 1013';
CREATE FUNCTION br_mismatches(agg text, ord text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format($q$ WITH o AS (SELECT b, id, row_number() OVER (ORDER BY %s, b, id) - 1 AS pos FROM br)
    SELECT count(*) FILTER (WHERE (SELECT a.id FROM aggr_at(%L, o.pos) a) IS DISTINCT FROM '(' || o.b || ',' || o.id || ')')
    FROM o $q$, ord, agg) INTO n;
  RETURN n;
END $$;
CREATE TABLE br_specs (k text, ord text);
INSERT INTO br_specs VALUES
  ('v % 7', '(v % 7)'), ('v % 7 DESC NULLS LAST, f DESC NULLS FIRST', '(v % 7) DESC NULLS LAST, f DESC NULLS FIRST'),
  ('br_sq(v) DESC', 'br_sq(v) DESC'), ('g', 'g'), ('-f NULLS FIRST', '(-f) NULLS FIRST'), ('f::float4 DESC', 'f::float4 DESC'),
  ('a, f DESC, v NULLS FIRST', 'a, f DESC, v NULLS FIRST'), ('f = f', '(f = f)'), ('f DESC NULLS LAST, v DESC', 'f DESC NULLS LAST, v DESC'),
  ('(v::oid)', '(v::oid)'), ('(abs(v) % 120 + 1)::"char" DESC', '((abs(v) % 120 + 1)::"char") DESC');
CREATE FUNCTION br_check(mem text) RETURNS TABLE (k text, mismatches bigint, verify text, count_ok bool) LANGUAGE plpgsql AS $$
DECLARE s record;
BEGIN
  PERFORM set_config('maintenance_work_mem', mem, true);
  FOR s IN SELECT * FROM br_specs ORDER BY 1 LOOP
    PERFORM aggr_create('br_agg', 'br', key => s.k, build => 'now');
    k := s.k;
    mismatches := br_mismatches('br_agg', s.ord);
    SELECT v.status INTO verify FROM aggr_verify('br_agg') v;
    count_ok := aggr_count('br_agg') = (SELECT count(*) FROM br);
    PERFORM aggr_drop('br_agg');
    RETURN NEXT;
  END LOOP;
END $$;
SET client_min_messages = warning;
SELECT * FROM br_check('64MB');
RESET client_min_messages;

-- a key function that raises: the same error in memory and in the SQL scan
CREATE FUNCTION br_boom(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN IF x = 123 THEN RAISE EXCEPTION 'br_boom at %', x; END IF; RETURN x; END $$;
UPDATE br SET v = 123 WHERE id = 77;
SELECT aggr_create('br_e', 'br', key => 'br_boom(v)', build => 'now');
SET maintenance_work_mem = '1MB';
INSERT INTO br (a, id, v, f, b) SELECT 0, g, g % 1000, g, 5 FROM generate_series(10000, 40000) g;
SELECT aggr_create('br_e', 'br', key => 'br_boom(v)', build => 'now');
RESET maintenance_work_mem;

DROP TABLE br, br_specs;
DROP FUNCTION br_sq(int), br_mismatches(text, text), br_check(text), br_boom(int);
