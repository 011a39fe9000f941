#!/bin/sh
# Reads of one aggregate over 16 hash partitions against the same rows in one
# table: aggr_count, aggr_rank, aggr_page (20 rows at a random offset),
# aggr_at (a random offset). One client, pgbench -M prepared, short runs.
# Usage: PGHOST=... PGPORT=... test/bench/partitions.sh [ROWS] [SECONDS]
# Uses (and drops) the database aggr_bench_parts of the running cluster.
set -eu
ROWS=${1:-1000000}
SECS=${2:-5}
DB=aggr_bench_parts
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 -d $DB <<SQL >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION aggr_ext;
CREATE TABLE flat (id bigint PRIMARY KEY, score int NOT NULL, pts int NOT NULL);
CREATE TABLE parted (id bigint PRIMARY KEY, score int NOT NULL, pts int NOT NULL) PARTITION BY HASH (id);
SELECT format('CREATE TABLE parted_%s PARTITION OF parted FOR VALUES WITH (MODULUS 16, REMAINDER %s)', r, r)
  FROM generate_series(0, 15) r \gexec
INSERT INTO flat SELECT g, (g::bigint * 7919) % 1000003, g % 100 FROM generate_series(1, $ROWS) g;
INSERT INTO parted SELECT * FROM flat;
VACUUM ANALYZE flat, parted;
SELECT aggr_create('flat_lb', 'flat'::regclass, key => 'score DESC', sum_value => 'pts', build => 'now');
SELECT aggr_create('parted_lb', 'parted'::regclass, key => 'score DESC', sum_value => 'pts', build => 'now');
SQL
run() {  # name, sql
  printf '%s\n' "\\set k random(0, $ROWS - 21)" "\\set s random(0, 1000000)" "$2" > /tmp/aggr_bench_parts.sql
  lat=$(pgbench -n -M prepared -c 1 -T "$SECS" -f /tmp/aggr_bench_parts.sql $DB 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  printf '%-28s %10s ms\n' "$1" "$lat"
}
for t in ${TABLES:-flat parted}; do
  run "$t aggr_count" "SELECT aggr_count('${t}_lb');"
  run "$t aggr_rank" "SELECT aggr_rank('${t}_lb', :s);"
  run "$t aggr_at" "SELECT * FROM aggr_at('${t}_lb', :k);"
  run "$t aggr_page (20)" "SELECT * FROM aggr_page('${t}_lb', :k, 20);"
done
# partition DDL: DETACH drops one part, ATTACH builds it again in its own transaction
psql -X -q -d $DB -c "ALTER TABLE parted DETACH PARTITION parted_0" >/dev/null
printf '%-28s %10s\n' "ATTACH of $(psql -X -At -d $DB -c 'SELECT count(*) FROM parted_0') rows" \
  "$(psql -X -At -d $DB -c '\timing on' -c 'ALTER TABLE parted ATTACH PARTITION parted_0 FOR VALUES WITH (MODULUS 16, REMAINDER 0)' | sed -n 's/^Time: \([0-9.]*\) ms.*/\1 ms/p')"
printf '%-28s %10s\n' "build of $ROWS rows" \
  "$(psql -X -At -d $DB -c '\timing on' -c "SELECT aggr_rebuild('flat_lb', background => false)" -c "CALL aggr_wait('flat_lb')" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1 ms/p' | tail -1)"
run "flat count(*)" "SELECT count(*) FROM flat;"
run "parted count(*)" "SELECT count(*) FROM parted;"
[ -n "${KEEP:-}" ] || psql -X -q -d postgres -c "DROP DATABASE $DB"
