#!/usr/bin/env bash
# aggr_ext on Citus (issue 13): every Citus table is either refused with a
# clear ERROR (SQLSTATE checked) or exact against plain SQL, never silently
# wrong, never a crash. Starts a coordinator and two workers (throwaway
# clusters from test/pg_cluster.sh, shared_preload_libraries = 'citus'),
# runs the scenarios below, prints "ok - ..." / "not ok - ..." per check and
# exits non-zero on any failure.
#   test/citus/run.sh            (after `make install`; as root the clusters run as postgres)
#   CITUS_TEST_PORT=5614: coordinator port (workers: +1, +2)
#   CITUS_TEST_KEEP=1: leave the clusters running (and their directory) to look at them
# Without Citus installed for this PostgreSQL (no citus.control under
# `pg_config --sharedir`), it prints SKIP and exits 0: README, section Citus,
# says how to build Citus 13.2 for PostgreSQL 15.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
if [ ! -f "$(pg_config --sharedir)/extension/citus.control" ]; then
  echo "SKIP: citus not available (see README: Citus)"
  exit 0
fi
if [ ! -f "$(pg_config --sharedir)/extension/aggr_ext.control" ]; then
  echo "aggr_ext is not installed for $(pg_config --bindir)/postgres: run make install first" >&2
  exit 1
fi

PORT=${CITUS_TEST_PORT:-5594}
DIR=$(mktemp -d /tmp/citus-test.XXXXXX)
[ "$(id -u)" = 0 ] && chmod 755 "$DIR"
declare -A PORTS=([coord]=$PORT [w1]=$((PORT + 1)) [w2]=$((PORT + 2)))
NODES="coord w1 w2"
passed=0 failed=0

cleanup() {
  if [ -n "${CITUS_TEST_KEEP:-}" ]; then echo "# kept: clusters in $DIR still running"; return; fi
  for n in $NODES; do "$ROOT/test/pg_cluster.sh" stop "$DIR/$n" || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

# Small clusters (three share the machine); citus needs its library at start.
export AGGR_PG_CONF="shared_preload_libraries = 'citus'
shared_buffers = 64MB
max_connections = 60
max_prepared_transactions = 100
max_worker_processes = 16
citus.shard_count = 4
citus.node_conninfo = 'sslmode=disable'
log_min_messages = warning"
for n in $NODES; do
  "$ROOT/test/pg_cluster.sh" start "$DIR/$n" "${PORTS[$n]}" || { echo "not ok - start $n"; exit 1; }
done

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() {
  failed=$((failed + 1))
  echo "not ok - $1"
  [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/#   /'
  return 0
}

# run NODE SQL: runs SQL (statement by statement) on NODE as postgres; output on stdout+stderr.
run() {
  psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h "$DIR/$1" -p "${PORTS[$1]}" -U postgres -d postgres -f - <<<"$2" 2>&1
}

# expect_ok NAME NODE SQL
expect_ok() {
  local out
  if out=$(run "$2" "$3"); then ok "$1"; else not_ok "$1" "$out"; fi
}

# expect_error NAME NODE SQLSTATE SQL [hint] [PATTERN]: SQL must fail with
# SQLSTATE ("-": any; Citus re-raises an error of a shard's COPY as XX000),
# with a HINT when the fifth argument is "hint", and with a message matching
# the extended regular expression PATTERN when given. The message is shown.
expect_error() {
  local out msg
  if out=$(run "$2" "$4"); then not_ok "$1 (succeeded, expected an error $3)" "$out"; return; fi
  msg=$(grep -m1 '^psql:.*ERROR: ' <<<"$out" | sed 's/^psql:[^E]*ERROR:  //')
  if [ "$3" != - ] && ! grep -q "ERROR:  $3:" <<<"$out"; then not_ok "$1 (expected SQLSTATE $3)" "$out"; return; fi
  if [ "${5:-}" = hint ] && ! grep -q '^HINT:' <<<"$out"; then not_ok "$1 (no HINT)" "$out"; return; fi
  if [ -n "${6:-}" ] && ! grep -qE "$6" <<<"$msg"; then not_ok "$1 (message does not match /$6/)" "$out"; return; fi
  ok "$1: ${msg:0:170}"
}

# expect_same NAME NODE QUERY ORACLE: both return the same rows (the oracle
# is plain SQL over the same table); an empty result fails.
expect_same() {
  local got want
  got=$(run "$2" "$3") || { not_ok "$1" "$got"; return; }
  want=$(run "$2" "$4") || { not_ok "$1 (oracle)" "$want"; return; }
  if [ -z "$want" ]; then not_ok "$1 (oracle returned no rows)"; return; fi
  if [ "$got" = "$want" ]; then ok "$1"; else not_ok "$1" "got:
$got
want:
$want"; fi
}

# check_exact NODE AGG TABLE KEY SUM: count, sum, rank, a page and verify of
# aggregate AGG against plain SQL over TABLE.
check_exact() {
  local node=$1 agg=$2 tab=$3 key=$4 sum=$5
  expect_same "$node: $agg count = count(*)" "$node" "SELECT aggr_count('$agg')" "SELECT count(*) FROM $tab"
  expect_same "$node: $agg sum = sum($sum)" "$node" "SELECT aggr_sum('$agg')" "SELECT coalesce(sum($sum), 0) FROM $tab"
  expect_same "$node: $agg rank = rank()" "$node" \
    "SELECT aggr_rank('$agg', k) FROM (SELECT $key AS k FROM $tab ORDER BY id LIMIT 5) s ORDER BY 1" \
    "SELECT r FROM (SELECT id, rank() OVER (ORDER BY $key) r FROM $tab) s
     WHERE id IN (SELECT id FROM $tab ORDER BY id LIMIT 5) ORDER BY 1"
  expect_same "$node: $agg page = ORDER BY OFFSET" "$node" \
    "SELECT id FROM aggr_page('$agg', 7, 5)" "SELECT id FROM $tab ORDER BY $key, id OFFSET 7 LIMIT 5"
  expect_same "$node: $agg verify" "$node" "SELECT status FROM aggr_verify('$agg')" "SELECT 'ok'"
}

# The id of aggregate AGG on NODE (its row trigger is named aggr_ext_<id>).
aggregate_id() {
  run "$1" "SELECT substr(tgname, 10) FROM pg_trigger WHERE tgrelid = '$2'::regclass AND tgname ~ '^aggr_ext_[0-9]+\$'"
}

# Every node still answers and no server process died of a signal.
check_no_crash() {
  local n
  for n in $NODES; do
    if ! run "$n" "SELECT 1" >/dev/null; then not_ok "$1: $n is up"; continue; fi
    if grep -E 'terminated by signal|was terminated|server process .* exited' "$DIR/$n/server.log" >/dev/null; then
      not_ok "$1: $n log has no crashed process" "$(grep -E 'terminated by signal|was terminated|exited' "$DIR/$n/server.log")"
    else
      ok "$1: $n up, no crashed process in its log"
    fi
  done
}

echo "== cluster: coordinator :${PORTS[coord]}, workers :${PORTS[w1]} :${PORTS[w2]} ($(run coord 'SHOW server_version'))"
for n in w1 w2; do expect_ok "CREATE EXTENSION citus on $n" "$n" "CREATE EXTENSION citus"; done
expect_ok "coordinator: citus, workers registered, aggr_ext created (propagated to the workers)" coord "
CREATE EXTENSION citus;
SELECT citus_set_coordinator_host('$DIR/coord', ${PORTS[coord]});
SELECT citus_add_node('$DIR/w1', ${PORTS[w1]});
SELECT citus_add_node('$DIR/w2', ${PORTS[w2]});
CREATE EXTENSION aggr_ext;"
expect_same "aggr_ext exists on every worker" coord \
  "SELECT result FROM run_command_on_workers(\$\$SELECT extversion FROM pg_extension WHERE extname = 'aggr_ext'\$\$) ORDER BY nodeport" \
  "SELECT extversion FROM pg_extension WHERE extname = 'aggr_ext' UNION ALL SELECT extversion FROM pg_extension WHERE extname = 'aggr_ext'"

# Worker 1 keeps aggregates of its own, on plain tables with int keys, so
# that the ids the coordinator's aggregates get below name aggregates there
# too: a trigger Citus copies onto a shard of worker 1 names one of these.
expect_ok "w1: own tables with aggregates (ids 1..4)" w1 "
CREATE TABLE w1_t (id int PRIMARY KEY, score int NOT NULL, v bigint NOT NULL);
INSERT INTO w1_t SELECT g, (g * 37) % 101, g FROM generate_series(1, 300) g;
SELECT aggr_create('w1_a' || i, 'w1_t'::regclass, key => 'score', sum_value => 'v') FROM generate_series(1, 4) i;"
for i in 1 2 3 4; do check_exact w1 "w1_a$i" w1_t score v; done

echo "== aggr_create on Citus tables: refused (0A000)"
expect_ok "coordinator: a distributed, a reference and a Citus local table" coord "
CREATE TABLE dist (id int PRIMARY KEY, name text NOT NULL, v bigint NOT NULL);
SELECT create_distributed_table('dist', 'id');
INSERT INTO dist SELECT g, 'n' || g, g FROM generate_series(1, 200) g;
CREATE TABLE ref (id int PRIMARY KEY, score int NOT NULL);
SELECT create_reference_table('ref');
INSERT INTO ref SELECT g, g % 7 FROM generate_series(1, 50) g;
CREATE TABLE loc (id int PRIMARY KEY, score int NOT NULL);
SELECT citus_add_local_table_to_metadata('loc');
INSERT INTO loc SELECT g, g % 7 FROM generate_series(1, 50) g;"
expect_error "aggr_create on a distributed table" coord 0A000 \
  "SELECT aggr_create('dist_name', 'dist'::regclass, key => 'name')" hint
expect_error "aggr_create on a distributed table, citus.enable_unsafe_triggers = on" coord 0A000 \
  "SET citus.enable_unsafe_triggers = on; SELECT aggr_create('dist_name', 'dist'::regclass, key => 'name')" hint
expect_error "aggr_create on a distributed table, citus.enable_ddl_propagation = off" coord 0A000 \
  "SET citus.enable_ddl_propagation = off; SELECT aggr_create('dist_name', 'dist'::regclass, key => 'name')" hint
expect_error "aggr_create on a reference table" coord 0A000 \
  "SELECT aggr_create('ref_score', 'ref'::regclass, key => 'score')" hint
expect_error "aggr_create on a Citus local table" coord 0A000 \
  "SELECT aggr_create('loc_score', 'loc'::regclass, key => 'score')" hint
expect_same "no aggregate and no trigger was left behind" coord \
  "SELECT (SELECT count(*) FROM aggr_internal.aggregates) + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'aggr_ext%')" \
  "SELECT 0"

# A write that reaches a shard fires the copy Citus made of the aggregate's
# trigger there (named <trigger>_<shard id>): refused, whatever aggregate
# its id names on that node.
SHARD='is a Citus shard of a table that had an aggregate'
BECAME='became a Citus .* after the aggregate was created'

# check_refused_reads NODE AGG TABLE: every read function refuses.
check_refused_reads() {
  local f
  for f in "aggr_count('$2')" "aggr_sum('$2')" "aggr_rank('$2', NULL)" "count(*) FROM aggr_page('$2', 0, 10)" \
    "count(*) FROM aggr_page_rows('$2', 0, 10, NULL::$3)" "status FROM aggr_verify('$2')"; do
    expect_error "$1: SELECT $f" "$1" 0A000 "SELECT $f" hint "$BECAME"
  done
}

echo "== an aggregate created on a worker, directly on a shard table: exact for that shard"
shard=$(run coord "SELECT shard_name('dist', s.shardid) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
  JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = 'dist'::regclass AND n.nodeport = ${PORTS[w1]} ORDER BY 1 LIMIT 1")
echo "# shard $shard on w1"
expect_ok "w1: aggr_create on shard $shard" w1 \
  "SELECT aggr_create('w1_shard', '$shard'::regclass, key => 'name', sum_value => 'v')"
check_exact w1 w1_shard "$shard" name v
expect_ok "writes through the coordinator (routed and multi-shard, two-phase commit)" coord "
INSERT INTO dist SELECT g, 'n' || g, g FROM generate_series(201, 400) g;
INSERT INTO dist VALUES (1001, 'single', 5);
UPDATE dist SET v = v * 2, name = name || 'u' WHERE id % 3 = 0;
DELETE FROM dist WHERE id % 7 = 0;
BEGIN; UPDATE dist SET v = v + 1 WHERE id % 5 = 0; ROLLBACK;
BEGIN; INSERT INTO dist SELECT g, 'tx' || g, 1 FROM generate_series(2001, 2100) g; DELETE FROM dist WHERE id < 50; COMMIT;
COPY dist FROM PROGRAM 'seq 3001 3040 | sed \"s/.*/&\tc&\t&/\"';"
check_exact w1 w1_shard "$shard" name v
expect_same "the shard holds rows of the table (the check above is not vacuous)" w1 \
  "SELECT count(*) > 50 FROM $shard" "SELECT true"

echo "== an aggregate, then its table distributed (text key)"
expect_ok "coordinator: table dt (text key) with aggregate dt_name" coord "
CREATE TABLE dt (id int PRIMARY KEY, name text NOT NULL, v bigint NOT NULL);
INSERT INTO dt SELECT g, 'name ' || g, g FROM generate_series(1, 200) g;
SELECT aggr_create('dt_name', 'dt'::regclass, key => 'name', sum_value => 'v');"
echo "# dt_name has id $(aggregate_id coord dt) (worker 1 has aggregates 1..4 on w1_t, int keys)"
check_exact coord dt_name dt name v
expect_error "create_distributed_table: refused by Citus (the table has triggers)" coord - \
  "SELECT create_distributed_table('dt', 'id')" "" "has triggers"
expect_error "create_distributed_table, citus.enable_unsafe_triggers = on: copying the rows into the shards is refused" \
  coord - "SET citus.enable_unsafe_triggers = on; SELECT create_distributed_table('dt', 'id')" "" "$SHARD"
check_exact coord dt_name dt name v
expect_ok "emptied (DELETE), then create_distributed_table with citus.enable_unsafe_triggers = on" coord "
DELETE FROM dt;
SET citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('dt', 'id');"
check_refused_reads coord dt_name dt
expect_error "INSERT of many rows through the coordinator (Citus sends them by COPY: XX000, no hint)" coord - \
  "INSERT INTO dt SELECT g, 'name ' || g, g FROM generate_series(1, 60) g" "" "$SHARD"
expect_error "INSERT of one row through the coordinator" coord 0A000 "INSERT INTO dt VALUES (7, 'x', 7)" hint "$SHARD"
expect_error "COPY through the coordinator (XX000, no hint: as above)" coord - \
  "COPY dt FROM PROGRAM 'seq 301 340 | sed \"s/.*/&\tname &\t&/\"'" "" "$SHARD"
expect_ok "TRUNCATE through the coordinator (the shards' copies of the TRUNCATE trigger do nothing)" coord "TRUNCATE dt"
expect_error "read after TRUNCATE" coord 0A000 "SELECT aggr_count('dt_name')" hint "$BECAME"
expect_same "the refused writes wrote nothing" coord "SELECT count(*) FROM dt" "SELECT 0"
expect_ok "truncate_local_data_after_distributing_table" coord \
  "SELECT truncate_local_data_after_distributing_table('dt')"
expect_error "read after truncate_local_data_after_distributing_table" coord 0A000 "SELECT aggr_count('dt_name')" hint "$BECAME"
for i in 1 2 3 4; do check_exact w1 "w1_a$i" w1_t score v; done
check_no_crash "after writes to dt"
expect_ok "aggr_drop of the aggregate of the distributed table (citus.enable_unsafe_triggers off)" coord \
  "SELECT aggr_drop('dt_name')"
# Citus drops the copies of row triggers from the shards, never those of
# TRUNCATE triggers (which then do nothing).
expect_same "no aggr_ext trigger is left on dt, no row trigger on its shards" coord \
  "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'dt'::regclass AND tgname LIKE 'aggr_ext%') + sum(result::int) FROM run_command_on_shards('dt', \$\$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname ~ '^aggr_ext_[0-9]+_[0-9]+\$'\$\$)" \
  "SELECT 0"
expect_ok "writes through the coordinator after aggr_drop" coord "
INSERT INTO dt SELECT g, 'name ' || g, g FROM generate_series(1, 260) g;
UPDATE dt SET v = v + 1;
DELETE FROM dt WHERE id % 3 = 0;"
expect_ok "undistribute_table, then aggr_create again" coord "
SELECT undistribute_table('dt');
SELECT aggr_create('dt_name', 'dt'::regclass, key => 'name', sum_value => 'v');"
check_exact coord dt_name dt name v
for i in 1 2 3 4; do check_exact w1 "w1_a$i" w1_t score v; done

echo "== an aggregate, then its table distributed (int key; local data kept, then dropped); undistribute_table"
expect_ok "coordinator: table di (int key) with aggregate di_score" coord "
CREATE TABLE di (id int PRIMARY KEY, score int NOT NULL, v bigint NOT NULL);
INSERT INTO di SELECT g, (g * 13) % 97, g FROM generate_series(1, 200) g;
SELECT aggr_create('di_score', 'di'::regclass, key => 'score', sum_value => 'v');"
echo "# di_score has id $(aggregate_id coord di)"
expect_error "create_distributed_table, citus.enable_unsafe_triggers = on: copying the rows into the shards is refused" \
  coord - "SET citus.enable_unsafe_triggers = on; SELECT create_distributed_table('di', 'id')" "" "$SHARD"
check_exact coord di_score di score v
expect_error "a read after create_distributed_table in the same transaction (the aggregate read before it)" coord 0A000 "
BEGIN;
CREATE TABLE di2 (id int PRIMARY KEY, score int NOT NULL);
SELECT aggr_create('di2_score', 'di2'::regclass, key => 'score');
SELECT aggr_count('di2_score');
SET LOCAL citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('di2', 'id');
SELECT aggr_count('di2_score');" hint "$BECAME"
expect_ok "aggr_drop, create_distributed_table (rows copied, local data kept), aggr_create refused" coord "
SELECT aggr_drop('di_score');
SELECT create_distributed_table('di', 'id');"
expect_error "aggr_create on the distributed table" coord 0A000 \
  "SELECT aggr_create('di_score', 'di'::regclass, key => 'score', sum_value => 'v')" hint
expect_ok "writes, undistribute_table, then aggr_create again" coord "
INSERT INTO di SELECT g, g % 97, g FROM generate_series(201, 260) g;
UPDATE di SET score = score + 1 WHERE id % 2 = 0;
DELETE FROM di WHERE id % 5 = 0;
SELECT undistribute_table('di');
SELECT aggr_create('di_score', 'di'::regclass, key => 'score', sum_value => 'v');"
check_exact coord di_score di score v
for i in 1 2 3 4; do check_exact w1 "w1_a$i" w1_t score v; done
check_no_crash "after writes to di"

echo "== an aggregate, then its table made a reference table / a Citus local table"
expect_ok "coordinator: tables rt and lt with aggregates" coord "
CREATE TABLE rt (id int PRIMARY KEY, score int NOT NULL, v bigint NOT NULL);
INSERT INTO rt SELECT g, g % 11, g FROM generate_series(1, 100) g;
SELECT aggr_create('rt_score', 'rt'::regclass, key => 'score', sum_value => 'v');
CREATE TABLE lt (id int PRIMARY KEY, score int NOT NULL, v bigint NOT NULL);
INSERT INTO lt SELECT g, g % 11, g FROM generate_series(1, 100) g;
SELECT aggr_create('lt_score', 'lt'::regclass, key => 'score', sum_value => 'v');"
check_exact coord rt_score rt score v
check_exact coord lt_score lt score v
expect_error "create_reference_table, citus.enable_unsafe_triggers = on: copying the rows is refused" coord - \
  "SET citus.enable_unsafe_triggers = on; SELECT create_reference_table('rt')" "" "$SHARD"
check_exact coord rt_score rt score v
expect_ok "emptied, then create_reference_table with citus.enable_unsafe_triggers = on" coord \
  "DELETE FROM rt; SET citus.enable_unsafe_triggers = on; SELECT create_reference_table('rt')"
check_refused_reads coord rt_score rt
expect_error "INSERT into the reference table" coord 0A000 "INSERT INTO rt VALUES (1000, 1, 1)" hint "$SHARD"
expect_ok "aggr_drop, then writes" coord "SELECT aggr_drop('rt_score'); INSERT INTO rt VALUES (1000, 1, 1)"
expect_ok "citus_add_local_table_to_metadata (the table becomes the shard of a new shell table)" coord \
  "SELECT citus_add_local_table_to_metadata('lt')"
check_refused_reads coord lt_score lt
expect_error "INSERT into the Citus local table" coord 0A000 "INSERT INTO lt VALUES (1000, 1, 1)" hint "$SHARD"
expect_error "UPDATE of the Citus local table" coord 0A000 "UPDATE lt SET v = v + 1" hint "$SHARD"
expect_error "DELETE from the Citus local table" coord 0A000 "DELETE FROM lt WHERE id < 10" hint "$SHARD"
expect_ok "aggr_drop, writes, undistribute_table, aggr_create again" coord "
SELECT aggr_drop('lt_score');
INSERT INTO lt VALUES (1000, 1, 1);
UPDATE lt SET v = v + 1 WHERE id % 2 = 0;
SELECT undistribute_table('lt');
SELECT aggr_create('lt_score', 'lt'::regclass, key => 'score', sum_value => 'v');"
check_exact coord lt_score lt score v
expect_ok "another table with an aggregate made a Citus local table, then undistribute_table with the aggregate" coord "
CREATE TABLE lt2 (id int PRIMARY KEY, score int NOT NULL, v bigint NOT NULL);
INSERT INTO lt2 SELECT g, g % 11, g FROM generate_series(1, 100) g;
SELECT aggr_create('lt2_score', 'lt2'::regclass, key => 'score', sum_value => 'v');
SELECT citus_add_local_table_to_metadata('lt2');
SELECT undistribute_table('lt2');"
# undistribute_table moves the rows into a new table and drops the old
# one, with the aggregate: its triggers, re-created on the new table, name
# an aggregate that no longer exists and do nothing.
expect_error "the aggregate went with the table undistribute_table replaced" coord 42704 "SELECT aggr_count('lt2_score')"
expect_ok "writes, aggr_create again" coord "
INSERT INTO lt2 VALUES (1000, 1, 1);
UPDATE lt2 SET v = v + 1 WHERE id % 2 = 0;
SELECT aggr_create('lt2_score', 'lt2'::regclass, key => 'score', sum_value => 'v');
DELETE FROM lt2 WHERE id % 3 = 0;"
check_exact coord lt2_score lt2 score v
run coord "SELECT tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE tgname LIKE 'aggr_ext%' ORDER BY 1" |
  sed 's/^/# aggr_ext triggers on the coordinator at the end: /'
expect_same "no aggr_ext row trigger left but those of the live aggregates (and of lt2's dropped one)" coord \
  "SELECT tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE tgname ~ '^aggr_ext_[0-9]+\$' ORDER BY 1" \
  "SELECT t FROM (SELECT source::regclass || ' aggr_ext_' || aggr_id FROM aggr_internal.aggregates
     UNION ALL SELECT 'lt2 aggr_ext_' || (SELECT min(aggr_id) - 1 FROM aggr_internal.aggregates WHERE name = 'lt2_score')) s(t) ORDER BY 1"
for i in 1 2 3 4; do check_exact w1 "w1_a$i" w1_t score v; done
check_no_crash "at the end"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
