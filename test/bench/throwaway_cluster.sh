# Sourced by the benchmarks: builds and installs the extension, starts a
# throwaway cluster on port $2 in a new /tmp/$1.XXXXXX directory (DIR), stops
# and removes it on exit, and points libpq at it.
start_throwaway_cluster() {
  DIR=$(mktemp -d "/tmp/$1.XXXXXX")
  [ "$(id -u)" = 0 ] && chmod 755 "$DIR"
  make -s -j"$(nproc)" >/dev/null
  if [ -w "$(pg_config --pkglibdir)" ]; then make -s install >/dev/null; else sudo make -s install >/dev/null; fi
  test/pg_cluster.sh start "$DIR/pg" "$2"
  trap 'test/pg_cluster.sh stop "$DIR/pg"; rm -rf "$DIR"' EXIT
  trap 'exit 1' INT TERM  # so that the EXIT trap stops the cluster
  export PGHOST="$DIR/pg" PGPORT="$2" PGUSER=postgres PGDATABASE=postgres
}
