#!/usr/bin/env bash
# Runs the TAP tests (test/t/*.pl, PostgreSQL::Test::Cluster) against the
# installed server and extension. As root, they run as `postgres`, since
# initdb refuses root. Prints prove's summary; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGLIB=$(pg_config --pkglibdir)
WORK=$(mktemp -d /tmp/aggr_ext_tap.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cp -r test/t "$WORK/"
run=()
if [ "$(id -u)" = 0 ]; then chown -R postgres "$WORK"; chmod 755 "$WORK"; run=(runuser -u postgres --); fi
cd "$WORK"
"${run[@]}" env PATH="$(pg_config --bindir):$PATH" PERL5LIB="$PKGLIB/pgxs/src/test/perl" TESTDIR="$WORK" \
  PG_REGRESS="$PKGLIB/pgxs/src/test/regress/pg_regress" prove -v ${AGGR_TAP_TESTS:-t/*.pl} || {
  status=$?
  find "$WORK/tmp_check/log" -name '*.log' -exec sh -c 'echo "== $1"; tail -n 50 "$1"' _ {} \; 2>/dev/null || true
  exit $status
}
