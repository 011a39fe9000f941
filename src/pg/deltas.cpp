#include "deltas.hpp"

#include "maintenance.hpp"
#include "owner_context.hpp"
#include "workers.hpp"

extern "C" {
#include "commands/vacuum.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/timeout.h"
}

namespace aggr::pg {

bool merge_enabled = true;

namespace {
enum DeltaCol { kAggr = 1, kGeneration, kNs, kSeq, kEntry, kSum, kSign, kDeltaCols = kSign };
constexpr std::size_t kMergeBatch = 50000;          // deltas of one tree folded in per transaction
constexpr uint16 kMergerLockClass = 0xA665;         // held by the live merger of a database
constexpr long kMergerPauseMs = 10;                 // between rounds: lets deltas gather into batches
constexpr int64 kVacuumAfter = 20000;               // merged deltas between the merger's VACUUMs of the table
constexpr int kMergerIdleRounds = 100;              // exits after ~1 s with nothing to merge (DROP DATABASE waits for it)
constexpr int kMergerCompileTimeoutMs = 5000;       // preparing one aggregate (folding its owner's functions) in the merger

bytea *to_bytea(const std::string &s) {
  bytea *b = static_cast<bytea *>(palloc(s.size() + VARHDRSZ));
  SET_VARSIZE(b, s.size() + VARHDRSZ);
  memcpy(VARDATA(b), s.data(), s.size());
  return b;
}

std::string from_bytea(Datum d) {
  bytea *b = DatumGetByteaPP(d);
  return std::string(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
}

// Scans the deltas of (aggregate[, generation[, namespace]]) in key order.
void scan_deltas(Relation rel, Oid pkey, int32 aggr_id, const int32 *generation, const std::string *ns, Snapshot snap,
                 const std::function<bool(HeapTuple)> &visit) {
  ScanKeyData keys[3];
  int nkeys = 1;
  ScanKeyInit(&keys[0], kAggr, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggr_id));
  if (generation) ScanKeyInit(&keys[nkeys++], kGeneration, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(*generation));
  if (generation && ns) ScanKeyInit(&keys[nkeys++], kNs, BTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(to_bytea(*ns)));
  SysScanDesc scan = systable_beginscan(rel, pkey, true, snap, nkeys, keys);
  HeapTuple tup;
  while (HeapTupleIsValid(tup = systable_getnext(scan)))
    if (!visit(tup)) break;
  systable_endscan(scan);
}

LOCKTAG merger_tag() {
  LOCKTAG tag;
  SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, kMergerLockClass);
  return tag;
}
}  // namespace

int64 append_deltas(int32 aggr_id, int32 generation, const std::string &ns, const std::vector<Delta> &deltas) {
  int64 last = 0;
  if (deltas.empty()) return last;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.deltas, RowExclusiveLock);
    Oid seq = get_relname_relid("deltas_seq_seq", get_namespace_oid("aggr_internal", false));
    bytea *nsb = to_bytea(ns);
    for (const Delta &d : deltas) {
      Datum v[kDeltaCols];
      bool n[kDeltaCols] = {};
      v[kAggr - 1] = Int32GetDatum(aggr_id);
      v[kGeneration - 1] = Int32GetDatum(generation);
      v[kNs - 1] = PointerGetDatum(nsb);
      last = nextval_internal(seq, false);
      v[kSeq - 1] = Int64GetDatum(last);
      v[kEntry - 1] = PointerGetDatum(to_bytea(d.key));
      v[kSum - 1] = PointerGetDatum(sum_to_bytea(d.value));
      v[kSign - 1] = Int16GetDatum(static_cast<int16>(d.sign));
      HeapTuple tup = heap_form_tuple(RelationGetDescr(rel), v, n);
      insert_row(rel, tup);
      heap_freetuple(tup);
    }
    table_close(rel, RowExclusiveLock);
  });
  return last;
}

int64 oldest_pending_seq(int32 aggr_id, int32 generation, const std::string &ns) {
  int64 seq = -1;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.deltas, AccessShareLock);
    scan_deltas(rel, r.deltas_pkey, aggr_id, &generation, &ns, GetLatestSnapshot(), [&](HeapTuple tup) {
      bool isnull;
      seq = DatumGetInt64(heap_getattr(tup, kSeq, RelationGetDescr(rel), &isnull));
      return false;
    });
    table_close(rel, AccessShareLock);
  });
  return seq;
}

DeltaRows load_deltas(int32 aggr_id, int32 generation, const std::string &ns, Snapshot snap, std::size_t limit) {
  DeltaRows out;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.deltas, AccessShareLock);
    scan_deltas(rel, r.deltas_pkey, aggr_id, &generation, &ns, snap, [&](HeapTuple tup) {
      Datum v[kDeltaCols];
      bool n[kDeltaCols];
      heap_deform_tuple(tup, RelationGetDescr(rel), v, n);
      Sum sum = sum_from_bytea(DatumGetByteaPP(v[kSum - 1]));  // before any std::string exists here
      out.deltas.push_back(Delta{from_bytea(v[kEntry - 1]), sum, DatumGetInt16(v[kSign - 1])});
      out.tids.push_back(tup->t_self);
      return out.deltas.size() < limit;
    });
    table_close(rel, AccessShareLock);
  });
  return out;
}

PendingChanges pending_changes(const AggregateDef &def, const std::string &ns, const Ordering &order, Snapshot snap) {
  if (!def.deferred) return PendingChanges();
  return PendingChanges(load_deltas(def.id, def.generation, ns, snap).deltas, order);
}

std::vector<std::string> pending_namespaces(int32 aggr_id, int32 generation, Snapshot snap) {
  std::vector<std::string> out;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.deltas, AccessShareLock);
    scan_deltas(rel, r.deltas_pkey, aggr_id, &generation, nullptr, snap, [&](HeapTuple tup) {
      bool isnull;
      std::string ns = from_bytea(heap_getattr(tup, kNs, RelationGetDescr(rel), &isnull));
      if (out.empty() || out.back() != ns) out.push_back(std::move(ns));
      return true;
    });
    table_close(rel, AccessShareLock);
  });
  return out;
}

void delete_deltas(int32 aggr_id, const std::function<bool(int32, const std::string &)> &doomed) {
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.deltas, RowExclusiveLock);
    List *tids = NIL;
    scan_deltas(rel, r.deltas_pkey, aggr_id, nullptr, nullptr, GetLatestSnapshot(), [&](HeapTuple tup) {
      bool isnull;
      int32 gen = DatumGetInt32(heap_getattr(tup, kGeneration, RelationGetDescr(rel), &isnull));
      Datum ns_datum = heap_getattr(tup, kNs, RelationGetDescr(rel), &isnull);
      bool doom;
      {  // the string is gone before the next PostgreSQL call, which may longjmp
        std::string ns = from_bytea(ns_datum);
        doom = doomed(gen, ns);
      }
      if (doom) {
        ItemPointer tid = static_cast<ItemPointer>(palloc(sizeof(ItemPointerData)));
        *tid = tup->t_self;
        tids = lappend(tids, tid);
      }
      return true;
    });
    ListCell *lc;
    foreach (lc, tids) simple_heap_delete(rel, static_cast<ItemPointer>(lfirst(lc)));
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
}

namespace {
// Folds up to kMergeBatch pending deltas of one tree into it.
int64 merge_tree(const OpenTrees &o, CompiledAggregate &agg, const Ordering &order, const AggregateDef &def,
                 const std::string &ns) {
  // Under the tree lock no other merge of this tree runs; the deltas read
  // after it are every one committed so far.
  pg_guard([&] { lock_tree(def.id, def.generation, ns); });
  DeltaRows rows;
  pg_guard([&] { rows = load_deltas(def.id, def.generation, ns, GetLatestSnapshot(), kMergeBatch); });
  if (rows.deltas.empty()) return 0;
  int64 merged = static_cast<int64>(rows.deltas.size());
  op_buffer().note_fold(def.id);  // other transactions' deltas: reads as of an earlier command cannot undo this
  PendingChanges changes(std::move(rows.deltas), order);
  if (!changes.empty()) apply_to_tree(o, agg, order, def.generation, ns, changes.ops(), true);
  pg_guard([&] {
    Relation rel = table_open(o.r.deltas, RowExclusiveLock);
    for (ItemPointerData &tid : rows.tids) simple_heap_delete(rel, &tid);
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
  return merged;
}
}  // namespace

int64 merge_deltas_as_owner(int32 aggr_id) {
  int64 merged = 0;
  run_as_aggregate_owner(aggr_id, [&] { merged = merge_deltas(aggr_id); });
  return merged;
}

int64 merge_deltas(int32 aggr_id, const std::string *only_ns) {
  // The aggregate lock first (a swap or clear holds it exclusively), then
  // the definition it protects.
  pg_guard([&] { lock_aggregate(aggr_id, RowExclusiveLock); });
  AggregateDef def;
  if (!load_aggregate_by_id(aggr_id, def) || def.generation == 0) return 0;
  CompiledAggregate &agg = compiled_aggregate(def);
  if (agg.stale()) return 0;
  EntryOrdering order(agg.layout());
  std::vector<std::string> namespaces;
  if (only_ns)
    namespaces.push_back(*only_ns);
  else
    pg_guard([&] { namespaces = pending_namespaces(def.id, def.generation, GetLatestSnapshot()); });
  int64 merged = 0;
  OpenTrees o = open_trees(RowExclusiveLock);
  for (const std::string &ns : namespaces) merged += merge_tree(o, agg, order, def, ns);
  close_trees(o, RowExclusiveLock);
  return merged;
}

// ---------------------------------------------------------------- merger

namespace {
// The merger prepares each aggregate as its table's owner, which runs the
// owner's constant-folded key functions: one that never returns stalled
// merging for every role of the database. Bounded: an aggregate whose
// preparation takes longer fails this round (logged), the others go on.
void prepare_with_timeout(int32 aggr_id) {
  AggregateDef def;
  if (!load_aggregate_by_id(aggr_id, def)) return;
  pg_guard([] { enable_timeout_after(STATEMENT_TIMEOUT, kMergerCompileTimeoutMs); });
  try {
    run_as_table_owner(def.source, [&] { (void)compiled_aggregate(def); });  // merge_deltas_as_owner reuses it
  } catch (...) {
    pg_guard([] { disable_timeout(STATEMENT_TIMEOUT, false); });
    throw;
  }
  pg_guard([] { disable_timeout(STATEMENT_TIMEOUT, false); });
}

void launch_merger() {
  if (!launch_worker_process("aggr_ext merger for database " + std::to_string(MyDatabaseId), "aggr_ext merger",
                             "aggr_ext_merger_main", ObjectIdGetDatum(MyDatabaseId)))
    pg_guard([] {
      ereport(WARNING, (errmsg("no background worker slot is free for the aggr_ext merger"),
                        errhint("Raise max_worker_processes; until then, fold deltas in with SELECT aggr_merge(name).")));
    });
}
}  // namespace

void ensure_merger() {
  static TimestampTz checked = 0;
  TimestampTz now = 0;
  pg_guard([&] { now = GetCurrentTimestamp(); });
  if (now - checked < USECS_PER_SEC) return;
  checked = now;
  if (held_by_live_worker(merger_tag())) return;
  launch_merger();
  checked = now + 4 * USECS_PER_SEC;  // give it time to start before asking again
}

namespace {
// The deferred aggregates of this database.
std::vector<int32> deferred_aggregates() {
  std::vector<int32> ids;
  pg_guard([&] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    if (SPI_execute("SELECT aggr_id FROM aggr_internal.aggregates WHERE write_mode = 'deferred'", true, 0) !=
        SPI_OK_SELECT)
      elog(ERROR, "could not list deferred aggregates");
    for (uint64 i = 0; i < SPI_processed; ++i) {
      bool isnull;
      ids.push_back(DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
    }
    SPI_finish();
  });
  return ids;
}

// One transaction; false if it failed (logged in full, rolled back).
bool in_transaction(const char *what, const std::function<void()> &body) {
  char *message = run_in_transaction(what, body);
  if (message) pfree(message);
  return !message;
}

// Merged deltas are deleted row by row; until a VACUUM removes them their
// index entries are walked by every read of the tree (a million-delta churn
// made a read of a tree with nothing pending cost 0.4 ms). So the merger
// vacuums the table itself rather than waiting for autovacuum's naptime.
// Called outside any transaction, as autovacuum calls vacuum().
void vacuum_deltas() {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  ErrorReport report;
  bool failed = false;
  try {
    pg_guard([] {
      VacuumParams params;
      memset(&params, 0, sizeof params);
      params.options = VACOPT_VACUUM | VACOPT_SKIP_LOCKED;
      params.freeze_min_age = params.freeze_table_age = -1;
      params.multixact_freeze_min_age = params.multixact_freeze_table_age = -1;
      params.log_min_duration = -1;
      params.index_cleanup = VACOPTVALUE_UNSPECIFIED;
      params.truncate = VACOPTVALUE_UNSPECIFIED;
      params.nworkers = -1;
      RangeVar *rv = makeRangeVar(pstrdup("aggr_internal"), pstrdup("deltas"), -1);
      Oid relid = RangeVarGetRelid(rv, NoLock, false);
      vacuum(list_make1(makeVacuumRelation(rv, relid, NIL)), &params, NULL, true);
    });
    pg_guard([] { CommitTransactionCommand(); });
  } catch (...) {
    report = capture_current_exception();
    failed = true;
  }
  if (failed) pfree(abort_with_report(report, "aggr_ext merger: VACUUM of aggr_internal.deltas"));
}
}  // namespace

}  // namespace aggr::pg

extern "C" {
PGDLLEXPORT void aggr_ext_merger_main(Datum arg);
}

void aggr_ext_merger_main(Datum arg) {
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  // As the bootstrap superuser, to see every aggregate; each merge runs as
  // the owner of the aggregate's table (merge_deltas_as_owner).
  BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
  // One merger per database: this session lock says a live one runs.
  if (!aggr::pg::claim_for_session(aggr::pg::merger_tag())) proc_exit(0);
  pgstat_report_appname("aggr_ext merger");
  int idle = 0;
  int64 unvacuumed = 0;
  while (idle < aggr::pg::kMergerIdleRounds) {
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    std::vector<int32> ids;
    if (!aggr::pg::merge_enabled ||
        !aggr::pg::in_transaction("aggr_ext merger: listing aggregates", [&] { ids = aggr::pg::deferred_aggregates(); }))
      ids.clear();
    int64 merged = 0;
    for (int32 id : ids) {
      std::string what = "aggr_ext merger: merging aggregate " + std::to_string(id);
      aggr::pg::in_transaction(what.c_str(), [&] {
        aggr::pg::prepare_with_timeout(id);
        merged += aggr::pg::merge_deltas_as_owner(id);
      });
    }
    idle = merged > 0 ? 0 : idle + 1;
    unvacuumed += merged;
    if (unvacuumed >= aggr::pg::kVacuumAfter || (unvacuumed > 0 && merged == 0)) {
      aggr::pg::vacuum_deltas();
      unvacuumed = 0;
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, aggr::pg::kMergerPauseMs,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  proc_exit(0);
}
