-- Node rows changed in place (format 2: journaled leaves, internal nodes
-- rewritten at the same length, pages pruned before updates): every node
-- size a user may set, float and exact sums, savepoints, rollbacks, deferred
-- merges, rebuilds and the node table rewritten under the cache (VACUUM
-- FULL, CLUSTER) keep every answer equal to plain SQL and aggr_verify ok.
SET client_min_messages = warning;

-- aggr_create over existing rows builds its trees in bulk. The last node of
-- a level is shared with its left sibling: split by entry count, a full leaf
-- of long keys followed by a short tail of short keys made a leaf over the
-- node size limit, which aggr_verify then reported as a corrupt tree.
CREATE TABLE ns_tail (id int PRIMARY KEY, k text NOT NULL);
INSERT INTO ns_tail SELECT g, 'a' || lpad(g::text, 1418, '0') FROM generate_series(1, 4) g;
INSERT INTO ns_tail SELECT g, 'b' || lpad(g::text, 4, '0') FROM generate_series(5, 128) g;
SET aggr_ext.node_bytes = 6400;
SELECT aggr_create('ns_tail_k', 'ns_tail'::regclass, key => 'k');
RESET aggr_ext.node_bytes;
SELECT status, detail FROM aggr_verify('ns_tail_k');
SELECT aggr_count('ns_tail_k') = (SELECT count(*) FROM ns_tail) AS count_ok;
SELECT aggr_drop('ns_tail_k');
DROP TABLE ns_tail;

-- A journal op that decodes but names another entry (a bad restore, a disk,
-- a superuser's UPDATE): the leaf still has the right count, yet aggr_verify
-- sees that its entries are not the table's.
CREATE TABLE ns_j (id int PRIMARY KEY, k int NOT NULL);
INSERT INTO ns_j SELECT g, g FROM generate_series(1, 50) g;
SELECT aggr_create('ns_j_k', 'ns_j'::regclass, key => 'k');
DELETE FROM ns_j WHERE id = 20;  -- journal: delete at index 19
CREATE TEMP VIEW ns_j_leaf AS
  SELECT n.* FROM aggr_internal.nodes n JOIN aggr_internal.trees t USING (tree_id)
    JOIN aggr_internal.aggregates a USING (aggr_id) WHERE a.name = 'ns_j_k' AND t.generation = a.generation;
SELECT count(*) AS nodes, (SELECT height FROM aggr_internal.trees t JOIN aggr_internal.aggregates a USING (aggr_id)
                            WHERE a.name = 'ns_j_k' AND t.generation = a.generation) AS height FROM ns_j_leaf;
-- the last non-zero byte is the op's index (19): make it delete index 20
SELECT get_byte(payload, p) AS op_index, get_byte(payload, p - 1) AS op
  FROM ns_j_leaf, LATERAL (SELECT max(i) AS p FROM generate_series(0, length(payload) - 1) i
                            WHERE get_byte(payload, i) <> 0) l;
UPDATE aggr_internal.nodes n SET payload = set_byte(n.payload, l.p, 20) FROM ns_j_leaf j,
       LATERAL (SELECT max(i) AS p FROM generate_series(0, length(j.payload) - 1) i WHERE get_byte(j.payload, i) <> 0) l
 WHERE n.tree_id = j.tree_id AND n.node_id = j.node_id;
SELECT aggr_count('ns_j_k') AS count_still_49;
SELECT status, missing, extra, changed FROM aggr_verify('ns_j_k');
SELECT * FROM aggr_repair('ns_j_k');
SELECT status FROM aggr_verify('ns_j_k');
SELECT aggr_drop('ns_j_k');
DROP VIEW ns_j_leaf;
DROP TABLE ns_j;

-- A random workload against the smallest and the largest node size, with
-- float (NaN, -0, infinities) and exact (numeric) sums and namespaces.
CREATE TABLE ns_rows (id int PRIMARY KEY, g int NOT NULL, k text NOT NULL, f float8 NOT NULL, n numeric(20,2) NOT NULL);
CREATE FUNCTION ns_check(suffix text) RETURNS TABLE (what text, ok bool) LANGUAGE plpgsql AS $$
DECLARE
  probe text;
  off int;
BEGIN
  RETURN QUERY SELECT 'count', aggr_count('ns_f' || suffix) = (SELECT count(*) FROM ns_rows);
  -- float sums compared as float8 (NaN equals NaN here)
  RETURN QUERY SELECT 'float sum', aggr_sum('ns_f' || suffix)::float8 IS NOT DISTINCT FROM
                                   (SELECT coalesce(sum(f), 0) FROM ns_rows)::float8
                                   OR abs(aggr_sum('ns_f' || suffix)::float8 - (SELECT coalesce(sum(f), 0) FROM ns_rows)) < 1e-6;
  RETURN QUERY SELECT 'exact sums per namespace',
    bool_and(aggr_sum('ns_n' || suffix, namespace => x) IS NOT DISTINCT FROM
             (SELECT coalesce(sum(n), 0) FROM ns_rows WHERE g = x))
    FROM generate_series(0, 3) x;
  FOR i IN 1..5 LOOP
    probe := (SELECT k FROM ns_rows ORDER BY random() LIMIT 1);
    CONTINUE WHEN probe IS NULL;
    RETURN QUERY SELECT 'rank',
      aggr_rank('ns_f' || suffix, probe) = (SELECT count(*) + 1 FROM ns_rows WHERE k < probe);
    off := (random() * greatest((SELECT count(*) FROM ns_rows) - 1, 0))::int;
    RETURN QUERY SELECT 'at',
      (SELECT a.id FROM aggr_at('ns_f' || suffix, off) a) =
      (SELECT r.id::text FROM ns_rows r ORDER BY r.k, r.id OFFSET off LIMIT 1);
  END LOOP;
  RETURN QUERY SELECT 'verify float', (SELECT status FROM aggr_verify('ns_f' || suffix)) = 'ok';
  RETURN QUERY SELECT 'verify exact', (SELECT status FROM aggr_verify('ns_n' || suffix)) = 'ok';
END $$;
-- n_changes random inserts, key and sum updates and deletes; each committed
-- on its own, or (in a transaction block) flushed by a read every 25.
CREATE PROCEDURE ns_churn(n_changes int, each_commits bool DEFAULT false) LANGUAGE plpgsql AS $$
DECLARE
  r int;
BEGIN
  FOR i IN 1..n_changes LOOP
    r := (random() * 2000)::int;
    CASE (random() * 5)::int
      WHEN 0, 1 THEN
        INSERT INTO ns_rows VALUES (r, r % 4, 'k' || lpad((random() * 500)::int::text, 3, '0') || repeat('x', r % 40),
                                    (ARRAY['NaN', '-0', '0', 'Infinity', '1.5', '-2', '1e10'])[1 + (random() * 6)::int]::float8,
                                    (random() * 1e12)::numeric - 5e11)
          ON CONFLICT (id) DO UPDATE SET k = excluded.k;
      WHEN 2 THEN
        UPDATE ns_rows SET f = CASE WHEN f = 0 THEN -0.0::float8 ELSE 0 END, n = n + 1 WHERE id = r;
      WHEN 3 THEN
        UPDATE ns_rows SET k = k || 'y', g = (g + 1) % 4 WHERE id = r;
      ELSE
        DELETE FROM ns_rows WHERE id = r;
    END CASE;
    IF each_commits THEN
      COMMIT;
    ELSIF i % 25 = 0 THEN
      PERFORM aggr_count('ns_f_small'), aggr_count('ns_f_large'), aggr_count('ns_n_small', namespace => r % 4),
              aggr_count('ns_n_large', namespace => r % 4);
    END IF;
  END LOOP;
END $$;

SELECT setseed(0.42);
SET aggr_ext.node_bytes = 800;
SELECT aggr_create('ns_f_small', 'ns_rows'::regclass, key => 'k', sum_value => 'f');
SELECT aggr_create('ns_n_small', 'ns_rows'::regclass, key => 'k', sum_value => 'n', namespace => 'g');
SET aggr_ext.node_bytes = 6400;
SELECT aggr_create('ns_f_large', 'ns_rows'::regclass, key => 'k', sum_value => 'f');
SELECT aggr_create('ns_n_large', 'ns_rows'::regclass, key => 'k', sum_value => 'n', namespace => 'g');
RESET aggr_ext.node_bytes;

-- single-row transactions (the journal path)
CALL ns_churn(1500, true);
SELECT count(*) > 300 AS has_rows FROM ns_rows;
SELECT what, bool_and(ok) FROM (SELECT * FROM ns_check('_small') UNION ALL SELECT * FROM ns_check('_large')) c
 GROUP BY what ORDER BY what;

-- the same node written in several flushes of one transaction, in
-- savepoints rolled back after a read flushed them, then written again
BEGIN;
CALL ns_churn(200);
SAVEPOINT a;
CALL ns_churn(200);
SELECT count(*) >= 0 FROM ns_check('_small');
ROLLBACK TO SAVEPOINT a;
CALL ns_churn(100);
SELECT what, bool_and(ok) FROM ns_check('_large') GROUP BY what ORDER BY what;
SAVEPOINT b;
CALL ns_churn(100);
SELECT count(*) >= 0 FROM ns_check('_large');
ROLLBACK TO SAVEPOINT b;
COMMIT;
SELECT what, bool_and(ok) FROM (SELECT * FROM ns_check('_small') UNION ALL SELECT * FROM ns_check('_large')) c
 GROUP BY what ORDER BY what;

-- a rolled-back transaction that wrote nodes, then more writes
BEGIN;
CALL ns_churn(300);
SELECT count(*) >= 0 FROM ns_check('_small');
ROLLBACK;
CALL ns_churn(300, true);

-- the node table rewritten (new file, new TIDs) under the node cache
VACUUM FULL aggr_internal.nodes;
CALL ns_churn(300, true);
SELECT what, bool_and(ok) FROM (SELECT * FROM ns_check('_small') UNION ALL SELECT * FROM ns_check('_large')) c
 GROUP BY what ORDER BY what;
CLUSTER aggr_internal.nodes USING nodes_pkey;
VACUUM aggr_internal.nodes;
CALL ns_churn(300, true);

-- deferred: deltas merged into journaled leaves; rebuild; repair
SELECT aggr_set_write_mode('ns_n_small', 'deferred'), aggr_set_write_mode('ns_n_large', 'deferred');
CALL ns_churn(500);
SELECT aggr_merge('ns_n_small') >= 0 AS merged, aggr_merge('ns_n_large') >= 0 AS merged;
CALL ns_churn(200);
SELECT aggr_rebuild('ns_f_small', background => false);
SELECT count(*) FROM (SELECT aggr_job_step('ns_f_small') FROM generate_series(1, 10)) s;
CALL ns_churn(300);
SELECT * FROM aggr_repair('ns_f_large');
SELECT what, bool_and(ok) FROM (SELECT * FROM ns_check('_small') UNION ALL SELECT * FROM ns_check('_large')) c
 GROUP BY what ORDER BY what;

-- every payload is format 2 and fits a heap row with room to spare
SELECT bool_and(get_byte(payload, 0) = 2) AS format_2, max(length(payload)) <= 8000 AS fits
  FROM aggr_internal.nodes;

SELECT aggr_drop(name) FROM aggr_internal.aggregates WHERE name LIKE 'ns\_%' ORDER BY name;
DROP PROCEDURE ns_churn(int, bool);
DROP FUNCTION ns_check(text);
DROP TABLE ns_rows;

-- The node size an aggregate gets when aggr_ext.node_bytes is 0 (the
-- default): 800 when every key and primary key column has a fixed width and
-- the widest entry key fits its 136-byte limit, 1600 otherwise (text keys or
-- primary keys, too many wide columns); a size set explicitly is kept.
SHOW aggr_ext.node_bytes;
CREATE TABLE ns_size_int (id bigint PRIMARY KEY, score int NOT NULL, at timestamptz, u uuid);
CREATE TABLE ns_size_text_pk (name text PRIMARY KEY, score int NOT NULL);
CREATE TABLE ns_size_wide (a int8, b int8, c int8, d int8, e int8, f int8, g int8, h int8,
                           i int8, j int8, k int8, l int8, m int8, n int8, o int8, p int8,
                           PRIMARY KEY (a, b, c, d, e, f, g, h, i, j, k, l, m, n, o));
SELECT aggr_create('ns_size_score', 'ns_size_int'::regclass, key => 'score DESC');
SELECT aggr_create('ns_size_multi', 'ns_size_int'::regclass, key => 'score, at, u');
SELECT aggr_create('ns_size_text_key', 'ns_size_int'::regclass, key => 'score::text');
SELECT aggr_create('ns_size_text_id', 'ns_size_text_pk'::regclass, key => 'score');
SELECT aggr_create('ns_size_wide_key', 'ns_size_wide'::regclass, key => 'p');
SET aggr_ext.node_bytes = 1600;
SELECT aggr_create('ns_size_set', 'ns_size_int'::regclass, key => 'score');
SET aggr_ext.node_bytes = 799;
RESET aggr_ext.node_bytes;
SELECT name, node_bytes FROM aggr_internal.aggregates WHERE name LIKE 'ns\_size\_%' ORDER BY name;
-- they work at that size (entries, splits, a merge of underfull nodes)
INSERT INTO ns_size_int SELECT g, g % 1000, now() - g * interval '1 s', md5(g::text)::uuid FROM generate_series(1, 3000) g;
DELETE FROM ns_size_int WHERE id % 3 <> 0;
SELECT aggr_count('ns_size_multi') = (SELECT count(*) FROM ns_size_int) AS count_ok,
       aggr_rank('ns_size_score', 500) = (SELECT count(*) + 1 FROM ns_size_int WHERE score > 500) AS rank_ok,
       (SELECT status FROM aggr_verify('ns_size_multi')) AS verify_multi,
       (SELECT status FROM aggr_verify('ns_size_score')) AS verify_score;
SELECT aggr_drop(name) FROM aggr_internal.aggregates WHERE name LIKE 'ns\_size\_%' ORDER BY name;
DROP TABLE ns_size_int, ns_size_text_pk, ns_size_wide;
