# A background backfill survives an immediate shutdown in the middle and
# ends exact; a cancelled job says so and resumes where it stopped.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "aggr_ext.enable_planner = off\n");  # its checks' plain SQL must not be answered by the aggregate
# Slow the job down so that the crash lands in the middle of it.
$node->append_conf('postgresql.conf', "aggr_ext.job_delay = 20\nmax_worker_processes = 16\n");
$node->start;

my $exact = q{
  SELECT aggr_count('big_v') = (SELECT count(*) FROM big)
     AND aggr_sum('big_v') = (SELECT sum(v) FROM big)
     AND (SELECT status FROM aggr_verify('big_v')) = 'ok'};

$node->safe_psql('postgres', q{
  CREATE EXTENSION aggr_ext;
  CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL);
  INSERT INTO big SELECT g, (g * 7919) % 100000 FROM generate_series(1, 200000) g;
  SELECT aggr_create('big_v', 'big'::regclass, key => 'v', sum_value => 'v', build => 'now');
  SELECT aggr_clear('big_v');
});
$node->safe_psql('postgres', "CALL aggr_backfill('big_v', batch_size => 1000)");
$node->poll_query_until('postgres', "SELECT job_rows_done >= 20000 FROM aggr_status('big_v')")
  or die 'backfill made no progress';
# Writes while the job runs go to its log.
$node->safe_psql('postgres', q{
  DELETE FROM big WHERE id % 50 = 0;
  UPDATE big SET v = v + 1 WHERE id % 77 = 0;
  INSERT INTO big SELECT g, g % 1000 FROM generate_series(300001, 301000) g;
});

$node->stop('immediate');
$node->start;

my ($state, $done) = split /\|/,
  $node->safe_psql('postgres', "SELECT state, job_rows_done FROM aggr_status('big_v')");
is($state, 'building', 'after the crash the aggregate is still being built');
cmp_ok($done, '>=', 20000, 'progress made before the crash was kept');
cmp_ok($done, '<', 201000, 'the crash came before the end of the scan');
my $err;
$node->psql('postgres', "SELECT aggr_count('big_v')", stderr => \$err);
like($err, qr/not ready \(state: building; backfill scan/, 'reads say the aggregate is incomplete, with progress');

# Any status call relaunches the worker of an orphaned job.
$node->poll_query_until('postgres', "SELECT state = 'ready' FROM aggr_status('big_v')")
  or die 'backfill did not resume after restart';
is($node->safe_psql('postgres', $exact), 't', 'resumed backfill ends exact');

# Cancel a running job, then resume it.
$node->safe_psql('postgres', "SELECT aggr_clear('big_v')");
$node->safe_psql('postgres', "CALL aggr_backfill('big_v', batch_size => 500)");
$node->poll_query_until('postgres', "SELECT job_rows_done >= 5000 FROM aggr_status('big_v')")
  or die 'backfill made no progress';
$node->safe_psql('postgres', "SELECT aggr_backfill_cancel('big_v')");
# the worker stops between batches: wait for it to be gone
$node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'aggr_ext job')")
  or die 'the job worker did not stop after cancel';
my $job = $node->safe_psql('postgres', "SELECT state || ' / ' || job FROM aggr_status('big_v')");
like($job, qr/^building \/ backfill cancelled in scan/, 'status says the job was cancelled');
my $stopped = $node->safe_psql('postgres', "SELECT job_rows_done FROM aggr_status('big_v')");
sleep 1;  # a window in which a job that still ran would make progress
is($node->safe_psql('postgres', "SELECT job_rows_done FROM aggr_status('big_v')"), $stopped,
  'a cancelled job makes no more progress');
$node->psql('postgres', "SELECT aggr_count('big_v')", stderr => \$err);
like($err, qr/backfill cancelled/, 'reads name the cancelled job');
$node->safe_psql('postgres', "DELETE FROM big WHERE id % 3 = 0");
$node->safe_psql('postgres', "CALL aggr_backfill('big_v', batch_size => 5000, wait => true)");
is($node->safe_psql('postgres', $exact), 't', 'resumed after cancel, the backfill ends exact');

$node->stop;
done_testing();
