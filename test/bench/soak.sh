#!/usr/bin/env bash
# Multi-client soak: CLIENTS clients of random INSERT / UPDATE / DELETE with
# savepoints and rollbacks, under READ COMMITTED and REPEATABLE READ, for
# SECONDS; then aggr_verify must say ok for every aggregate. Prints the
# committed, deadlocked and serialization-failed transaction counts. One of
# the three aggregates uses the deferred write path.
#   test/bench/soak.sh [SECONDS=120] [CLIENTS=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-120}
CLIENTS=${2:-8}
. test/bench/throwaway_cluster.sh
start_throwaway_cluster aggr_soak "${AGGR_SOAK_PORT:-5496}"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
\o /dev/null
CREATE EXTENSION aggr_ext;
CREATE TABLE soak (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
INSERT INTO soak SELECT i, i % 10, (i * 37) % 1000 FROM generate_series(1, 50000) i;
SELECT aggr_create('soak_v', 'soak'::regclass, key => 'v DESC', sum_value => 'v', build => 'now');
SELECT aggr_create('soak_g', 'soak'::regclass, key => 'v', sum_value => 'v', namespace => 'g', build => 'now');
-- The deferred write path under the same load (merger running throughout).
SELECT aggr_create('soak_d', 'soak'::regclass, key => 'v DESC', sum_value => 'id', namespace => 'g', build => 'now');
SELECT aggr_set_write_mode('soak_d', 'deferred');
SQL
cat >"$DIR/rc.sql" <<'SQL'
\set id random(1, 60000)
\set v random(0, 999)
\set g random(0, 9)
BEGIN;
INSERT INTO soak VALUES (:id, :g, :v) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, g = EXCLUDED.g;
SAVEPOINT a;
DELETE FROM soak WHERE id = :id + 1;
UPDATE soak SET v = v + 1 WHERE id = :id + 2;
ROLLBACK TO SAVEPOINT a;
DELETE FROM soak WHERE id = :id + 3;
SELECT aggr_rank('soak_v', :v), aggr_rank('soak_d', :v, namespace => :g);
END;
SQL
cat >"$DIR/rr.sql" <<'SQL'
\set id random(1, 60000)
\set v random(0, 999)
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE soak SET v = :v WHERE id = :id;
SELECT aggr_count('soak_g', namespace => :id % 10), aggr_sum('soak_d', namespace => :id % 10);
END;
SQL
cat >"$DIR/rollback.sql" <<'SQL'
\set id random(1, 60000)
BEGIN;
DELETE FROM soak WHERE id BETWEEN :id AND :id + 20;
SELECT aggr_count('soak_v');
ROLLBACK;
SQL
chmod 644 "$DIR"/*.sql
pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" --failures-detailed \
  -f "$DIR/rc.sql@6" -f "$DIR/rr.sql@3" -f "$DIR/rollback.sql@1" >"$DIR/pgbench.out" 2>"$DIR/pgbench.err" || true
grep -E "number of transactions actually processed|number of failed|serialization failures|deadlock failures|^tps" "$DIR/pgbench.out" || cat "$DIR/pgbench.err"
result=$(psql -X -At -c "SELECT (SELECT status FROM aggr_verify('soak_v')) || '/' || (SELECT status FROM aggr_verify('soak_g'))
                          || '/' || (SELECT status FROM aggr_verify('soak_d'))
                          || ' drift=' || (SELECT drift_events FROM aggr_status('soak_v'))
                          || '+' || (SELECT drift_events FROM aggr_status('soak_d'))
                          || ' count_ok=' || (aggr_count('soak_v') = (SELECT count(*) FROM soak))
                          || ' deferred_ok=' || (SELECT bool_and(aggr_sum('soak_d', namespace => g) = (SELECT sum(id) FROM soak s WHERE s.g = t.g))
                                                   FROM (SELECT DISTINCT g FROM soak) t)
                          || ' pending=' || (SELECT count(*) FROM aggr_internal.deltas)")
echo "verify after soak: $result"
[[ "$result" == ok/ok/ok* && "$result" == *count_ok=true* && "$result" == *deferred_ok=true* ]]
