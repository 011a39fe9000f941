#!/usr/bin/env bash
# Write cost with PostgreSQL's default durability (fsync, synchronous_commit on).
#   MODE=updates (default): WAL bytes and tps per single-row key UPDATE, btree
#     table vs aggregate (direct, deferred), 1 and 8 clients; full_page_writes
#     off (FPW=on to count page images too) so the logical volume counts.
#   MODE=bulk: one INSERT ... SELECT of BULK_ROWS random keys into an empty
#     table, btree table vs aggregate: seconds, WAL bytes and the backend's RSS
#     high-water mark.
# One line per configuration. Runs a throwaway cluster on $PORT (default 5650).
#   WORKTREE=/work/wt-x SECS=8 bash test/bench/wal.sh
#   MODE=bulk BULK_ROWS=2000000 bash test/bench/wal.sh
# NODE_BYTES / NODES_FILLFACTOR (optional) set the aggregate's node size
# (aggr_ext.node_bytes) and aggr_internal.nodes' fillfactor before the build;
# CONFIGS (default "bt ag ag_deferred") picks the update configurations and
# CLIENTS (default "1 8") the client counts;
# WALSTATS=1 adds each run's WAL by record type (pg_waldump --stats);
# READ_SECS (default SECS) is how long each read latency run lasts, and
# SIZE_EVERY=N prints the nodes table's size every N seconds of the update
# runs (a storage soak: ROWS=1000000 SECS=600 READ_SECS=5 SIZE_EVERY=60).
# Each update run also prints the machine's CPU time per transaction (all
# processes: backends, merger, WAL writer, pgbench; from /proc/stat), the
# merger's share of it, and the mean WAL flush (fdatasync) time per commit
# (pg_stat_wal with track_wal_io_timing): what bounds a run on this machine.
set -euo pipefail
cd "${WORKTREE:-$(dirname "$0")/../..}"
MODE=${MODE:-updates}; PORT=${PORT:-5650}
ROWS=${ROWS:-200000}; SECS=${SECS:-10}; FPW=${FPW:-off}; BULK_ROWS=${BULK_ROWS:-2000000}
DIR=$(mktemp -d /tmp/walbench.XXXXXX); chmod 755 $DIR
AGGR_PG_DURABLE=1 test/pg_cluster.sh start $DIR/pg $PORT
trap "test/pg_cluster.sh stop $DIR/pg; rm -rf $DIR" EXIT
echo "full_page_writes = $FPW" >> $DIR/pg/postgresql.conf
echo "track_wal_io_timing = on" >> $DIR/pg/postgresql.conf
runuser -u postgres -- $(pg_config --bindir)/pg_ctl -D $DIR/pg reload >/dev/null
export PGHOST=$DIR/pg PGPORT=$PORT PGUSER=postgres
q() { psql -XAtq "$@"; }
# Busy CPU time of the whole machine, in clock ticks (user .. steal of /proc/stat).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# CPU ticks used so far by the merger process(es) of this cluster.
merger_ticks() {
  local t=0 pid
  for pid in $(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'aggr_ext merger'"); do
    t=$((t + $(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null || echo 0)))
  done
  echo $t
}

setup_node_options() {
  [ -n "${NODES_FILLFACTOR:-}" ] && q -c "ALTER TABLE aggr_internal.nodes SET (fillfactor = $NODES_FILLFACTOR)"
  [ -n "${NODE_BYTES:-}" ] && echo "ALTER SYSTEM SET aggr_ext.node_bytes = $NODE_BYTES; SELECT pg_reload_conf();" | q >/dev/null
  return 0
}

# Seconds and WAL bytes of one statement in a fresh session, and the peak of
# that backend's private memory (RssAnon, sampled every 50 ms; shared buffers
# are not in it).
timed() {
  q -c CHECKPOINT
  local l0 out=$DIR/timed.out pid="" peak=0 kb
  l0=$(q -c "SELECT pg_current_wal_lsn()")
  PGAPPNAME=walbench_timed q -v ON_ERROR_STOP=1 >$out <<SQL &
\\set QUIET on
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
$1
SELECT round(extract(epoch FROM clock_timestamp()) - :t0, 2) || ' s, wal_bytes=' || pg_wal_lsn_diff(pg_current_wal_lsn(), '$l0');
SQL
  local job=$!
  while kill -0 $job 2>/dev/null; do
    [ -z "$pid" ] && pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'walbench_timed'")
    if [ -n "$pid" ]; then
      kb=$(awk '/^RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null || true)
      [ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
    fi
    sleep 0.05
  done
  wait $job
  echo "$(cat $out), backend_rss_anon_peak=$((peak / 1024)) MB"
}

if [ "$MODE" = bulk ]; then
  q -c "CREATE EXTENSION aggr_ext"
  setup_node_options
  q -c "CREATE TABLE bt (id int PRIMARY KEY, score int NOT NULL)" -c "CREATE INDEX ON bt (score)" \
    -c "CREATE TABLE ag (id int PRIMARY KEY, score int NOT NULL)" -c "SELECT aggr_create('ag_lb', 'ag', key => 'score', build => 'now')" >/dev/null
  for t in bt ag; do
    echo "bulk $t rows=$BULK_ROWS: $(timed "INSERT INTO $t SELECT g, (random() * 1e9)::int FROM generate_series(1, $BULK_ROWS) g;")"
  done
  q -c "SELECT 'nodes relation: ' || pg_size_pretty(pg_total_relation_size('aggr_internal.nodes'))"
  q -c "SELECT status FROM aggr_verify('ag_lb')"
  exit 0
fi

q -c "CREATE EXTENSION aggr_ext"
setup_node_options
q -c "CREATE TABLE bt (id int PRIMARY KEY, score int NOT NULL)" -c "CREATE INDEX ON bt (score)" \
  -c "INSERT INTO bt SELECT g, (g::bigint * 7919) % 1000000 FROM generate_series(1,$ROWS) g" \
  -c "CREATE TABLE ag (id int PRIMARY KEY, score int NOT NULL)" -c "INSERT INTO ag SELECT g, (g::bigint * 7919) % 1000000 FROM generate_series(1,$ROWS) g" \
  -c "SELECT aggr_create('ag_lb', 'ag', key => 'score', build => 'now')" -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
q -c "SELECT 'nodes relation after build: ' || pg_size_pretty(pg_total_relation_size('aggr_internal.nodes'))"
# Read latency on the fresh tree, 1 client: a rank of a random key, a
# 20-entry page at a random offset.
echo "\\set s random(0, 999999)
SELECT aggr_rank('ag_lb', :s);" > $DIR/rank.sql
echo "\\set o random(0, $((ROWS - 20)))
SELECT count(*) FROM aggr_page('ag_lb', :o, 20);" > $DIR/page.sql
chmod 644 $DIR/rank.sql $DIR/page.sql
for r in rank page; do
  echo "reads aggr_$r $(pgbench -n -c 1 -T ${READ_SECS:-$SECS} -f $DIR/$r.sql 2>/dev/null | awk '/^latency average/ {l=$4} /^tps/ {t=int($3)} END {print "latency_ms=" l " tps=" t}')"
done
for t in ${CONFIGS:-bt ag ag_deferred}; do
  tab=$t; [ $t = ag_deferred ] && { tab=ag; q -c "SELECT aggr_set_write_mode('ag_lb','deferred')" >/dev/null; }
  echo "\\set id random(1, $ROWS)
\\set s random(0, 999999)
UPDATE $tab SET score = :s WHERE id = :id;" > $DIR/u.sql; chmod 644 $DIR/u.sql
  for c in ${CLIENTS:-1 8}; do
    q -c CHECKPOINT
    q -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
    l0=$(q -c "SELECT pg_current_wal_lsn()")
    c0=$(busy_ticks); m0=$(merger_ticks)
    sampler=""
    if [ -n "${SIZE_EVERY:-}" ]; then
      (while sleep $SIZE_EVERY; do
         echo "  $(date +%T) nodes relation: $(q -c "SELECT pg_size_pretty(pg_total_relation_size('aggr_internal.nodes'))")"
       done) &
      sampler=$!
    fi
    tps=$(pgbench -n -c $c -j 2 -T $SECS -f $DIR/u.sql 2>/dev/null | awk '/^tps/ {print int($3)}')
    [ -n "$sampler" ] && kill $sampler
    c1=$(busy_ticks); m1=$(merger_ticks)
    hz=$(getconf CLK_TCK); ntx=$((tps * SECS))
    flush=$(q -c "SELECT round((wal_sync_time / greatest(wal_sync, 1))::numeric, 3) FROM pg_stat_wal")
    sleep 1
    l1=$(q -c "SELECT pg_current_wal_lsn()")
    n=$(q -c "SELECT round(pg_wal_lsn_diff('$l1','$l0'))")
    echo "$t clients=$c tps=$tps wal_bytes_per_tx=$(( n / (tps * SECS) ))" \
      "cpu_us_per_tx=$(( (c1 - c0) * 1000000 / hz / ntx )) merger_cpu_us_per_tx=$(( (m1 - m0) * 1000000 / hz / ntx ))" \
      "flush_ms=$flush nodes=$(q -c "SELECT pg_size_pretty(pg_total_relation_size('aggr_internal.nodes'))")"
    # WALSTATS=1: the run's WAL by record type (the WALSTATS_TOP=6 largest, combined size).
    [ "${WALSTATS:-0}" = 1 ] && pg_waldump --stats=record -p $DIR/pg/pg_wal -s $l0 -e $l1 2>/dev/null |
      sed 's/[()]/ /g' | awk 'NF == 9 && $1 ~ /\// {print $8, "  " $1 " n=" $2 " bytes=" $8 " (" $9 "%)"}' |
      sort -n -r | head -${WALSTATS_TOP:-6} | cut -d' ' -f2- || true
  done
done
q -c "SELECT 'nodes relation: ' || pg_size_pretty(pg_total_relation_size('aggr_internal.nodes')) || ', deltas: ' || pg_size_pretty(pg_total_relation_size('aggr_internal.deltas'))"
q -c "SELECT status FROM aggr_verify('ag_lb')"
