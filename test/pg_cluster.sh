#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 cluster for tests and the demo.
#   test/pg_cluster.sh start DIR PORT   |   test/pg_cluster.sh stop DIR
# PostgreSQL refuses to run as root: as root, the cluster runs as `postgres`.
set -euo pipefail
BIN=$(pg_config --bindir)
action=$1 dir=$2 port=${3:-5499}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    if [ ! -s "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres: "$dir"
      as_owner "$BIN/initdb" -D "$dir" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 ||
        { cat "$dir.initdb.log"; exit 1; }
      # Tests run with fsync off (speed); benchmarks set AGGR_PG_DURABLE=1 and
      # keep PostgreSQL's default durability, whose write cost users pay.
      durability="fsync = off"
      [ "${AGGR_PG_DURABLE:-0}" = 1 ] && durability="# fsync, synchronous_commit, full_page_writes: defaults (on)"
      cat >>"$dir/postgresql.conf" <<CONF
port = $port
listen_addresses = '${AGGR_PG_LISTEN:-}'
unix_socket_directories = '$dir'
$durability
shared_buffers = 512MB
max_wal_size = 4GB
work_mem = 64MB
maintenance_work_mem = 512MB
max_connections = 50
max_prepared_transactions = 10
CONF
      # Extra settings for this cluster (test/citus/run.sh: shared_preload_libraries = 'citus').
      if [ -n "${AGGR_PG_CONF:-}" ]; then printf '%s\n' "$AGGR_PG_CONF" >>"$dir/postgresql.conf"; fi
    fi
    # Drivers send untyped parameters; the library types them for its "any"
    # arguments only when loaded before a statement is parsed (README:
    # Installation). Added to clusters made before this line existed, too.
    grep -q '^session_preload_libraries' "$dir/postgresql.conf" ||
      echo "session_preload_libraries = 'aggr_ext'" | as_owner tee -a "$dir/postgresql.conf" >/dev/null
    # Tests, benchmarks and the demo compare aggregates with plain SQL, which
    # the planner would answer from the very aggregate (README: The planner
    # answers plain SQL): off here; sql/planner.sql and
    # specs/planner_snapshots.spec turn it on where they test it.
    grep -q '^aggr_ext.enable_planner' "$dir/postgresql.conf" ||
      echo "aggr_ext.enable_planner = off" | as_owner tee -a "$dir/postgresql.conf" >/dev/null
    as_owner "$BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -o "-p $port" -w start >/dev/null
    ;;
  stop)
    [ -s "$dir/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    ;;
  *) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
