# Logical replication into a subscriber table that has an aggregate: the
# apply worker runs with session_replication_role = replica, and the
# aggregate's triggers fire ALWAYS, so it stays exact.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->append_conf('postgresql.conf', "aggr_ext.enable_planner = off\n");  # its checks' plain SQL must not be answered by the aggregate
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', "aggr_ext.enable_planner = off\n");  # its checks' plain SQL must not be answered by the aggregate
$sub->start;

my $ddl = 'CREATE TABLE s (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);';
$pub->safe_psql('postgres', $ddl . q{
  INSERT INTO s SELECT i, i % 3, (i * 37) % 1000 FROM generate_series(1, 5000) i;
  CREATE PUBLICATION p FOR TABLE s;});
$sub->safe_psql('postgres', $ddl . q{
  CREATE EXTENSION aggr_ext;
  SELECT aggr_create('s_v', 's'::regclass, key => 'v DESC', sum_value => 'v', build => 'now');
  SELECT aggr_create('s_g', 's'::regclass, key => 'v', namespace => 'g', build => 'now');});
$sub->safe_psql('postgres',
  "CREATE SUBSCRIPTION sub CONNECTION '" . $pub->connstr . " dbname=postgres' PUBLICATION p");
$pub->wait_for_catchup('sub');
$sub->poll_query_until('postgres', "SELECT count(*) = 5000 FROM s") or die 'initial sync did not finish';

my $exact = q{
  SELECT aggr_count('s_v') = (SELECT count(*) FROM s)
     AND aggr_sum('s_v') = (SELECT sum(v) FROM s)
     AND (SELECT bool_and(aggr_count('s_g', namespace => n) = (SELECT count(*) FROM s WHERE g = n)) FROM generate_series(0, 2) n)
     AND (SELECT status FROM aggr_verify('s_v')) = 'ok'
     AND (SELECT status FROM aggr_verify('s_g')) = 'ok'};
is($sub->safe_psql('postgres', $exact), 't', 'exact after the initial table sync');

$pub->safe_psql('postgres', q{
  INSERT INTO s SELECT i, i % 3, i % 1000 FROM generate_series(10001, 12000) i;
  UPDATE s SET v = v + 1, g = (g + 1) % 3 WHERE id % 4 = 0;
  DELETE FROM s WHERE id % 9 = 0;
  BEGIN; UPDATE s SET v = 0 WHERE id < 100; UPDATE s SET v = 1 WHERE id < 50; COMMIT;});
$pub->wait_for_catchup('sub');
is($sub->safe_psql('postgres', $exact), 't', 'exact after replicated inserts, updates, moves and deletes');

$pub->safe_psql('postgres', 'TRUNCATE s');
$pub->wait_for_catchup('sub');
is($sub->safe_psql('postgres', "SELECT aggr_count('s_v') || '/' || (SELECT count(*) FROM s)"), '0/0',
  'a replicated TRUNCATE empties the aggregate');

$sub->stop;
$pub->stop;
done_testing();
