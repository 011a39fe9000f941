#!/usr/bin/env bash
# Jobs racing writers. CLIENTS pgbench clients write for SECONDS per round
# (upserts, deletes, namespace moves, savepoints, rollbacks) while every
# aggregate runs a job: a rebuild, a clear + backfill, a backfill cancelled
# and resumed, or a rebuild whose worker is terminated (and relaunched);
# batch sizes vary and one round TRUNCATEs and reloads the table mid-run.
# The last round kill -9s a job worker (the server restarts; the job
# resumes). After every round, with writers stopped and jobs finished,
# aggr_verify must say ok for every aggregate (direct, deferred, namespaced)
# and counts must equal plain SQL. Exits non-zero on the first mismatch.
#   test/bench/job_race.sh [ROUNDS=4] [SECONDS=10] [CLIENTS=8] [ROWS=20000]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-4}
SECS=${2:-10}
CLIENTS=${3:-8}
ROWS=${4:-20000}
. test/bench/throwaway_cluster.sh
start_throwaway_cluster aggr_job_race "${AGGR_RACE_PORT:-5495}"
AGGS=(race_direct race_ns race_deferred)

psql -X -q -v ON_ERROR_STOP=1 -v rows="$ROWS" <<'SQL'
SET client_min_messages = warning;
\o /dev/null
CREATE EXTENSION aggr_ext;
CREATE TABLE race (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
INSERT INTO race SELECT i, i % 7, (i * 37) % 1000 FROM generate_series(1, :rows) i;
SELECT aggr_create('race_direct', 'race'::regclass, key => 'v DESC', sum_value => 'v', build => 'now');
SELECT aggr_create('race_ns', 'race'::regclass, key => 'v', sum_value => 'id', namespace => 'g', build => 'now');
SELECT aggr_create('race_deferred', 'race'::regclass, key => 'v', sum_value => 'v', build => 'now');
SELECT aggr_set_write_mode('race_ns', 'deferred'), aggr_set_write_mode('race_deferred', 'deferred');
LOAD 'aggr_ext';
ALTER SYSTEM SET aggr_ext.job_delay = 5;  -- jobs take long enough for writers to race them
SELECT pg_reload_conf();
SQL
cat >"$DIR/write.sql" <<SQL
\set id random(1, $((ROWS * 5 / 4)))
\set v random(0, 999)
\set g random(0, 8)
BEGIN;
INSERT INTO race VALUES (:id, :g, :v) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
SAVEPOINT a;
UPDATE race SET g = :g WHERE id = :id + 1;
DELETE FROM race WHERE id = :id + 2;
ROLLBACK TO SAVEPOINT a;
UPDATE race SET g = :g, v = :v WHERE id = :id + 3;
DELETE FROM race WHERE id = :id + 4;
SELECT aggr_count('race_ns', namespace => :g);
END;
SQL
cat >"$DIR/rollback.sql" <<SQL
\set id random(1, $ROWS)
BEGIN;
DELETE FROM race WHERE id BETWEEN :id AND :id + 30;
INSERT INTO race VALUES ($((ROWS * 2)) + :id, 1, 1) ON CONFLICT DO NOTHING;
ROLLBACK;
SQL
chmod 644 "$DIR"/*.sql

start_job() {  # aggregate action batch
  case "$2" in
    rebuild | terminate) psql -X -q -c "SELECT aggr_rebuild('$1', batch_size => $3)" >/dev/null ;;
    backfill | cancel) psql -X -q -c "SELECT aggr_clear('$1')" -c "CALL aggr_backfill('$1', batch_size => $3)" >/dev/null ;;
  esac
}

disturb_job() {  # aggregate action batch: in the middle of the round
  case "$2" in
    cancel)
      psql -X -q -c "SELECT aggr_backfill_cancel('$1')" >/dev/null 2>&1 || true  # may have finished
      sleep 0.5
      psql -X -q -c "CALL aggr_backfill('$1', batch_size => $3)" >/dev/null 2>&1 || true ;;
    terminate)
      psql -X -q -At -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'aggr_ext job'" >/dev/null ;;
  esac
}

check_all() {  # round label
  local failed=0
  for a in "${AGGS[@]}"; do psql -X -q -c "CALL aggr_wait('$a')" >/dev/null 2>&1 || { echo "round $1: aggr_wait('$a') failed"; failed=1; }; done
  local result
  result=$(psql -X -At -c "
    SELECT string_agg(a || '=' || (SELECT status FROM aggr_verify(a)), ' ' ORDER BY a) ||
           ' count_ok=' || (aggr_count('race_direct') = (SELECT count(*) FROM race) AND aggr_count('race_deferred') = (SELECT count(*) FROM race)) ||
           ' ns_ok=' || (SELECT bool_and(aggr_sum('race_ns', namespace => g) = (SELECT sum(id) FROM race r WHERE r.g = t.g))
                           FROM (SELECT DISTINCT g FROM race) t)
      FROM unnest(ARRAY['race_direct', 'race_ns', 'race_deferred']) a")
  echo "round $1: $result"
  [[ $failed == 0 && "$result" != *mismatch* && "$result" == *count_ok=true* && "$result" == *ns_ok=true* ]]
}

actions=(rebuild backfill cancel terminate)
batches=(50 500 5000 137)
# Half the jobs keep the default batch size (50000): a job that has written
# nothing yet then builds its whole generation in its first step, sorted in
# memory, while writers run (jobs.cpp: build_whole_in_memory).
batch_for() { [ $((($1 + $2) % 2)) = 0 ] && echo 50000 || echo "${batches[$((($1 * 3 + $2) % 4))]}"; }
for round in $(seq 1 "$ROUNDS"); do
  pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -f "$DIR/write.sql@9" -f "$DIR/rollback.sql@1" >"$DIR/pgbench.$round" 2>&1 &
  bench=$!
  sleep 1
  for i in "${!AGGS[@]}"; do
    start_job "${AGGS[$i]}" "${actions[$(((round + i) % 4))]}" "$(batch_for "$round" "$i")"
  done
  sleep $((SECS / 3))
  for i in "${!AGGS[@]}"; do
    disturb_job "${AGGS[$i]}" "${actions[$(((round + i) % 4))]}" "$(batch_for "$round" "$i")"
  done
  if [ $((round % 2)) = 0 ]; then  # a TRUNCATE and reload while jobs and writers run
    psql -X -q -c "BEGIN; TRUNCATE race; INSERT INTO race SELECT i, i % 7, (i * 41) % 1000 FROM generate_series(1, $ROWS) i; COMMIT;" >/dev/null
  fi
  wait "$bench" || true
  grep -E "^number of transactions actually processed" "$DIR/pgbench.$round" | sed "s/^/round $round: /" || true
  check_all "$round"
done

# kill -9 of a job worker while a writer runs: the server restarts, the job resumes
pgbench -n -c 2 -j 2 -T "$SECS" -f "$DIR/write.sql" >"$DIR/pgbench.kill" 2>&1 &
bench=$!
sleep 1
psql -X -q -c "SELECT aggr_rebuild('race_direct', batch_size => 20)" -c "SELECT aggr_clear('race_deferred')" \
  -c "CALL aggr_backfill('race_deferred', batch_size => 30)" >/dev/null
sleep 2
pid=$(psql -X -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'aggr_ext job' LIMIT 1")
if [ -n "$pid" ]; then kill -9 "$pid"; else echo "no job worker to kill (jobs finished early)"; fi
wait "$bench" || true
for i in $(seq 1 60); do psql -X -q -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
check_all "kill -9 (worker $pid)"
