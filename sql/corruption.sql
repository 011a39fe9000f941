-- Corrupt node rows (a bad restore, a disk, a superuser's UPDATE) must make
-- every read raise XX001 (data_corrupted) naming the aggregate: never crash,
-- never hang (statement_timeout turns a hang into a visible 57014), and a
-- rebuild, or a clear and backfill, restores an exact aggregate.
SET statement_timeout = '5s';
-- 100-character keys: 3,000 entries make a tree three levels deep.
CREATE TABLE cor (id int PRIMARY KEY, k text NOT NULL);
INSERT INTO cor SELECT g, lpad(((g * 7919) % 3001)::text, 100, 'x') FROM generate_series(1, 3000) g;
SELECT aggr_create('cor', 'cor', 'k');
CREATE TEMP VIEW cor_tree AS
  SELECT t.* FROM aggr_internal.trees t JOIN aggr_internal.aggregates a USING (aggr_id)
   WHERE a.name = 'cor' AND t.generation = a.generation;
SELECT height, entries FROM cor_tree;
-- Node payload (src/core/node_codec.cpp): byte 0 format (2; 1 before
-- aggr_ext 1.1), byte 1 type (1 leaf, 2 internal), then varints. Kept to restore after each corruption.
CREATE TEMP TABLE cor_nodes AS
SELECT node_id, get_byte(payload, 1) AS type, payload
  FROM aggr_internal.nodes WHERE tree_id = (SELECT tree_id FROM cor_tree);
SELECT count(*) FILTER (WHERE type = 1) > 100 AS many_leaves, count(*) FILTER (WHERE type = 2) > 1 AS internal_levels
  FROM cor_nodes;

-- Every read function, by SQLSTATE ('ok' when it answered), with the
-- message when a corruption error does not name the aggregate.
CREATE FUNCTION cor_sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || CASE WHEN SQLSTATE = 'XX001' AND SQLERRM NOT LIKE 'aggregate "cor" is corrupt: %'
                          THEN ' unnamed: ' || SQLERRM ELSE '' END;
END $$;
CREATE FUNCTION cor_reads() RETURNS TABLE (read text, sqlstate text) LANGUAGE sql AS $$
  SELECT r, cor_sqlstate(q) FROM (VALUES
    ('aggr_rank', $q$SELECT aggr_rank('cor', lpad('1500', 100, 'x'))$q$),
    ('aggr_at', $q$SELECT * FROM aggr_at('cor', 1700)$q$),
    ('aggr_page', $q$SELECT * FROM aggr_page('cor', 10, 3000)$q$),
    ('aggr_min', $q$SELECT aggr_min('cor')$q$),
    ('aggr_max', $q$SELECT aggr_max('cor')$q$),
    ('aggr_count', $q$SELECT aggr_count('cor', lower => lpad('1000', 100, 'x'), upper => lpad('2000', 100, 'x'))$q$),
    ('aggr_verify', $q$SELECT * FROM aggr_verify('cor')$q$)) v(r, q)
$$;
CREATE FUNCTION cor_restore() RETURNS void LANGUAGE sql AS $$
  UPDATE aggr_internal.nodes n SET payload = c.payload FROM cor_nodes c
   WHERE n.tree_id = (SELECT tree_id FROM cor_tree) AND n.node_id = c.node_id AND n.payload <> c.payload
$$;
SELECT * FROM cor_reads();

-- 1. Internal nodes with zero children (every internal node but the root).
UPDATE aggr_internal.nodes SET payload = '\x010200'
 WHERE tree_id = (SELECT tree_id FROM cor_tree) AND get_byte(payload, 1) = 2
   AND node_id <> (SELECT root FROM cor_tree);
SELECT * FROM cor_reads();
-- Writes into it fail the same way (a read flushes them into the tree).
SELECT cor_sqlstate($$INSERT INTO cor VALUES (5000, lpad('1', 100, 'x')); SELECT aggr_count('cor')$$) AS insert,
       cor_sqlstate($$DELETE FROM cor WHERE id = 17; SELECT aggr_count('cor')$$) AS delete;
-- Also at commit, where a write is applied when no read flushed it first.
INSERT INTO cor VALUES (5000, lpad('1', 100, 'x'));
SELECT count(*) AS rows_unchanged FROM cor;
SELECT cor_restore();

-- 2. A node that is its own child, and a cycle through an ancestor: every
-- internal node below the root, and every leaf, takes the root's payload
-- (so its children are the root's children: itself, or its ancestors).
UPDATE aggr_internal.nodes SET payload = (SELECT payload FROM cor_nodes WHERE node_id = (SELECT root FROM cor_tree))
 WHERE tree_id = (SELECT tree_id FROM cor_tree) AND node_id <> (SELECT root FROM cor_tree);
SELECT * FROM cor_reads();
SELECT cor_restore();
UPDATE aggr_internal.nodes SET payload = (SELECT payload FROM cor_nodes WHERE node_id = (SELECT root FROM cor_tree))
 WHERE tree_id = (SELECT tree_id FROM cor_tree) AND get_byte(payload, 1) = 1;
SELECT * FROM cor_reads();
SELECT cor_restore();

-- 3. Garbage payloads in every leaf.
UPDATE aggr_internal.nodes SET payload = '\xdeadbeef'
 WHERE tree_id = (SELECT tree_id FROM cor_tree) AND get_byte(payload, 1) = 1;
SELECT * FROM cor_reads();
SELECT cor_restore();

-- 4. Forged key headers. A leaf entry is a varint length and the key:
-- the column flag (2: short varlena) and its 1-byte varlena header, the
-- text, then the primary key. Every header becomes a 0 byte, which is no
-- 1-byte header: read as a 4-byte one it would claim a huge length.
SELECT bool_and(get_byte(payload, 2) < 128 AND get_byte(payload, 3) = 107 AND get_byte(payload, 4) = 2) AS layout_as_forged
  FROM cor_nodes WHERE type = 1;
CREATE FUNCTION cor_forge_headers(p bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
  pos int := 3;  -- format, type, one-byte entry count
BEGIN
  FOR i IN 1 .. get_byte(p, 2) LOOP
    p := set_byte(p, pos + 2, 0);    -- after the one-byte length and the column flag
    pos := pos + 1 + get_byte(p, pos);
  END LOOP;
  RETURN p;
END $$;
UPDATE aggr_internal.nodes SET payload = cor_forge_headers(payload)
 WHERE tree_id = (SELECT tree_id FROM cor_tree) AND get_byte(payload, 1) = 1;
SELECT * FROM cor_reads();
SELECT cor_restore();

-- 5. A recorded height beyond the tree's.
UPDATE aggr_internal.trees SET height = height + 1 WHERE tree_id = (SELECT tree_id FROM cor_tree);
SELECT * FROM cor_reads();
UPDATE aggr_internal.trees SET height = height - 1 WHERE tree_id = (SELECT tree_id FROM cor_tree);

-- Restored: every read answers again, exactly.
SELECT * FROM cor_reads();
SELECT status FROM aggr_verify('cor');

-- The error names the aggregate and says how to rebuild it.
UPDATE aggr_internal.nodes SET payload = '\x01'
 WHERE tree_id = (SELECT tree_id FROM cor_tree) AND node_id = (SELECT root FROM cor_tree);
\set VERBOSITY default
SELECT aggr_min('cor');
-- A name that needs quoting is quoted in the hint.
SELECT aggr_create('it''s', 'cor', 'k');
UPDATE aggr_internal.nodes n SET payload = '\x01'
  FROM aggr_internal.trees t JOIN aggr_internal.aggregates a USING (aggr_id)
 WHERE a.name = 'it''s' AND t.generation = a.generation AND n.tree_id = t.tree_id AND n.node_id = t.root;
SELECT aggr_max('it''s');
SELECT aggr_drop('it''s');

-- aggr_rebuild replaces the corrupt tree with an exact one.
SELECT aggr_rebuild('cor', background => false);
CALL aggr_wait('cor');
SELECT * FROM cor_reads();
SELECT status, table_count, aggregate_count FROM aggr_verify('cor');
SELECT aggr_rank('cor', lpad('1500', 100, 'x')) = (SELECT count(*) + 1 FROM cor WHERE k < lpad('1500', 100, 'x')) AS rank_exact,
       aggr_min('cor') IS NOT DISTINCT FROM (SELECT min(k) FROM cor) AS min_exact,
       aggr_max('cor') IS NOT DISTINCT FROM (SELECT max(k) FROM cor) AS max_exact,
       aggr_count('cor', lower => lpad('1000', 100, 'x'), upper => lpad('2000', 100, 'x'))
         = (SELECT count(*) FROM cor WHERE k BETWEEN lpad('1000', 100, 'x') AND lpad('2000', 100, 'x')) AS count_exact;
SELECT count(*) AS page_rows,
       count(*) FILTER (WHERE p.id::int IS DISTINCT FROM o.id) AS page_mismatches
  FROM aggr_page('cor', 0, 3000) p
  FULL JOIN (SELECT id, row_number() OVER (ORDER BY k, id) - 1 AS pos FROM cor) o ON o.pos = p.position;

-- Corrupt again: aggr_clear and a backfill also restore it.
UPDATE aggr_internal.nodes SET payload = '\xdeadbeef'
 WHERE tree_id = (SELECT tree_id FROM cor_tree) AND node_id = (SELECT root FROM cor_tree);
SELECT cor_sqlstate($$SELECT aggr_rank('cor', 'x')$$) AS rank_before_clear;
SELECT aggr_clear('cor');
CALL aggr_backfill('cor', wait => true);
SELECT * FROM cor_reads();
SELECT status, table_count, aggregate_count FROM aggr_verify('cor');
SELECT aggr_at.id::int = (SELECT id FROM cor ORDER BY k, id OFFSET 1700 LIMIT 1) AS at_exact FROM aggr_at('cor', 1700);

SELECT aggr_drop('cor');
DROP FUNCTION cor_reads(), cor_sqlstate(text), cor_restore(), cor_forge_headers(bytea);
DROP TABLE cor;
RESET statement_timeout;
