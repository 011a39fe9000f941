#!/bin/sh
# ATTACH PARTITION of a populated 1M-row table into a partitioned table with
# an aggregate (its part is built inside the ATTACH), against the same ATTACH
# into a partitioned table without one and CREATE INDEX on that table. Each
# statement runs in a transaction that is rolled back, twice.
# Usage: PGHOST=... PGPORT=... test/bench/attach.sh
# Uses (and drops) the database aggr_bench_attach of the running cluster.
set -eu
DB=aggr_bench_attach
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 -d $DB <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION aggr_ext;
CREATE TABLE ev (id bigint PRIMARY KEY, score int NOT NULL, pts int NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE ev_0 PARTITION OF ev FOR VALUES FROM (0) TO (1000001);
INSERT INTO ev SELECT g, (g::bigint * 7919) % 1000003, g % 100 FROM generate_series(1, 1000000) g;
CREATE TABLE plain (LIKE ev INCLUDING ALL) PARTITION BY RANGE (id);          -- the same, without an aggregate
CREATE TABLE ev_1 (LIKE ev INCLUDING ALL);
INSERT INTO ev_1 SELECT g, (g::bigint * 7919) % 1000003, g % 100 FROM generate_series(1000001, 2000000) g;
VACUUM ANALYZE ev, ev_1;
SELECT aggr_create('ev_lb', 'ev'::regclass, key => 'score DESC', sum_value => 'pts', build => 'now');
SQL
t() { psql -X -At -d $DB -c '\timing on' -c 'BEGIN' -c "$1" -c 'ROLLBACK' | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sed -n 2p; }
for i in 1 2; do
  echo "ATTACH into ev (aggregate): $(t 'ALTER TABLE ev ATTACH PARTITION ev_1 FOR VALUES FROM (1000001) TO (2000001)') ms"
  echo "ATTACH into plain (none):   $(t 'ALTER TABLE plain ATTACH PARTITION ev_1 FOR VALUES FROM (1000001) TO (2000001)') ms"
  echo "CREATE INDEX ON ev_1 (score DESC): $(t 'CREATE INDEX ON ev_1 (score DESC)') ms"
  echo "CREATE INDEX ON ev_1 (score DESC, id) INCLUDE (pts): $(t 'CREATE INDEX ON ev_1 (score DESC, id) INCLUDE (pts)') ms"
done
psql -X -q -d postgres -c "DROP DATABASE $DB"
