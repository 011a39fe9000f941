#!/usr/bin/env bash
# Runs every test: core unit tests (ASan/UBSan), then the extension's
# regression and isolation suites on a throwaway cluster, the client drivers
# (test/drivers), the soak and benchmark smoke runs, the TAP tests, then the
# Citus scenarios (test/citus/run.sh: skipped where Citus is not installed).
# Needs: pg_config (PostgreSQL 15 server + dev headers), cmake, g++, GoogleTest;
# installs the extension into the server's directories (run as root or with
# write access to them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${AGGR_TEST_PORT:-5499}
DATA=$(mktemp -d /tmp/aggr_ext_test.XXXXXX)
passed=0 failed=0
bash scripts/install_deps.sh test

cleanup() { test/pg_cluster.sh stop "$DATA/pg" || true; rm -rf "$DATA"; }
trap cleanup EXIT

echo "== core unit tests (AddressSanitizer + UBSan)"
cmake -S . -B build/unit -DCMAKE_BUILD_TYPE=Debug -DAGGR_SANITIZE=ON >/dev/null
cmake --build build/unit -j"$(nproc)" >/dev/null
if (cd build/unit && ctest --output-on-failure -j"$(nproc)" | tee "$DATA/ctest.log" | tail -3); then :; fi
unit_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$DATA/ctest.log")
unit_failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$DATA/ctest.log")
passed=$((passed + ${unit_total:-0} - ${unit_failed:-0}))
failed=$((failed + ${unit_failed:-1}))

echo "== node decoder fuzzing (libFuzzer, 30 s)"
if bash test/fuzz/run.sh "${AGGR_FUZZ_SECONDS:-30}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== build and install the extension"
make -s -j"$(nproc)" >/dev/null
make -s install >/dev/null

echo "== regression and isolation suites"
mkdir -p "$DATA/pg"
[ "$(id -u)" = 0 ] && chmod 755 "$DATA"
test/pg_cluster.sh start "$DATA/pg" "$PORT"
export PGHOST="$DATA/pg" PGPORT="$PORT" PGUSER=postgres
set +e
make -s installcheck 2>&1 | tee "$DATA/installcheck.log"
status=${PIPESTATUS[0]}
set -e
for f in regression.diffs output_iso/regression.diffs; do [ -s "$f" ] && cat "$f"; done
# pg_regress 15 prints "test NAME ... ok" / "... FAILED" (and "failed (ignored)").
ok=$(grep -cE '\.\.\. ok( |$)' "$DATA/installcheck.log" || true)
bad=$(grep -cE '\.\.\. (FAILED|failed)' "$DATA/installcheck.log" || true)
passed=$((passed + ok))
failed=$((failed + bad))
if [ "$status" != 0 ] && [ "$bad" = 0 ]; then failed=$((failed + 1)); fi

echo "== client drivers: node-postgres, psycopg 3, pgbench -M extended/prepared, libpq (untyped parameters, against plain SQL)"
if bash test/drivers/run.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== multi-client soak (8 clients, savepoints, rollbacks; 15 s)"
if bash test/bench/soak.sh "${AGGR_SOAK_SECONDS:-15}" 8; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== jobs racing writers (rebuild, backfill, cancel/resume, terminated and kill -9'd workers under 6 writing clients)"
if bash test/bench/job_race.sh "${AGGR_RACE_ROUNDS:-3}" 8 6 10000; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== benchmark smoke run (test/bench/run.sh at 20,000 rows: its answer checks and verify must pass)"
if BENCH_SECONDS=2 FAST_TX=300 SLOW_TX=3 bash test/bench/run.sh 20000 >"$DATA/bench.log" 2>&1; then
  passed=$((passed + 1)); grep -E '^\| (1|5c) ' "$DATA/bench.log" || true
else
  failed=$((failed + 1)); tail -20 "$DATA/bench.log"
fi

echo "== TAP tests (restarts, cancellation, crashes, standby)"
set +e
bash test/run_tap.sh 2>&1 | tee "$DATA/tap.log"
tap_status=${PIPESTATUS[0]}
set -e
tap_ok=$(grep -cE '^ok [0-9]+' "$DATA/tap.log" || true)
tap_bad=$(grep -cE '^not ok [0-9]+' "$DATA/tap.log" || true)
passed=$((passed + tap_ok))
failed=$((failed + tap_bad))
if [ "$tap_status" != 0 ] && [ "$tap_bad" = 0 ]; then failed=$((failed + 1)); fi

echo "== Citus: coordinator + 2 workers (test/citus/run.sh; skipped where citus is not installed)"
set +e
CITUS_TEST_PORT=${AGGR_CITUS_PORT:-5594} bash test/citus/run.sh >"$DATA/citus.log" 2>&1
citus_status=$?
set -e
grep -E '^(not ok|SKIP|[0-9]+ passed)' "$DATA/citus.log" || tail -20 "$DATA/citus.log"
if grep -q '^SKIP' "$DATA/citus.log"; then :
elif [ "$citus_status" = 0 ]; then passed=$((passed + 1))
else failed=$((failed + 1)); grep -A6 '^not ok' "$DATA/citus.log" | head -60
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
