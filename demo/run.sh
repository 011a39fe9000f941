#!/usr/bin/env bash
# One command: build and install aggr_ext, start a throwaway PostgreSQL 15
# cluster in ./.demo, load a leaderboard and print answers and timings next
# to plain SQL.   ROWS=1000000 demo/run.sh   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-200000}
PORT=${AGGR_DEMO_PORT:-5498}
DIR=$PWD/.demo
bash scripts/install_deps.sh build
make -s -j"$(nproc)" >/dev/null
if [ -w "$(pg_config --pkglibdir)" ]; then make -s install >/dev/null; else sudo make -s install >/dev/null; fi
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chmod 755 "$DIR"
test/pg_cluster.sh start "$DIR/pg" "$PORT"
trap 'test/pg_cluster.sh stop "$DIR/pg"' EXIT
export PGHOST="$DIR/pg" PGPORT="$PORT" PGUSER=postgres
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS demo" -c "CREATE DATABASE demo"
psql -X -q -d demo -c "CREATE EXTENSION IF NOT EXISTS aggr_ext"
psql -X -q -d demo -v rows="$ROWS" -f demo/leaderboard.sql
echo "The cluster is stopped on exit; its files stay in $DIR (rm -rf $DIR to remove)."
