#!/usr/bin/env bash
# The benchmark against what users do today: plain PostgreSQL (count(*),
# OFFSET, BETWEEN, percentile_disc, a btree index) and a Redis sorted set.
#   test/bench/run.sh [ROWS]        (default 100000: about a minute)
#   test/bench/run.sh 1000000       (the README figures; also 10000000)
# Starts its own PostgreSQL cluster and redis-server (loopback TCP for both),
# loads the data, measures each pair side by side in this run and prints one
# table of medians and ratios. Env: BENCH_SECONDS (pgbench write runs, 10),
# FAST_TX (transactions per fast-query median, 20000), SLOW_TX (per
# plain-scan median, 9), AGGR_BENCH_PORT / AGGR_BENCH_REDIS_PORT.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-100000}
SECONDS_W=${BENCH_SECONDS:-10}
FAST_TX=${FAST_TX:-20000}
SLOW_TX=${SLOW_TX:-9}
PORT=${AGGR_BENCH_PORT:-5494}
REDIS_PORT=${AGGR_BENCH_REDIS_PORT:-6396}
command -v redis-server >/dev/null || { echo "needs redis-server (Debian package redis-server)" >&2; exit 1; }

. test/bench/throwaway_cluster.sh
export AGGR_PG_LISTEN=127.0.0.1
AGGR_PG_DURABLE=1 start_throwaway_cluster aggr_bench "$PORT"
export PGHOST=127.0.0.1
REDIS_DIR="$DIR/redis"
mkdir -p "$REDIS_DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR" && chmod 777 "$REDIS_DIR"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$REDIS_DIR" \
  --daemonize yes --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_DIR/redis.pid" >/dev/null
trap 'redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; test/pg_cluster.sh stop "$DIR/pg"; rm -rf "$DIR"' EXIT

q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
now_ns() { date +%s%N; }
ms() { local t0; t0=$(now_ns); q "$1" >/dev/null; echo $((($(now_ns) - t0) / 1000000)); }
step() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }

# Median client-observed time per transaction (ms) of a pgbench script: one
# client, prepared statements, $2 transactions, per-transaction log.
median_ms() {  # called in $(...): a unique log prefix per call, not a counter
  local script=$1 tx=$2 prefix
  prefix="$DIR/log.$(date +%s%N).$(basename "$script" .sql)"
  pgbench -n -M prepared -c 1 -t "$tx" -f "$script" -l --log-prefix="$prefix" >"$prefix.out" 2>&1 ||
    { cat "$prefix.out" >&2; exit 1; }
  # pgbench 15 logs a latency of 0 for many fast prepared transactions, so
  # the time of each is taken between consecutive completions (one client).
  cat "$prefix".[0-9]* | awk '{ t = $5 * 1000000 + $6; if (NR > 1) print t - prev; prev = t }' | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] / 1000 }'
}
script() { # name, body
  printf '%s\n' "$2" >"$DIR/$1.sql"
  chmod 644 "$DIR/$1.sql"
  echo "$DIR/$1.sql"
}
# Peak private (anonymous) memory of the backend that runs $1, in MB. Shared
# buffers are not counted: they are preallocated shared memory.
peak_backend_mb() {
  local pidfile="$DIR/backend.pid" peakfile="$DIR/peak.kb"
  rm -f "$pidfile"; echo 0 >"$peakfile"
  (
    until [ -s "$pidfile" ]; do sleep 0.05; done
    pid=$(cat "$pidfile") peak=0
    while [ -r "/proc/$pid/status" ]; do
      kb=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${kb:-0}" -gt "$peak" ] && peak=$kb && echo "$peak" >"$peakfile"
      sleep 0.02
    done
  ) &
  local watcher=$!
  psql -X -q -At -v ON_ERROR_STOP=1 >/dev/null <<SQL
\o $pidfile
SELECT pg_backend_pid();
\o
SELECT pg_sleep(0.2);
$1;
SQL
  wait $watcher || true
  echo $(($(cat "$peakfile") / 1024))
}

n=$ROWS
max_score=1000003
gen="SELECT g, (g::bigint * 7919) % $max_score, g % 1000 FROM generate_series(1, $n) g"
q "CREATE EXTENSION aggr_ext"

step "4: bulk INSERT ... SELECT of $n rows (aggregate vs btree)"
q "CREATE TABLE scores (id bigint PRIMARY KEY, score bigint NOT NULL, points bigint NOT NULL)"
q "CREATE TABLE scores_btree (LIKE scores INCLUDING ALL)"
q "CREATE INDEX scores_btree_score ON scores_btree (score)"
q "SELECT aggr_create('board', 'scores'::regclass, key => 'score DESC', sum_value => 'points')"
q "CHECKPOINT"
btree_insert_ms=$(ms "INSERT INTO scores_btree $gen")
q "CHECKPOINT"
t0=$(now_ns)
insert_peak_mb=$(peak_backend_mb "INSERT INTO scores $gen")
aggr_insert_ms=$((($(now_ns) - t0) / 1000000))
q "VACUUM ANALYZE scores"
q "VACUUM ANALYZE scores_btree"

step "6, 7: building over the populated table (aggr_create vs CREATE INDEX), storage"
q "SELECT count(*) FROM scores" >/dev/null
q "CHECKPOINT"
index_ms=$(ms "CREATE INDEX scores_score_id ON scores (score DESC, id)")
q "CHECKPOINT"
build_ms=$(ms "SELECT aggr_create('built', 'scores'::regclass, key => 'score DESC', sum_value => 'points', build => 'now')")
built_bytes=$(q "SELECT bytes FROM aggr_status('built')")
maintained_bytes=$(q "SELECT bytes FROM aggr_status('board')")
index_bytes=$(q "SELECT pg_relation_size('scores_score_id')")
q "SELECT aggr_drop('built')"
q "VACUUM ANALYZE scores"

step "spot checks: each aggregate answer equals its plain SQL"
mid=$((n / 2)) lo=300000 hi=400000
check() { [ "$(q "$1")" = "$(q "$2")" ] || { echo "MISMATCH: $1 vs $2" >&2; exit 1; }; }
check "SELECT aggr_rank('board', 500000::bigint)" "SELECT count(*) + 1 FROM scores WHERE score > 500000"
check "SELECT string_agg(id, ',') FROM aggr_page('board', $mid, 20)" \
  "SELECT string_agg(id::text, ',') FROM (SELECT id FROM scores ORDER BY score DESC, id OFFSET $mid LIMIT 20) p"
check "SELECT aggr_count('board', lower => $hi, upper => $lo)" "SELECT count(*) FROM scores WHERE score BETWEEN $lo AND $hi"
check "SELECT aggr_sum('board', lower => $hi, upper => $lo)" "SELECT sum(points) FROM scores WHERE score BETWEEN $lo AND $hi"
check "SELECT aggr_position('board', $mid::bigint)" \
  "SELECT p FROM (SELECT id, row_number() OVER (ORDER BY score DESC, id) - 1 AS p FROM scores) s WHERE id = $mid"
check "SELECT key FROM aggr_at('board', (aggr_count('board') * 37 + 99) / 100 - 1)" \
  "SELECT percentile_disc(0.37) WITHIN GROUP (ORDER BY score DESC) FROM scores"

step "1, 2, 3, 8, 8b: reads (pgbench, prepared, 1 client, random parameters)"
select1=$(script select1 'SELECT 1;')
rank=$(script rank "\\set x random(0, $max_score)
SELECT aggr_rank('board', :x::bigint);")
rank_plain=$(script rank_plain "\\set x random(0, $max_score)
SELECT count(*) + 1 FROM scores WHERE score > :x;")
page=$(script page "SELECT * FROM aggr_page('board', $mid, 20);")
page_plain=$(script page_plain "SELECT id, score FROM scores ORDER BY score DESC, id OFFSET $mid LIMIT 20;")
width=$((max_score / 10))
range=$(script range "\\set lo random(0, $((max_score - width)))
SELECT aggr_count('board', lower => (:lo + $width)::bigint, upper => :lo::bigint), aggr_sum('board', lower => (:lo + $width)::bigint, upper => :lo::bigint);")
range_plain=$(script range_plain "\\set lo random(0, $((max_score - width)))
SELECT count(*), sum(points) FROM scores WHERE score BETWEEN :lo AND :lo + $width;")
pct=$(script pct "\\set p random(1, 99)
SELECT key FROM aggr_at('board', (aggr_count('board') * :p + 99) / 100 - 1);")
pct_plain=$(script pct_plain "\\set p random(1, 99)
SELECT percentile_disc(:p / 100.0) WITHIN GROUP (ORDER BY score DESC) FROM scores;")
position=$(script position "\\set id random(1, $n)
SELECT aggr_position('board', :id::bigint);")
position_plain=$(script position_plain "\\set id random(1, $n)
SELECT p FROM (SELECT id, row_number() OVER (ORDER BY score DESC, id) - 1 AS p FROM scores) s WHERE id = :id;")
select1_ms=$(median_ms "$select1" "$FAST_TX")
rank_ms=$(median_ms "$rank" "$FAST_TX")
rank_plain_ms=$(median_ms "$rank_plain" "$SLOW_TX")
page_ms=$(median_ms "$page" "$FAST_TX")
page_plain_ms=$(median_ms "$page_plain" "$SLOW_TX")
range_ms=$(median_ms "$range" "$FAST_TX")
range_plain_ms=$(median_ms "$range_plain" "$SLOW_TX")
pct_ms=$(median_ms "$pct" "$FAST_TX")
pct_plain_ms=$(median_ms "$pct_plain" "$SLOW_TX")
position_ms=$(median_ms "$position" "$FAST_TX")
position_plain_ms=$(median_ms "$position_plain" "$SLOW_TX")

step "10, 11, 12: the planner answers plain SQL (aggr_ext.enable_planner on vs off); its cost to unrelated queries"
# The cluster runs with the planner off (test/pg_cluster.sh: the rows above
# compare with plain SQL); these runs turn it on per session.
count_plain=$(script count_plain "\\set x random(0, $max_score)
SELECT count(*) FROM scores WHERE score > :x;")
planned_check() {
  [ "$(PGOPTIONS="-c aggr_ext.enable_planner=on" q "$1")" = "$(q "$1")" ] || { echo "PLANNER MISMATCH: $1" >&2; exit 1; }
  PGOPTIONS="-c aggr_ext.enable_planner=on" q "EXPLAIN $1" | grep -q AggrExtScan || { echo "not planned from the aggregate: $1" >&2; exit 1; }
}
planned_check "SELECT count(*) FROM scores WHERE score > 500000"
planned_check "SELECT id, score FROM scores ORDER BY score DESC, id OFFSET $mid LIMIT 20"
count_on_ms=$(export PGOPTIONS="-c aggr_ext.enable_planner=on"; median_ms "$count_plain" "$FAST_TX")
count_off_ms=$(median_ms "$count_plain" "$SLOW_TX")
page_on_ms=$(export PGOPTIONS="-c aggr_ext.enable_planner=on"; median_ms "$page_plain" "$FAST_TX")
# Planning cost to queries no aggregate answers: pgbench -S (simple protocol:
# every query planned) on its own scale-10 tables, off / on / off / on.
q "CREATE DATABASE pgbench_s"
pgbench -i -q -s 10 pgbench_s >/dev/null 2>&1
select_tps() { PGOPTIONS="-c aggr_ext.enable_planner=$1" pgbench -n -S -c 1 -T "$SECONDS_W" pgbench_s 2>&1 | awk '/^tps/ { printf "%.0f", $3 }'; }
s_off1=$(select_tps off); s_on1=$(select_tps on); s_off2=$(select_tps off); s_on2=$(select_tps on)

step "9: Redis sorted set of the same scores, ZREVRANK (redis-benchmark, 1 client)"
# Members are redis-benchmark's __rand_int__ spelling of the id (12 digits).
q "COPY (SELECT score, lpad(id::text, 12, '0') FROM scores) TO STDOUT" |
  awk '{ printf "*4\r\n$4\r\nZADD\r\n$5\r\nboard\r\n$%d\r\n%s\r\n$12\r\n%s\r\n", length($1), $1, $2 }' |
  redis-cli -p "$REDIS_PORT" --pipe >/dev/null
[ "$(redis-cli -p "$REDIS_PORT" zcard board)" = "$n" ] || { echo "redis load failed" >&2; exit 1; }
redis_ms=$(redis-benchmark -p "$REDIS_PORT" -c 1 -n "$FAST_TX" -r "$((n + 1))" --csv ZREVRANK board __rand_int__ |
  awk -F'"' 'NR == 2 { print $10 }')
rank_again_ms=$(median_ms "$rank" "$FAST_TX")

step "5: single-row INSERT/UPDATE transactions (pgbench, $SECONDS_W s per run)"
q "DROP INDEX scores_score_id"
for t in scores scores_btree; do
  q "CREATE SEQUENCE ${t}_new START $((n + 1))"
  script "u_$t" "\\set id random(1, $n)
\\set s random(0, $max_score)
UPDATE $t SET score = :s WHERE id = :id;" >/dev/null
  script "i_$t" "\\set s random(0, $max_score)
INSERT INTO $t VALUES (nextval('${t}_new'), :s, 1);" >/dev/null
done
# UPDATE and INSERT transactions, half each: "tps wal_bytes_per_transaction"
# (everything the run wrote to WAL, the merger's too, over its transactions).
write_run() { # table, clients
  local out l0 l1 tx
  q "CHECKPOINT"
  l0=$(q "SELECT pg_current_wal_lsn()")
  out=$(pgbench -n -M prepared -c "$2" -j 2 -T "$SECONDS_W" -f "$DIR/u_$1.sql@1" -f "$DIR/i_$1.sql@1" 2>&1) ||
    { echo "$out" >&2; exit 1; }
  l1=$(q "SELECT pg_current_wal_lsn()")
  tx=$(echo "$out" | awk '/number of transactions actually processed/ { split($0, a, ": "); split(a[2], b, "/"); print b[1] }')
  echo "$out" | awk -v wal="$(q "SELECT pg_wal_lsn_diff('$l1', '$l0')")" -v tx="$tx" \
    '/^tps/ { printf "%.0f %.0f\n", $3, wal / tx }'
}
board_bytes_before=$(q "SELECT bytes FROM aggr_status('board')")
read -r btree_tps1 btree_wal1 < <(write_run scores_btree 1)
read -r aggr_tps1 aggr_wal1 < <(write_run scores 1)
read -r btree_tps8 btree_wal8 < <(write_run scores_btree 8)
read -r aggr_tps8 aggr_wal8 < <(write_run scores 8)
board_bytes_after=$(q "SELECT bytes FROM aggr_status('board')")
# The deferred write path: writers append deltas, the merger folds them in.
q "SELECT aggr_set_write_mode('board', 'deferred')"
read -r deferred_tps1 deferred_wal1 < <(write_run scores 1)
deferred_pending1=$(q "SELECT count(*) FROM aggr_internal.deltas")
read -r deferred_tps8 deferred_wal8 < <(write_run scores 8)
deferred_pending8=$(q "SELECT count(*) FROM aggr_internal.deltas")
[ "$(q "SELECT status FROM aggr_verify('board')")" = ok ] || { echo "aggr_verify after deferred writes failed" >&2; exit 1; }
# Reads while a deferred writer runs (merger on), then with the merger
# paused over a known number of pending deltas.
pgbench -n -M prepared -c 1 -T $((SECONDS_W + 2)) -f "$DIR/u_scores.sql" >/dev/null 2>&1 &
writer=$!
sleep 1
pending_live=$(q "SELECT count(*) FROM aggr_internal.deltas")
rank_live_ms=$(median_ms "$rank" $((FAST_TX / 4)))
wait $writer
merging() {  # on | off; the setting is known once the library is loaded
  psql -X -q -At -v ON_ERROR_STOP=1 -c "LOAD 'aggr_ext'" -c "ALTER SYSTEM SET aggr_ext.merge_deltas = $1" \
    -c "SELECT pg_reload_conf()" >/dev/null
}
merging off; sleep 1.5
pgbench -n -M prepared -c 1 -t 500 -f "$DIR/u_scores.sql" >/dev/null 2>&1
pending_reads=$(q "SELECT count(*) FROM aggr_internal.deltas")
rank_pending_ms=$(median_ms "$rank" 1000)
merging on
merge_ms=$(ms "SELECT aggr_merge('board')")
q "SELECT aggr_set_write_mode('board', 'direct')"

step "memory: aggr_verify over the whole aggregate"
verify_status=""
verify_peak_mb=$(peak_backend_mb "SELECT status FROM aggr_verify('board')")
verify_status=$(q "SELECT status FROM aggr_verify('board')")
[ "$verify_status" = ok ] || { echo "aggr_verify after the benchmark: $verify_status" >&2; exit 1; }

ratio() { echo "scale=4; $1 / $2" | bc -l | awk '{ printf ($1 >= 100 ? "%.0f" : "%.2f"), $1 }'; }
meets() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo yes; else echo NO; fi; }
row() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@"; }

echo
echo "aggr_ext benchmark: $n rows; $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(free -g | awk '/Mem:/ { print $2 }') GiB;"
echo "PostgreSQL $(pg_config --version | awk '{ print $2 }') (default durability: fsync, synchronous_commit, full_page_writes on; shared_buffers=512MB), $(redis-server --version | awk '{ print $3 }' | tr -d 'v='); loopback TCP."
echo "Latencies are client-observed medians in ms (pgbench -M prepared, 1 client); ratio = how many times better."
echo
row "#" "workload" "aggr_ext" "compared with" "baseline" "ratio" "target met"
row "-" "-" "-" "-" "-" "-" "-"
r=$(ratio "$rank_plain_ms" "$rank_ms"); row 1 "aggr_rank of a random score" "$rank_ms" "count(*) WHERE score > x (index-only)" "$rank_plain_ms" "${r}x" "$(meets "$r >= 1000") (>= 1000x at 10M)"
r=$(ratio "$rank_ms" "$select1_ms"); row 1b "aggr_rank round trip" "$rank_ms" "SELECT 1 round trip" "$select1_ms" "${r}x the time" "$(meets "$r <= 1.5") (<= 1.5x)"
r=$(ratio "$page_plain_ms" "$page_ms"); row 2 "aggr_page at offset n/2, 20 rows" "$page_ms" "ORDER BY score DESC, id OFFSET n/2 LIMIT 20" "$page_plain_ms" "${r}x" "$(meets "$r >= 1000") (>= 1000x at 10M)"
r=$(ratio "$range_plain_ms" "$range_ms"); row 3 "aggr_count + aggr_sum of a random 10% range" "$range_ms" "count(*), sum() WHERE score BETWEEN" "$range_plain_ms" "${r}x" "$(meets "$r >= 100") (>= 100x at 10M)"
r=$(ratio "$aggr_insert_ms" "$btree_insert_ms"); row 4 "INSERT ... SELECT $n rows, aggregate" "$aggr_insert_ms" "same table with a btree on score" "$btree_insert_ms" "${r}x the time" "$(meets "$r <= 1.5") (<= 1.5x)"
r=$(ratio "$aggr_tps1" "$btree_tps1"); row 5a "single-row INSERT/UPDATE tps, 1 client" "$aggr_tps1" "same table with a btree on score" "$btree_tps1" "${r}x the tps" "$(meets "$r >= 0.8") (>= 0.8x)"
r=$(ratio "$aggr_tps8" "$btree_tps8"); row 5b "single-row INSERT/UPDATE tps, 8 clients" "$aggr_tps8" "same table with a btree on score" "$btree_tps8" "${r}x the tps" "$(meets "$r >= 0.6") (>= 0.6x)"
r=$(ratio "$aggr_wal1" "$btree_wal1"); row 5c "WAL bytes per transaction of 5a" "$aggr_wal1" "same table with a btree on score" "$btree_wal1" "${r}x the bytes" "$(meets "$r <= 3") (<= 3x)"
r=$(ratio "$aggr_wal8" "$btree_wal8"); row 5d "WAL bytes per transaction of 5b" "$aggr_wal8" "same table with a btree on score" "$btree_wal8" "${r}x the bytes" "$(meets "$r <= 3") (<= 3x)"
r=$(ratio "$board_bytes_after" "$board_bytes_before"); row 5e "aggregate's bytes after 5a-5d ($((4 * SECONDS_W)) s of writes)" "$board_bytes_after" "its bytes before" "$board_bytes_before" "${r}x the bytes" "$(meets "$r <= 3") (<= 3x)"
r=$(ratio "$deferred_tps1" "$btree_tps1"); row 5f "same as 5a, write_mode deferred ($deferred_pending1 deltas pending after; $deferred_wal1 B WAL/tx)" "$deferred_tps1" "same table with a btree on score" "$btree_tps1" "${r}x the tps" "(no target)"
r=$(ratio "$deferred_tps8" "$btree_tps8"); row 5g "same as 5b, write_mode deferred ($deferred_pending8 deltas pending after; $deferred_wal8 B WAL/tx)" "$deferred_tps8" "same table with a btree on score" "$btree_tps8" "${r}x the tps" "(no target)"
r=$(ratio "$build_ms" "$index_ms"); row 6 "aggr_create(build => 'now') over $n rows" "$build_ms" "CREATE INDEX ON (score DESC, id)" "$index_ms" "${r}x the time" "$(meets "$r <= 1.5") (<= 1.5x)"
r=$(ratio "$built_bytes" "$index_bytes"); row 7 "bytes, built aggregate (maintained: $maintained_bytes)" "$built_bytes" "btree on (score DESC, id)" "$index_bytes" "${r}x the bytes" "$(meets "$r <= 2") (<= 2x)"
r=$(ratio "$pct_plain_ms" "$pct_ms"); row 8 "percentile: aggr_at(count * p)" "$pct_ms" "percentile_disc(p) WITHIN GROUP" "$pct_plain_ms" "${r}x" "$(meets "$r >= 1000") (>= 1000x at 10M)"
r=$(ratio "$position_plain_ms" "$position_ms"); row 8b "aggr_position of a random row (its exact place)" "$position_ms" "row_number() OVER (ORDER BY score DESC, id) of that id" "$position_plain_ms" "${r}x" "(no target)"
r=$(ratio "$count_off_ms" "$count_on_ms"); row 10 "plain count(*) WHERE score > x, planner on" "$count_on_ms" "the same, aggr_ext.enable_planner off" "$count_off_ms" "${r}x" "$(meets "$r >= 1000") (>= 1000x at 10M)"
r=$(ratio "$page_plain_ms" "$page_on_ms"); row 11 "plain ORDER BY score DESC, id OFFSET n/2 LIMIT 20, planner on" "$page_on_ms" "the same, planner off" "$page_plain_ms" "${r}x" "$(meets "$r >= 1000") (>= 1000x at 10M)"
r=$(echo "scale=4; ($s_off1 + $s_off2) / ($s_on1 + $s_on2)" | bc -l | awk '{ printf "%.3f", $1 }'); row 12 "pgbench -S tps (simple protocol), planner on: $s_on1, $s_on2" "$(( (s_on1 + s_on2) / 2 ))" "planner off: $s_off1, $s_off2" "$(( (s_off1 + s_off2) / 2 ))" "${r}x the time" "$(meets "$r <= 1.02") (<= 1.02x)"
r=$(ratio "$rank_again_ms" "$redis_ms"); row 9 "aggr_rank round trip" "$rank_again_ms" "Redis ZREVRANK (redis-benchmark, 1 client)" "$redis_ms" "${r}x the time" "$(meets "$r <= 2") (<= 2x)"
echo
echo "Deferred mode: aggr_rank while a writer runs (merger on, $pending_live deltas pending when sampled) $rank_live_ms ms;"
echo "with the merger paused over $pending_reads pending deltas $rank_pending_ms ms (median); aggr_merge folded them in in $merge_ms ms."
echo "Backend memory high-water (private RSS): INSERT ... SELECT of $n rows ${insert_peak_mb} MB; aggr_verify of $n entries ${verify_peak_mb} MB (verify: $verify_status)."
