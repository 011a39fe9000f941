#!/usr/bin/env bash
# Client drivers pass parameters to aggr_ext's functions: node-postgres,
# psycopg 3, pgbench -M extended / -M prepared and libpq (PQexecParams with
# paramTypes NULL) each ask the same questions as aggr_ext calls and as plain
# SQL, through the same client, and compare. Then, as a control, each must
# fail in sessions without session_preload_libraries = 'aggr_ext' (the
# untyped parameters are then PostgreSQL's 42P18).
# Runs against the server in PGHOST / PGPORT / PGUSER (test/pg_cluster.sh
# preloads the library), in a fresh database aggr_drivers. Needs what
# scripts/install_deps.sh test installs. Exits non-zero when a driver has a
# failure or no checks, or passes without the preload.
set -uo pipefail
cd "$(dirname "$0")"
BIN=$(pg_config --bindir)
DB=aggr_drivers
TMP=$(mktemp -d /tmp/aggr_drivers.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

"$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" &&
  "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" -f fixture.sql >/dev/null || exit 1
export PGDATABASE=$DB

pgbench_driver() {
  "$BIN/psql" -X -q -c "TRUNCATE drv_results" || return 1
  "$BIN/pgbench" -n -M "$1" -c 2 -t 25 -f pgbench_checks.sql >"$TMP/pgbench.log" 2>&1
  local status=$? checks bad
  read -r checks bad < <("$BIN/psql" -X -At -F' ' -c "SELECT count(*), count(*) FILTER (WHERE ok IS NOT TRUE) FROM drv_results")
  if [ "$status" != 0 ]; then
    bad=$((bad + 1))
    grep -m 3 -i error "$TMP/pgbench.log" | sed 's/^/  FAILED /'
  fi
  "$BIN/psql" -X -At -c "SELECT '  FAILED ' || kind || ' (' || count(*) || 'x)' FROM drv_results WHERE ok IS NOT TRUE GROUP BY kind"
  echo "pgbench -M $1: ${checks:-0} checks, $bad failures"
  [ "$bad" = 0 ] && [ "${checks:-0}" -gt 0 ]
}

libpq_driver() {
  cc -std=c99 -Wall -O1 -I"$(pg_config --includedir)" -o "$TMP/libpq_test" libpq_test.c -lpq || {
    echo "libpq: 0 checks, 1 failures (does not compile: libpq-dev?)"
    return 1
  }
  "$TMP/libpq_test"
}

node_driver() {
  [ -d node_modules/pg ] || { echo "node-postgres: 0 checks, 1 failures (not installed: scripts/install_deps.sh test)"; return 1; }
  node node_test.js
}

drivers=(node psycopg pgbench_extended pgbench_prepared libpq)
run_driver() {
  case "$1" in
    node) node_driver ;;
    psycopg) /usr/bin/python3 psycopg_test.py ;;  # Debian's python3-psycopg, whatever `python3` is on PATH
    pgbench_extended) pgbench_driver extended ;;
    pgbench_prepared) pgbench_driver prepared ;;
    libpq) libpq_driver ;;
  esac
}

failed=0
for d in "${drivers[@]}"; do run_driver "$d" || failed=$((failed + 1)); done

echo "control: without session_preload_libraries every driver must fail"
for d in "${drivers[@]}"; do
  if PGOPTIONS="${PGOPTIONS:-} -c session_preload_libraries=" run_driver "$d" >"$TMP/control.log" 2>&1; then
    echo "  FAILED $d passes without the preload: its checks do not test the parameter typing"
    failed=$((failed + 1))
  else
    echo "  $d: $(tail -n 1 "$TMP/control.log")"
  fi
done
echo "drivers: ${#drivers[@]} drivers and their controls, $failed failed"
[ "$failed" = 0 ]
