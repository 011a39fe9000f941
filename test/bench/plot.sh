#!/usr/bin/env bash
# The README's picture, from this machine's own measurements: read latency
# against table size (aggr_rank vs count(*) over a btree index, aggr_page at
# the middle vs ORDER BY ... OFFSET) on log scales, and single-row UPDATE
# throughput against clients (table + btree vs the aggregate, direct and
# deferred). PostgreSQL's default durability settings. Writes
# docs/bench.dat, docs/writes.dat and docs/bench.png (gnuplot).
#   test/bench/plot.sh            SIZES="10000 100000 1000000" SECS=3 CLIENTS="1 2 4 8"
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"10000 100000 1000000"}
SECS=${SECS:-3}
CLIENTS=${CLIENTS:-"1 2 4 8"}
WRITE_ROWS=${WRITE_ROWS:-100000}
bash scripts/install_deps.sh bench
. test/bench/throwaway_cluster.sh
AGGR_PG_DURABLE=1 start_throwaway_cluster aggr_plot "${AGGR_PLOT_PORT:-5493}"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# Average latency (ms) of one pgbench script: one client, prepared, SECS seconds.
latency() {
  printf '%s\n' "$@" >"$DIR/q.sql"
  chmod 644 "$DIR/q.sql"
  pgbench -n -M prepared -c 1 -T "$SECS" -f "$DIR/q.sql" 2>/dev/null | awk '/^latency average/ { print $4 }'
}
tps() {  # clients script-lines...
  local c=$1; shift
  q "CHECKPOINT"  # a checkpoint due from the loads must not land in one measurement only
  printf '%s\n' "$@" >"$DIR/w.sql"
  chmod 644 "$DIR/w.sql"
  pgbench -n -M prepared -c "$c" -j 2 -T "$SECS" -f "$DIR/w.sql" 2>/dev/null | awk '/^tps/ { print int($3) }'
}

q "CREATE EXTENSION aggr_ext"
echo "# rows aggr_rank_ms count_ms aggr_page_ms offset_ms" >docs/bench.dat
for n in $SIZES; do
  q "DROP TABLE IF EXISTS s; CREATE TABLE s (id int PRIMARY KEY, score int NOT NULL)"
  q "INSERT INTO s SELECT g, (g::bigint * 7919) % $n FROM generate_series(1, $n) g"
  q "CREATE INDEX ON s (score, id)"
  q "SELECT aggr_create('s_lb', 's'::regclass, key => 'score', build => 'now')"
  q "VACUUM ANALYZE s"
  mid=$((n / 2))
  rank=$(latency "\\set x random(0, $n)" "SELECT aggr_rank('s_lb', :x);")
  count=$(latency "\\set x random(0, $n)" "SELECT count(*) FROM s WHERE score < :x;")
  page=$(latency "SELECT * FROM aggr_page('s_lb', $mid, 20);")
  offset=$(latency "SELECT id, score FROM s ORDER BY score, id OFFSET $mid LIMIT 20;")
  # the two sides answer the same question: check it once per size
  same=$(q "SELECT (SELECT array_agg(id::int ORDER BY position) FROM aggr_page('s_lb', $mid, 20)) =
                   (SELECT array_agg(id) FROM (SELECT id FROM s ORDER BY score, id OFFSET $mid LIMIT 20) p)
               AND aggr_rank('s_lb', $mid) = 1 + (SELECT count(*) FROM s WHERE score < $mid)")
  [ "$same" = t ] || { echo "aggregate and plain SQL disagree at $n rows" >&2; exit 1; }
  echo "$n $rank $count $page $offset" | tee -a docs/bench.dat
  q "SELECT aggr_drop('s_lb')"
done

echo "# clients btree_tps direct_tps deferred_tps" >docs/writes.dat
q "DROP TABLE IF EXISTS bt, ag; CREATE TABLE bt (id int PRIMARY KEY, score int NOT NULL); CREATE INDEX ON bt (score)"
q "CREATE TABLE ag (id int PRIMARY KEY, score int NOT NULL)"
q "INSERT INTO bt SELECT g, (g::bigint * 7919) % 1000000 FROM generate_series(1, $WRITE_ROWS) g; INSERT INTO ag SELECT * FROM bt"
q "SELECT aggr_create('ag_direct', 'ag'::regclass, key => 'score', build => 'now')"
q "VACUUM ANALYZE bt, ag"
upd() { echo "\\set id random(1, $WRITE_ROWS)"; echo "\\set s random(0, 999999)"; echo "UPDATE $1 SET score = :s WHERE id = :id;"; }
for c in $CLIENTS; do
  b=$(tps "$c" "$(upd bt)")
  q "SELECT aggr_set_write_mode('ag_direct', 'direct')"
  d=$(tps "$c" "$(upd ag)")
  q "SELECT aggr_set_write_mode('ag_direct', 'deferred')"
  f=$(tps "$c" "$(upd ag)")
  echo "$c $b $d $f" | tee -a docs/writes.dat
done
q "SELECT aggr_set_write_mode('ag_direct', 'direct')"
[ "$(q "SELECT status FROM aggr_verify('ag_direct')")" = ok ] || { echo "verify failed after the write runs" >&2; exit 1; }

gnuplot <<GP
set terminal pngcairo size 1200,480 font ",11" noenhanced
set output 'docs/bench.png'
set multiplot layout 1,2 title "aggr_ext on $(nproc) cores, PostgreSQL $(pg_config --version | awk '{print $2}'), default durability"
set logscale xy
set xlabel 'rows in the table'
set ylabel 'latency per query (ms, log)'
set key top left
set grid
plot 'docs/bench.dat' using 1:3 with linespoints lw 2 title 'count(*) WHERE score < x (btree)', \
     ''               using 1:2 with linespoints lw 2 title 'aggr_rank', \
     ''               using 1:5 with linespoints lw 2 title 'ORDER BY ... OFFSET n/2 LIMIT 20', \
     ''               using 1:4 with linespoints lw 2 title 'aggr_page at n/2'
unset logscale
set logscale x 2
set xlabel 'clients (single-row UPDATE of the key, $WRITE_ROWS rows)'
set ylabel 'transactions per second'
set yrange [0:*]
plot 'docs/writes.dat' using 1:2 with linespoints lw 2 title 'table + btree on the key', \
     ''                using 1:3 with linespoints lw 2 title 'aggregate, direct mode', \
     ''                using 1:4 with linespoints lw 2 title 'aggregate, deferred mode'
unset multiplot
GP
echo "wrote docs/bench.png"
