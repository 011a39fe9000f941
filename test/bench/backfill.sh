#!/usr/bin/env bash
# Building an aggregate over a populated table, next to CREATE INDEX on the
# same key, and the longest wait a writer sees while a rebuild runs.
#   test/bench/backfill.sh [ROWS]     (default 1000000)
# Starts its own throwaway cluster; prints one table.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-1000000}
. test/bench/throwaway_cluster.sh
AGGR_PG_DURABLE=1 start_throwaway_cluster aggr_bench "${AGGR_BENCH_PORT:-5497}"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
ms() { local t0 t1; t0=$(date +%s%N); q "$1" >/dev/null; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }

q "CREATE EXTENSION aggr_ext"
q "CREATE TABLE scores (id bigint PRIMARY KEY, score int NOT NULL, points int NOT NULL)"
q "INSERT INTO scores SELECT g, (g::bigint * 7919) % 1000003, g % 1000 FROM generate_series(1, $ROWS) g"
q "VACUUM ANALYZE scores"
q "CHECKPOINT"

index_ms=$(ms "CREATE INDEX scores_score ON scores (score DESC, id)")
q "DROP INDEX scores_score"
q "CHECKPOINT"
create_ms=$(ms "SELECT aggr_create('lb', 'scores'::regclass, key => 'score DESC', sum_value => 'points', build => 'now')")
q "SELECT aggr_clear('lb')"
q "CHECKPOINT"
backfill_ms=$(ms "CALL aggr_backfill('lb', batch_size => 50000, wait => true)")
verify=$(q "SELECT status FROM aggr_verify('lb')")

# Writers during a background rebuild: 4 clients of single-row upserts.
cat >"$DIR/write.sql" <<'SQL'
\set id random(1, 2000000)
\set s random(0, 1000000)
INSERT INTO scores VALUES (:id, :s, 1) ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score;
SQL
chmod 644 "$DIR/write.sql"
pgbench -n -c 4 -j 2 -T 5 -f "$DIR/write.sql" -l --log-prefix="$DIR/base" >/dev/null 2>&1
q "SELECT aggr_rebuild('lb', batch_size => 50000)"
t0=$(date +%s%N)
pgbench -n -c 4 -j 2 -T 600 -f "$DIR/write.sql" -l --log-prefix="$DIR/during" >/dev/null 2>&1 &
bench=$!
until [ "$(q "SELECT job IS NULL FROM aggr_status('lb')")" = t ]; do sleep 0.2; done
rebuild_ms=$((($(date +%s%N) - t0) / 1000000))
kill -TERM $bench 2>/dev/null || true
wait $bench 2>/dev/null || true
max_base=$(cat "$DIR"/base* | awk '{ if ($3 > m) m = $3 } END { printf "%.1f", m / 1000 }')
max_during=$(cat "$DIR"/during* | awk -v t0="$t0" -v t1="$(( t0 + rebuild_ms * 1000000 ))" \
  '{ ts = $5 * 1000000000 + $6 * 1000; if (ts >= t0 && ts <= t1 && $3 > m) m = $3 } END { printf "%.1f", m / 1000 }')
txns=$(cat "$DIR"/during* | awk -v t0="$t0" -v t1="$(( t0 + rebuild_ms * 1000000 ))" '{ ts = $5 * 1000000000 + $6 * 1000; if (ts >= t0 && ts <= t1) n++ } END { print n + 0 }')
verify2=$(q "SELECT status FROM aggr_verify('lb')")

echo
echo "rows: $ROWS    machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, PostgreSQL $(pg_config --version | awk '{print $2}')"
printf '%-58s %12s\n' "what" "ms"
printf '%-58s %12s\n' "CREATE INDEX ON scores (score DESC, id)" "$index_ms"
printf '%-58s %12s  (%.2fx CREATE INDEX)\n' "aggr_create(build => 'now'): sort + bottom-up build" "$create_ms" "$(echo "$create_ms / $index_ms" | bc -l)"
printf '%-58s %12s  (%.2fx CREATE INDEX, verify: %s)\n' "CALL aggr_backfill(wait => true): background, 50k batches" "$backfill_ms" "$(echo "$backfill_ms / $index_ms" | bc -l)" "$verify"
printf '%-58s %12s  (%s writer transactions meanwhile, verify: %s)\n' "aggr_rebuild under 4 writing clients" "$rebuild_ms" "$txns" "$verify2"
printf '%-58s %12s\n' "longest writer transaction, no job running (ms)" "$max_base"
printf '%-58s %12s\n' "longest writer transaction during the rebuild (ms)" "$max_during"
