# pg_dump + restore into a new database: aggregates come back exact (their
# definitions and trees are extension configuration data) and keep being
# maintained; a user-defined function in a key is re-resolved by name.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "aggr_ext.enable_planner = off\n");  # its checks' plain SQL must not be answered by the aggregate
$node->start;
$node->safe_psql('postgres', q{
  CREATE EXTENSION aggr_ext;
  CREATE FUNCTION bucket(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 / 10';
  CREATE TABLE s (id int PRIMARY KEY, g text NOT NULL, v int NOT NULL);
  INSERT INTO s SELECT i, 'g' || (i % 3), (i * 37) % 1000 FROM generate_series(1, 30000) i;
  SELECT aggr_create('s_v', 's'::regclass, key => 'v DESC', sum_value => 'v', build => 'now');
  SELECT aggr_create('s_b', 's'::regclass, key => 'bucket(v), id', namespace => 'g', build => 'now');
  DELETE FROM s WHERE id % 7 = 0;
});
my $reads = q{
  SELECT aggr_count('s_v'), aggr_sum('s_v'), aggr_rank('s_v', 500),
         (SELECT string_agg(id || ':' || key, ',') FROM aggr_page('s_v', 1000, 10)),
         aggr_count('s_b', namespace => 'g1'), aggr_rank('s_b', ROW(50), namespace => 'g2')};
my $before = $node->safe_psql('postgres', $reads);

my $dump = $node->basedir . '/db.dump';
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres')], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '-d', $node->connstr('restored'), $dump], 'pg_restore');

is($node->safe_psql('restored', $reads), $before, 'the restored aggregates answer as before');
my $exact = q{
  SELECT aggr_count('s_v') = (SELECT count(*) FROM s)
     AND aggr_sum('s_v') = (SELECT sum(v) FROM s)
     AND aggr_count('s_b', namespace => 'g0') = (SELECT count(*) FROM s WHERE g = 'g0')
     AND (SELECT status FROM aggr_verify('s_v')) = 'ok'
     AND (SELECT status FROM aggr_verify('s_b')) = 'ok'};
is($node->safe_psql('restored', $exact), 't', 'restored aggregates are exact');
$node->safe_psql('restored', q{
  INSERT INTO s SELECT i, 'g0', i % 1000 FROM generate_series(40001, 41000) i;
  UPDATE s SET v = v + 1 WHERE id % 5 = 0;
  DELETE FROM s WHERE id % 11 = 0;
});
is($node->safe_psql('restored', $exact), 't', 'and stay exact under writes after the restore');
is($node->safe_psql('restored', q{SELECT state FROM aggr_status('s_b')}), 'ready', 'state survives');

$node->stop;
done_testing();
