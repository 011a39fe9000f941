-- Calls every query and maintenance function with generated arguments
-- (wrong types, NULLs, unknown names, huge and negative offsets, NaN,
-- infinities, empty namespaces, oversize values). Each call must either
-- answer or raise an ordinary error; the server must stay up.
SET client_min_messages = warning;
SELECT setseed(0.4242);
CREATE TABLE fz (id int PRIMARY KEY, g int NOT NULL, f float8, t text);
INSERT INTO fz SELECT i, i % 3, CASE i % 7 WHEN 0 THEN 'NaN' WHEN 1 THEN 'Infinity' ELSE i * 0.5 END, md5(i::text)
  FROM generate_series(1, 3000) i;
SELECT aggr_create('fz_f', 'fz'::regclass, key => 'f DESC NULLS LAST', sum_value => 'f');
SELECT aggr_create('fz_t', 'fz'::regclass, key => 't, f', namespace => 'g');
CREATE TABLE fz_calls (call text);
INSERT INTO fz_calls
SELECT format(fn, name, arg1, arg2)
  FROM (VALUES ('SELECT aggr_count(%L, lower => %s, upper => %s)'),
               ('SELECT aggr_count(%L, namespace => %s, lower => %s)'),
               ('SELECT aggr_sum(%L, lower => %s, upper => %s, lower_inclusive => false)'),
               ('SELECT aggr_rank(%L, %s, namespace => %s)'),
               ('SELECT * FROM aggr_at(%L, %s, namespace => %s)'),
               ('SELECT * FROM aggr_page(%L, %s, %s)'),
               ('SELECT * FROM aggr_page_rows(%L, %s, 3, NULL::fz, namespace => %s)'),
               ('SELECT aggr_min(%L, namespace => %s), %s'),
               ('SELECT * FROM aggr_status(%L), %s, %s'),
               ('SELECT aggr_clear(%L, namespace => %s), %s')) f(fn),
       (VALUES ('fz_f'), ('fz_t'), ('nope'), (NULL), ('')) n(name),
       (VALUES ('NULL'), ('0'), ('-1'), ('9223372036854775807'), ('-9223372036854775808'), ('''NaN''::float8'),
               ('''-Infinity''::float8'), ('''abc'''), ('ROW(''a'', 1.5)'), ('ROW(1, 2, 3)'), ('now()'),
               ('repeat(''x'', 5000)'), ('2'), ('''{1,2}''::int[]'), ('ROW(NULL)')) a1(arg1),
       (VALUES ('NULL'), ('1'), ('''0.5'''), ('1e308'), ('-5'), ('ROW(''b'')')) a2(arg2)
 WHERE random() < 0.35;
DO $$
DECLARE c record; ok int := 0; failed int := 0;
BEGIN
  FOR c IN SELECT call FROM fz_calls LOOP
    BEGIN
      EXECUTE c.call;
      ok := ok + 1;
    EXCEPTION WHEN OTHERS THEN
      IF SQLSTATE IN ('XX000', 'XX001') THEN
        RAISE WARNING 'internal error from %: %', c.call, SQLERRM;
      END IF;
      failed := failed + 1;
    END;
  END LOOP;
  RAISE NOTICE 'answered %, refused %', ok, failed;
END $$;
SELECT count(*) > 500 AS many_calls FROM fz_calls;
-- still up, and the aggregates are intact (a generated aggr_clear may have emptied them)
CALL aggr_backfill('fz_f', wait => true);
CALL aggr_backfill('fz_t', wait => true);
SELECT status FROM aggr_verify('fz_f');
SELECT status FROM aggr_verify('fz_t');
SELECT aggr_drop('fz_f'), aggr_drop('fz_t');
DROP TABLE fz, fz_calls;
