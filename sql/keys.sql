-- Key types, collations, multi-column keys, expressions, NULL placement,
-- float specials, and sum types; the oracle is ORDER BY over the same rows.
CREATE TABLE people (
    id      int PRIMARY KEY,
    name    text,
    city    text COLLATE "C",
    height  float8,
    balance numeric(12,2),
    weight  real,
    born    date,
    token   uuid
);
INSERT INTO people
SELECT g,
       (ARRAY['alice','Bob','bob','Émile','zoë','Zed','ann-marie','ann marie', NULL])[1 + g % 9] || CASE WHEN g % 5 = 0 THEN '' ELSE g::text END,
       (ARRAY['Oslo','oslo','Ålesund','Bergen','bergen'])[1 + g % 5],
       CASE g % 50 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 'Infinity' WHEN 2 THEN '-Infinity' WHEN 3 THEN NULL ELSE (g * 0.37) % 200 END,
       ((g * 7) % 100000) / 100.0 - 300,
       (g % 1000) / 8.0,
       date '2000-01-01' + (g * 13) % 9000,
       md5(g::text)::uuid
  FROM generate_series(1, 30000) g;

-- Each aggregate's order must equal ORDER BY <key>, id: compare positions.
CREATE FUNCTION order_mismatches(agg text, key_sql text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format($q$
    WITH ordered AS (SELECT id, row_number() OVER (ORDER BY %s, id) - 1 AS pos FROM people)
    SELECT count(*) FILTER (WHERE (SELECT a.id FROM aggr_at(%L, o.pos) a) <> o.id::text)
      FROM ordered o WHERE o.pos %% 97 = 0 OR o.pos < 30 OR o.pos > 29970$q$, key_sql, agg) INTO n;
  RETURN n;
END $$;

SELECT aggr_create('by_name', 'people'::regclass, key => 'name');
SELECT aggr_create('by_name_c', 'people'::regclass, key => 'name COLLATE "C" DESC NULLS LAST');
SELECT aggr_create('by_city_name', 'people'::regclass, key => 'city, name NULLS FIRST');
SELECT aggr_create('by_lower', 'people'::regclass, key => 'lower(name)');
SELECT aggr_create('by_height', 'people'::regclass, key => 'height', sum_value => 'height');
SELECT aggr_create('by_height_desc', 'people'::regclass, key => 'height DESC NULLS LAST', sum_value => 'balance');
SELECT aggr_create('by_born', 'people'::regclass, key => 'born DESC, token', sum_value => 'weight');
SELECT aggr_create('by_token', 'people'::regclass, key => 'token');

SELECT 'by_name' AS agg, order_mismatches('by_name', 'name')
UNION ALL SELECT 'by_name_c', order_mismatches('by_name_c', 'name COLLATE "C" DESC NULLS LAST')
UNION ALL SELECT 'by_city_name', order_mismatches('by_city_name', 'city, name NULLS FIRST')
UNION ALL SELECT 'by_lower', order_mismatches('by_lower', 'lower(name)')
UNION ALL SELECT 'by_height', order_mismatches('by_height', 'height')
UNION ALL SELECT 'by_height_desc', order_mismatches('by_height_desc', 'height DESC NULLS LAST')
UNION ALL SELECT 'by_born', order_mismatches('by_born', 'born DESC, token')
UNION ALL SELECT 'by_token', order_mismatches('by_token', 'token');

-- text bounds follow the key's collation; untyped literals are accepted
SELECT aggr_count('by_name', lower => 'b', upper => 'c') = (SELECT count(*) FROM people WHERE name BETWEEN 'b' AND 'c') AS db_collation,
       aggr_count('by_name_c', lower => 'c', upper => 'b') = (SELECT count(*) FROM people WHERE name COLLATE "C" BETWEEN 'b' AND 'c') AS c_collation,
       aggr_rank('by_lower', 'bob') = (SELECT count(*) + 1 FROM people WHERE lower(name) < 'bob') AS expression_key;
-- multi-column keys: full ROW bounds and prefix bounds
SELECT aggr_count('by_city_name', lower => ROW('Bergen'), upper => ROW('Oslo')) = (SELECT count(*) FROM people WHERE city BETWEEN 'Bergen' AND 'Oslo') AS prefix_bounds,
       aggr_count('by_city_name', lower => ROW('Oslo', 'b'), upper => ROW('Oslo', 'c')) = (SELECT count(*) FROM people WHERE city = 'Oslo' AND name BETWEEN 'b' AND 'c') AS full_bounds,
       aggr_rank('by_city_name', ROW('bergen', 'zoë')) = (SELECT count(*) + 1 FROM people WHERE city < 'bergen' OR (city = 'bergen' AND (name IS NULL OR name < 'zoë'))) AS row_rank,
       aggr_count('by_city_name', lower => 'oslo') = (SELECT count(*) FROM people WHERE city >= 'oslo') AS scalar_prefix;
-- composite bounds whose type has a dropped attribute: not a field
CREATE TYPE city_name_t AS (city text, gone int, name text);
ALTER TYPE city_name_t DROP ATTRIBUTE gone;
CREATE TYPE city_only_t AS (gone int, city text);
ALTER TYPE city_only_t DROP ATTRIBUTE gone;
SELECT aggr_count('by_city_name', lower => ROW('Oslo', 'b')::city_name_t, upper => ROW('Oslo', 'c')::city_name_t) = (SELECT count(*) FROM people WHERE city = 'Oslo' AND name BETWEEN 'b' AND 'c') AS dropped_full,
       aggr_count('by_city_name', lower => ROW('Bergen')::city_only_t, upper => ROW('Oslo')::city_only_t) = (SELECT count(*) FROM people WHERE city BETWEEN 'Bergen' AND 'Oslo') AS dropped_prefix,
       aggr_rank('by_city_name', ROW('bergen', 'zoë')::city_name_t) = (SELECT count(*) + 1 FROM people WHERE city < 'bergen' OR (city = 'bergen' AND (name IS NULL OR name < 'zoë'))) AS dropped_rank;
DROP TYPE city_name_t, city_only_t;
-- floats: NaN sorts after Infinity, as in PostgreSQL
SELECT aggr_rank('by_height', 'NaN'::float8) = (SELECT count(*) + 1 FROM people WHERE height < 'NaN') AS nan_rank,
       -- NULLs sort last here, so they are past any lower bound too
       aggr_count('by_height', lower => 'Infinity'::float8) = (SELECT count(*) FROM people WHERE height >= 'Infinity' OR height IS NULL) AS inf_nan_null,
       aggr_count('by_height', upper => '-Infinity'::float8) = (SELECT count(*) FROM people WHERE height <= '-Infinity') AS minus_inf;
SELECT aggr_max('by_height') AS last_height, aggr_min('by_height_desc') AS first_height_desc;
-- float sums in double precision; NaN / Infinity propagate as in sum()
SELECT aggr_sum('by_height')::text = (SELECT sum(height)::numeric::text FROM people) AS nan_sum,
       abs(aggr_sum('by_height', lower => 0, upper => 100)::float8 - (SELECT sum(height) FROM people WHERE height BETWEEN 0 AND 100)) < 1e-6 AS within_1e_6;
-- exact numeric(12,2) and real sums
SELECT aggr_sum('by_height_desc') = (SELECT sum(balance) FROM people) AS numeric_exact,
       aggr_sum('by_height_desc', lower => 150, upper => 50) = (SELECT sum(balance) FROM people WHERE height BETWEEN 50 AND 150) AS numeric_range,
       aggr_sum('by_born') = (SELECT sum(weight::float8) FROM people)::numeric AS real_sum;
-- dates and uuids as bounds
SELECT aggr_count('by_born', lower => ROW('2020-01-01'::date), upper => ROW(date '2010-01-01')) = (SELECT count(*) FROM people WHERE born BETWEEN '2010-01-01' AND '2020-01-01') AS date_prefix,
       aggr_rank('by_token', md5('42')::uuid) = (SELECT count(*) + 1 FROM people WHERE token < md5('42')::uuid) AS uuid_rank;
-- keys and sums survive updates of every kind
UPDATE people SET name = upper(name), height = height + 1, balance = balance * 2 WHERE id % 3 = 0;
UPDATE people SET city = 'Ålesund', weight = NULL WHERE id % 11 = 0;
DELETE FROM people WHERE id % 13 = 0;
SELECT name, (SELECT status FROM aggr_verify(name)) AS verify FROM aggr_aggregates ORDER BY name;
SELECT aggr_sum('by_height_desc') = (SELECT sum(balance) FROM people) AS numeric_exact_after;
-- id and key text round-trip through the column types' output functions
SELECT position, id, key FROM aggr_page('by_city_name', 0, 3);
SELECT id, (city, name) FROM people ORDER BY city, name NULLS FIRST, id LIMIT 3;
SELECT aggr_drop(name) FROM aggr_aggregates;
DROP FUNCTION order_mismatches(text, text);
