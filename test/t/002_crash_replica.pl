# Crashes during writes, and a streaming standby: after recovery the
# aggregate equals plain SQL; the standby answers every read function
# exactly like the primary.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "aggr_ext.enable_planner = off\n");  # its checks' plain SQL must not be answered by the aggregate
$primary->append_conf('postgresql.conf', "restart_after_crash = on\n");
$primary->start;
$primary->safe_psql('postgres', q{
  CREATE EXTENSION aggr_ext;
  CREATE TABLE s (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
  INSERT INTO s SELECT i, i % 4, (i * 37) % 1000 FROM generate_series(1, 20000) i;
  SELECT aggr_create('s_v', 's'::regclass, key => 'v DESC', sum_value => 'v', build => 'now');
  SELECT aggr_create('s_g', 's'::regclass, key => 'v', namespace => 'g', build => 'now');
  SELECT aggr_create('s_d', 's'::regclass, key => 'v', sum_value => 'id', namespace => 'g', build => 'now');
  SELECT aggr_set_write_mode('s_d', 'deferred');
});
my $exact = q{
  SELECT aggr_count('s_v') = (SELECT count(*) FROM s)
     AND aggr_sum('s_v') = (SELECT sum(v) FROM s)
     AND (SELECT bool_and(aggr_count('s_g', namespace => n) = (SELECT count(*) FROM s WHERE g = n)) FROM generate_series(0, 3) n)
     AND (SELECT status FROM aggr_verify('s_v')) = 'ok'
     AND (SELECT status FROM aggr_verify('s_g')) = 'ok'
     AND (SELECT status FROM aggr_verify('s_d')) = 'ok'
     AND (SELECT bool_and(aggr_sum('s_d', namespace => n) = (SELECT coalesce(sum(id), 0) FROM s WHERE g = n)) FROM generate_series(0, 3) n)};

# kill -9 of a backend in the middle of a big write transaction
my $writer = $primary->background_psql('postgres');
$writer->query_safe(q{BEGIN; INSERT INTO s SELECT i, i % 4, i % 1000 FROM generate_series(100001, 150000) i;
  SELECT aggr_count('s_v');});
my $pid = $writer->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $pid;
eval { $writer->quit; };
$primary->poll_query_until('postgres', 'SELECT true') or die 'primary did not recover';
is($primary->safe_psql('postgres', $exact), 't', 'exact after kill -9 of a writer in mid-transaction');

# immediate shutdown under concurrent committed writes
$primary->pgbench('--no-vacuum --client=4 --jobs=2 --transactions=200', 0, [qr{processed: 800/800}], [qr{^$}],
  'writers committed', {
    'writes' => q{
\set id random(1, 30000)
\set v random(0, 999)
BEGIN;
INSERT INTO s VALUES (:id, :id % 4, :v) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, g = (EXCLUDED.g + 1) % 4;
DELETE FROM s WHERE id = :id + 7;
COMMIT;
}});
$primary->stop('immediate');
$primary->start;
is($primary->safe_psql('postgres', $exact), 't', 'exact after an immediate shutdown and recovery');

# a streaming standby answers like the primary
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
# The deferred aggregate's changes stay pending (merger paused): the standby
# adds the replicated deltas in, as the primary does.
$primary->safe_psql('postgres', "LOAD 'aggr_ext';\nALTER SYSTEM SET aggr_ext.merge_deltas = off;\nSELECT pg_reload_conf();");
# Wait until no merger that may not have seen the setting runs (a new one starts paused).
$primary->poll_query_until('postgres',
  "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'aggr_ext merger')")
  or die "the merger did not stop";
$primary->safe_psql('postgres', q{UPDATE s SET v = v + 1 WHERE id % 5 = 0; DELETE FROM s WHERE id % 11 = 0;});
$primary->wait_for_catchup($standby);
isnt($standby->safe_psql('postgres', 'SELECT count(*) FROM aggr_internal.deltas'), '0', 'the standby has pending deltas');
my $reads = q{
  SELECT aggr_count('s_v'), aggr_sum('s_v'), aggr_rank('s_v', 500), aggr_min('s_v'), aggr_max('s_v'),
         (SELECT string_agg(id || ':' || key, ',') FROM aggr_page('s_v', 5000, 20)),
         (SELECT id FROM aggr_at('s_v', -1)),
         aggr_count('s_g', namespace => 2, lower => 100, upper => 200),
         (SELECT count(*) FROM aggr_page_rows('s_v', 0, 50, NULL::s)),
         aggr_count('s_d', namespace => 1), aggr_sum('s_d', namespace => 2), aggr_rank('s_d', 500, namespace => 3),
         (SELECT string_agg(id, ',') FROM aggr_page('s_d', 100, 10, namespace => 0))};
my $on_primary = $primary->safe_psql('postgres', $reads);
is($standby->safe_psql('postgres', $reads), $on_primary, 'the standby answers every read like the primary');
is($standby->safe_psql('postgres', q{SELECT aggr_count('s_v') = (SELECT count(*) FROM s)
     AND aggr_sum('s_d', namespace => 2) = (SELECT sum(id) FROM s WHERE g = 2)}), 't',
  'and equals plain SQL on the standby');
my ($ret, $out, $err) = $standby->psql('postgres', "SELECT aggr_clear('s_v')");
like($err, qr/read-only/, 'maintenance on the standby is refused as a read-only transaction');

$standby->stop;
$primary->stop;
done_testing();
