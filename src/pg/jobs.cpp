#include "jobs.hpp"

#include "definition.hpp"

#include "deltas.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include "maintenance.hpp"
#include "sorted_scan.hpp"
#include "owner_context.hpp"
#include "workers.hpp"

extern "C" {
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "commands/portalcmds.h"
#include "utils/guc.h"
#include "utils/portal.h"
#include "utils/backend_status.h"
}

namespace aggr::pg {

int job_delay_ms = 0;
int max_job_workers = 2;

namespace {
bool check_node_bytes(int *value, void **, GucSource) {
  if (*value == 0 || *value >= 800) return true;
  GUC_check_errdetail("aggr_ext.node_bytes is 0 (chosen by the key) or from 800 to 6400.");
  return false;
}
}  // namespace

void define_settings() {
  DefineCustomIntVariable("aggr_ext.max_job_workers", "Background job workers (backfills, rebuilds) that may run at once.",
                          "More jobs wait for a worker to finish; a finished worker takes the next. Bounds what any "
                          "role's jobs take from max_worker_processes.",
                          &max_job_workers, 2, 1, 64, PGC_SIGHUP, 0, NULL, NULL, NULL);
  DefineCustomIntVariable("aggr_ext.job_delay", "Pause between the batches of a background backfill or rebuild.",
                          "Throttles background jobs to leave I/O and CPU to the workload.", &job_delay_ms, 0, 0,
                          60000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
  DefineCustomIntVariable("aggr_ext.node_cache_size", "Memory each backend may use to keep decoded tree nodes.",
                          "Reads reuse a decoded node while their snapshot sees the version it came from; "
                          "0 turns the cache off.",
                          &node_cache_kb, 64 * 1024, 0, 1024 * 1024, PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
  DefineCustomIntVariable("aggr_ext.write_buffer_size",
                          "Memory for a transaction's changes to aggregates before it sorts them to disk.",
                          "Beyond it, a large transaction's changes are kept as sorted runs in temporary files and "
                          "applied in one merge (before a read of the aggregate, or at commit).",
                          &write_buffer_kb, 64 * 1024, 64, 2 * 1024 * 1024, PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
  DefineCustomIntVariable("aggr_ext.partition_merge_rows",
                          "Entries of a part at which a positional read across partitions selects in memory (tests).",
                          NULL, &partition_merge_rows, 256, 0, 1 << 20, PGC_USERSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
                          NULL, NULL, NULL);
  DefineCustomIntVariable("aggr_ext.node_bytes", "Node size of aggregates created from now on (0: chosen by the key).",
                          "0 gives 800 to keys of fixed-width columns that fit 136 bytes, 1600 to others. Each "
                          "aggregate keeps the size it was created with; keys may use a quarter of it minus 64 "
                          "bytes. Larger nodes allow longer keys and cost more WAL and storage per change.",
                          &new_node_bytes, 0, 0, 6400, PGC_USERSET, 0, check_node_bytes, NULL, NULL);
  DefineCustomBoolVariable("aggr_ext.merge_deltas", "Whether the merger folds deferred deltas into the trees.",
                           "Off pauses it (reads stay exact; they add in more deltas); aggr_merge(name) still works.",
                           &merge_enabled, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
}

namespace {
enum JobCol {
  kAggr = 1, kKind, kPhase, kTarget, kBatch, kRole, kBackground, kCancelled, kRowsTotal, kRowsDone, kLastEntry,
  kLogDone, kStarted, kUpdated, kError, kJobCols = kError
};
constexpr uint16 kStepLockClass = 0xA663;    // one step at a time, per aggregate
// Held by a live worker for its lifetime; the aggr_progress view finds the
// worker's pid by it (objsubid -22940, 0xA664 as int2, in pg_locks): keep
// the two in step.
constexpr uint16 kWorkerLockClass = 0xA664;

LOCKTAG job_lock_tag(int32 aggr_id, uint16 cls) {
  LOCKTAG tag;
  SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(aggr_id), 0, cls);
  return tag;
}

std::string portal_name(int32 aggr_id) { return "aggr_ext_job_" + std::to_string(aggr_id); }

std::string encode_position(const std::string &ns, const std::string &key) {
  uint32 len = static_cast<uint32>(ns.size());
  std::string out(reinterpret_cast<const char *>(&len), 4);
  return out + ns + key;
}

void decode_position(const std::string &pos, std::string &ns, std::string &key) {
  uint32 len = 0;
  if (pos.size() >= 4) memcpy(&len, pos.data(), 4);
  if (pos.size() < 4 + static_cast<std::size_t>(len)) throw CorruptNode("job position is corrupt");
  ns = pos.substr(4, len);
  key = pos.substr(4 + len);
}

JobRow job_from_tuple(Relation rel, HeapTuple tup) {
  Datum v[kJobCols];
  bool n[kJobCols];
  heap_deform_tuple(tup, RelationGetDescr(rel), v, n);
  JobRow j;
  j.exists = true;
  j.tid = tup->t_self;
  j.aggr_id = DatumGetInt32(v[kAggr - 1]);
  j.kind = TextDatumGetCString(v[kKind - 1]);
  j.phase = TextDatumGetCString(v[kPhase - 1]);
  j.target = DatumGetInt32(v[kTarget - 1]);
  j.batch_size = DatumGetInt32(v[kBatch - 1]);
  j.role = DatumGetObjectId(v[kRole - 1]);
  j.background = DatumGetBool(v[kBackground - 1]);
  j.cancelled = DatumGetBool(v[kCancelled - 1]);
  j.rows_total = DatumGetInt64(v[kRowsTotal - 1]);
  j.rows_done = DatumGetInt64(v[kRowsDone - 1]);
  j.has_last = !n[kLastEntry - 1];
  if (j.has_last) {
    bytea *b = DatumGetByteaPP(v[kLastEntry - 1]);
    j.last_entry.assign(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
  }
  j.log_floor = DatumGetInt64(v[kLogDone - 1]);
  j.started = DatumGetTimestampTz(v[kStarted - 1]);
  j.updated = DatumGetTimestampTz(v[kUpdated - 1]);
  if (!n[kError - 1]) j.error = TextDatumGetCString(v[kError - 1]);
  return j;
}

void store_job(JobRow &j) {
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.jobs, RowExclusiveLock);
    Datum v[kJobCols];
    bool n[kJobCols] = {};
    j.updated = GetCurrentTimestamp();
    v[kAggr - 1] = Int32GetDatum(j.aggr_id);
    v[kKind - 1] = CStringGetTextDatum(j.kind.c_str());
    v[kPhase - 1] = CStringGetTextDatum(j.phase.c_str());
    v[kTarget - 1] = Int32GetDatum(j.target);
    v[kBatch - 1] = Int32GetDatum(j.batch_size);
    v[kRole - 1] = ObjectIdGetDatum(j.role);
    v[kBackground - 1] = BoolGetDatum(j.background);
    v[kCancelled - 1] = BoolGetDatum(j.cancelled);
    v[kRowsTotal - 1] = Int64GetDatum(j.rows_total);
    v[kRowsDone - 1] = Int64GetDatum(j.rows_done);
    n[kLastEntry - 1] = !j.has_last;
    if (j.has_last) {
      bytea *b = (bytea *)palloc(VARHDRSZ + j.last_entry.size());
      SET_VARSIZE(b, VARHDRSZ + j.last_entry.size());
      memcpy(VARDATA(b), j.last_entry.data(), j.last_entry.size());
      v[kLastEntry - 1] = PointerGetDatum(b);
    }
    v[kLogDone - 1] = Int64GetDatum(j.log_floor);
    v[kStarted - 1] = TimestampTzGetDatum(j.started);
    v[kUpdated - 1] = TimestampTzGetDatum(j.updated);
    n[kError - 1] = j.error.empty();
    v[kError - 1] = j.error.empty() ? (Datum)0 : CStringGetTextDatum(j.error.c_str());
    HeapTuple tup = heap_form_tuple(RelationGetDescr(rel), v, n);
    if (j.exists)
      update_row(rel, &j.tid, tup);
    else
      insert_row(rel, tup);
    j.exists = true;
    j.tid = tup->t_self;
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
}

void delete_job(const JobRow &j) {
  ItemPointerData tid = j.tid;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.jobs, RowExclusiveLock);
    simple_heap_delete(rel, &tid);
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
}

void delete_log(int32 aggr_id, int64 upto) {
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.log, RowExclusiveLock);
    ScanKeyData keys[2];
    ScanKeyInit(&keys[0], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggr_id));
    ScanKeyInit(&keys[1], 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(upto));
    SysScanDesc scan = systable_beginscan(rel, r.log_pkey, true, GetLatestSnapshot(), 2, keys);
    HeapTuple tup;
    while (HeapTupleIsValid(tup = systable_getnext(scan))) simple_heap_delete(rel, &tup->t_self);
    systable_endscan(scan);
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
}

}  // namespace

void drop_generations_except(const AggregateDef &def, int32 keep, int32 keep2) {
  OpenTrees o = open_trees(RowExclusiveLock);
  pg_guard([&] {
    ScanKeyData key;
    ScanKeyInit(&key, 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(def.id));
    SysScanDesc scan = systable_beginscan(o.trees, o.r.trees_aggr_ns_key, true, GetLatestSnapshot(), 1, &key);
    HeapTuple tup;
    List *doomed = NIL;
    while (HeapTupleIsValid(tup = systable_getnext(scan))) {
      bool isnull;
      int32 gen = DatumGetInt32(heap_getattr(tup, 3, RelationGetDescr(o.trees), &isnull));
      if (gen != keep && gen != keep2) doomed = lappend(doomed, heap_copytuple(tup));
    }
    systable_endscan(scan);
    ListCell *lc;
    foreach (lc, doomed) {
      HeapTuple t = (HeapTuple)lfirst(lc);
      bool isnull;
      TreeRow row;
      row.tid = t->t_self;
      row.tree_id = DatumGetInt64(heap_getattr(t, 1, RelationGetDescr(o.trees), &isnull));
      drop_tree(o.trees, o.nodes, o.r, row);
    }
    CommandCounterIncrement();
  });
  delete_deltas(def.id, [&](int32 gen, const std::string &) { return gen != keep && gen != keep2; });
  close_trees(o, RowExclusiveLock);
}

namespace {

// ---------------------------------------------------------------- steps

// Applies sorted upserts of one namespace to the job's generation.
void append_batch(CompiledAggregate &agg, const Ordering &order, int32 generation, const std::string &ns,
                  std::vector<Op> &ops) {
  if (ops.empty()) return;
  OpenTrees o = open_trees(RowExclusiveLock);
  apply_to_tree(o, agg, order, generation, ns, ops, false);
  close_trees(o, RowExclusiveLock);
  ops.clear();
}

// Where each held cursor of this backend stands (the last entry it gave).
// A step that aborted after fetching leaves its cursor ahead of the job's
// committed progress; such a cursor is closed and opened afresh.
std::map<int32, std::string> &cursor_positions() {
  static std::map<int32, std::string> positions;
  return positions;
}

// Whether a scanned row comes at or before the position (ns, key) in the
// scan's order: namespaces in their type's SQL order (encoded bytes are not:
// int4 256 encodes before 255), then entries.
bool at_or_before(const CompiledAggregate &agg, const Ordering &order, const CompiledAggregate::RowEntry &entry,
                  const std::string &ns, const std::string &key) {
  if (entry.ns != ns) return agg.ns_layout().compare_raw(entry.ns, ns, 1) < 0;
  return order.compare(entry.key, key) <= 0;
}

// Opens the job's held, key-ordered cursor. Writers that flushed before the
// job was announced wrote the old trees only and hold the aggregate lock to
// commit: wait them out first, then take the cursor's snapshot, so that every
// change it misses is in the log.
void wait_for_writers_before_the_job(int32 id) {
  pg_guard([&] {
    lock_aggregate(id, AccessExclusiveLock);
    unlock_aggregate(id, AccessExclusiveLock);
  });
}

void open_scan_cursor(const AggregateDef &def, CompiledAggregate &agg, const std::string &name, Portal &portal) {
  wait_for_writers_before_the_job(def.id);
  std::string sql = agg.scan_query(true);
  pg_guard([&] {
    PushActiveSnapshot(GetLatestSnapshot());  // taken after the wait (the step's own snapshot is older)
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    SPIParseOpenOptions options;
    memset(&options, 0, sizeof options);
    options.cursorOptions = CURSOR_OPT_HOLD | CURSOR_OPT_NO_SCROLL;
    options.read_only = true;  // runs with the active snapshot pushed above
    portal = SPI_cursor_parse_open(name.c_str(), sql.c_str(), &options);
    SPI_finish();
    PopActiveSnapshot();
  });
}

// A job with the default batch size that has written nothing yet, over a
// table of at most this many rows whose entries sort in memory, builds its
// whole generation in its first step (bulk builders, as aggr_create(build
// => 'now'), instead of batches through a held ordered cursor): the step
// stays short (~0.3 s per million rows), and the background build costs
// about what the foreground one does. A batch size asked for explicitly is
// kept: batches it is.
constexpr std::uint64_t kWholeBuildRows = 2000000;

bool target_has_trees(const AggregateDef &def, int32 target) {
  bool any = false;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation trees = table_open(r.trees, AccessShareLock);
    any = !list_tree_rows(trees, r, def.id, target, GetLatestSnapshot()).empty();
    table_close(trees, AccessShareLock);
  });
  return any;
}

// The scan phase in one step, under the cursor's snapshot rule (writers
// that flushed before the job was announced are waited out first); false,
// having written nothing, when the entries do not sort in memory.
bool build_whole_in_memory(const AggregateDef &def, CompiledAggregate &agg, JobRow &job) {
  if (job.batch_size != kDefaultJobBatchRows || job.has_last || job.rows_done != 0 || !sorts_in_memory(agg) ||
      target_has_trees(def, job.target))
    return false;
  wait_for_writers_before_the_job(def.id);
  pg_guard([] { PushActiveSnapshot(GetLatestSnapshot()); });  // taken after the wait
  std::uint64_t rows = 0;
  CompiledAggregate::RowEntry last;
  bool built = bulk_build(def, agg, job.target, job.kind == "rebuild" ? "aggr_rebuild" : "aggr_backfill", [&](const RowVisitor &visit) {
    return visit_sorted(agg, visit, kWholeBuildRows, false);
  }, rows, &last);
  pg_guard([] { PopActiveSnapshot(); });
  if (!built) return false;
  job.rows_done = static_cast<int64>(rows);
  job.has_last = rows > 0;
  if (rows > 0) job.last_entry = encode_position(last.ns, last.key);
  job.phase = "replay";
  job.rows_total = job.rows_done;
  return true;
}

void scan_step(const AggregateDef &def, JobRow &job) {
  CompiledAggregate &agg = compiled_aggregate(def);
  EntryOrdering order(agg.layout());
  std::string name = portal_name(def.id);
  Portal portal = nullptr;
  pg_guard([&] { portal = GetPortalByName(name.c_str()); });
  if (!portal && build_whole_in_memory(def, agg, job)) {
    store_job(job);
    return;
  }
  auto known = cursor_positions().find(def.id);
  std::string committed = job.has_last ? job.last_entry : std::string();
  if (portal && (known == cursor_positions().end() || known->second != committed)) {
    pg_guard([&] { SPI_cursor_close(portal); });
    portal = nullptr;
  }
  bool reopened = false;
  if (!portal) {
    open_scan_cursor(def, agg, name, portal);
    reopened = true;
  }
  std::string last_ns, last_key;
  // A cursor opened afresh (after a restart, an aborted step or a cancel)
  // starts over: skip the rows up to last_entry, which are already written.
  bool resuming = reopened && job.has_last;
  if (resuming) decode_position(job.last_entry, last_ns, last_key);
  uint64 fetched = 0;
  // The fetch moves the held cursor past the committed progress: until this
  // step has written its batch, the cursor's position is unknown, so that a
  // step aborted after the fetch (a cancel, a key too large, a lock timeout)
  // reopens it instead of going on past the rows it lost.
  cursor_positions().erase(def.id);
  pg_guard([&] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    SPI_cursor_fetch(portal, true, job.batch_size);
    fetched = SPI_processed;
    if (fetched > 0) agg.check_scan_types(SPI_tuptable->tupdesc);
  });
  std::vector<Op> ops;
  std::string ops_ns;
  CompiledAggregate::RowEntry entry;
  for (uint64 i = 0; i < fetched; ++i) {
    pg_guard([&] { agg.encode_scan_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, entry); });
    // After a restart the cursor starts over: skip what is already written.
    if (resuming && at_or_before(agg, order, entry, last_ns, last_key)) continue;
    resuming = false;  // rows arrive in order: the rest are all new
    agg.check_entry_size(entry.key);
    if (entry.ns != ops_ns) append_batch(agg, order, job.target, ops_ns, ops);
    ops_ns = entry.ns;
    ops.push_back(Op{entry.key, entry.value, Op::Action::Upsert, false});
    ++job.rows_done;
    job.has_last = true;
    job.last_entry = encode_position(entry.ns, entry.key);
  }
  append_batch(agg, order, job.target, ops_ns, ops);
  cursor_positions()[def.id] = job.has_last ? job.last_entry : std::string();
  pg_guard([&] {
    SPI_freetuptable(SPI_tuptable);
    if (fetched < static_cast<uint64>(job.batch_size)) SPI_cursor_close(portal);
    SPI_finish();
  });
  if (fetched < static_cast<uint64>(job.batch_size)) {
    job.phase = "replay";
    job.rows_total = job.rows_done;
  }
  store_job(job);
}

struct LogEntry {
  ItemPointerData tid;
  int64 seq;
  char op;
  PendingOp pending;
};

// Reads the logged changes of committed writers, in seq order (at most
// `limit`; 0: all), skipping rows at or below `floor` (an earlier job's).
// A writer still open may hold lower sequence numbers than what is read here:
// its rows become visible, and are replayed, by a later step. Only the order
// of changes to one row matters, and those commit in sequence order (the
// row lock orders them).
std::vector<LogEntry> read_log(int32 aggr_id, int64 floor, int64 limit) {
  List *tuples = NIL;
  TupleDesc desc = nullptr;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.log, AccessShareLock);
    desc = CreateTupleDescCopy(RelationGetDescr(rel));
    ScanKeyData keys[2];
    ScanKeyInit(&keys[0], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggr_id));
    ScanKeyInit(&keys[1], 1, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(floor));
    Relation idx = index_open(r.log_pkey, AccessShareLock);
    SysScanDesc scan = systable_beginscan_ordered(rel, idx, GetLatestSnapshot(), 2, keys);
    HeapTuple tup;
    int64 n = 0;
    while ((limit == 0 || n < limit) && HeapTupleIsValid(tup = systable_getnext_ordered(scan, ForwardScanDirection))) {
      tuples = lappend(tuples, heap_copytuple(tup));
      ++n;
    }
    systable_endscan_ordered(scan);
    index_close(idx, AccessShareLock);
    table_close(rel, AccessShareLock);
  });
  std::vector<LogEntry> out;
  ListCell *lc;
  foreach (lc, tuples) {
    LogEntry e;
    pg_guard([&] {
      HeapTuple tup = (HeapTuple)lfirst(lc);
      Datum v[6];
      bool n[6];
      heap_deform_tuple(tup, desc, v, n);
      e.tid = tup->t_self;
      e.seq = DatumGetInt64(v[0]);
      e.pending.aggr_id = aggr_id;
      text *ns = DatumGetTextPP(v[2]), *key = DatumGetTextPP(v[3]);
      e.pending.ns.assign(VARDATA_ANY(ns), VARSIZE_ANY_EXHDR(ns));
      e.pending.key.assign(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
      e.pending.value = sum_from_bytea(DatumGetByteaPP(v[4]));
      e.op = DatumGetChar(v[5]);
      e.pending.insert = e.op == 'i';
    });
    out.push_back(std::move(e));
  }
  return out;
}

// Deletes replayed log rows, in the transaction that applied them: a row is
// either still in the log or in the new generation, never both or neither.
void delete_log_rows(const std::vector<LogEntry> &log) {
  if (log.empty()) return;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.log, RowExclusiveLock);
    for (const LogEntry &e : log) simple_heap_delete(rel, const_cast<ItemPointer>(&e.tid));
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
}

// One op per entry, the last logged change deciding. Not net_ops: the scan
// may already hold an entry that the log inserts and then deletes (the scan
// snapshot saw it in between), so "inserted then deleted" must delete.
std::vector<Op> last_change_per_entry(const std::vector<const PendingOp *> &run, const Ordering &order) {
  std::vector<Op> out;
  std::size_t i = 0;
  while (i < run.size()) {
    std::size_t j = i + 1;
    while (j < run.size() && order.compare(run[i]->key, run[j]->key) == 0) ++j;
    const PendingOp &last = *run[j - 1];
    out.push_back(Op{last.key, last.value, last.insert ? Op::Action::Upsert : Op::Action::Remove, false});
    i = j;
  }
  return out;
}

// Applies logged changes in order; a TRUNCATE marker empties the generation.
// Every change is applied as an idempotent upsert or delete, so a change the
// scan's snapshot already saw is harmless.
void replay(const AggregateDef &def, int32 generation, const std::vector<LogEntry> &log) {
  CompiledAggregate &agg = compiled_aggregate(def);
  EntryOrdering order(agg.layout());
  std::vector<const PendingOp *> run;
  auto apply_run = [&] {
    std::stable_sort(run.begin(), run.end(), [&](const PendingOp *a, const PendingOp *b) {
      if (a->ns != b->ns) return a->ns < b->ns;  // grouping only
      return order.compare(a->key, b->key) < 0;
    });
    OpenTrees o = open_trees(RowExclusiveLock);
    std::size_t i = 0;
    while (i < run.size()) {
      std::size_t j = i;
      std::vector<const PendingOp *> ns_run;
      while (j < run.size() && run[j]->ns == run[i]->ns) ns_run.push_back(run[j++]);
      std::vector<Op> ops = last_change_per_entry(ns_run, order);
      apply_to_tree(o, agg, order, generation, run[i]->ns, ops, false);
      i = j;
    }
    close_trees(o, RowExclusiveLock);
    run.clear();
    pg_guard([] { CommandCounterIncrement(); });  // a TRUNCATE marker next drops what this wrote
  };
  for (const LogEntry &e : log) {
    if (e.op == 't') {
      apply_run();
      clear_trees(def, generation, nullptr);
    } else {
      run.push_back(&e.pending);
    }
  }
  apply_run();
}

// The swap replays what is left of the log while writers wait: keep it short.
constexpr std::size_t kSwapLogEntries = 1000;

void replay_step(const AggregateDef &def, JobRow &job) {
  std::vector<LogEntry> log = read_log(def.id, job.log_floor, job.batch_size);
  bool caught_up = log.size() < std::min<std::size_t>(kSwapLogEntries, static_cast<std::size_t>(job.batch_size));
  if (caught_up) {
    // Swap: with the aggregate lock no writer holds flushed, uncommitted
    // changes (they keep the lock to commit), so the log is final; the next
    // writers see the new generation.
    int32 id = def.id;
    pg_guard([&] { lock_aggregate(id, AccessExclusiveLock); });
    log = read_log(def.id, job.log_floor, 0);
  }
  replay(def, job.target, log);
  delete_log_rows(log);
  if (caught_up) {
    delete_log(def.id, job.log_floor);  // an earlier job's rows, committed since
    update_aggregate_generations(def.id, "ready", job.target, 0);
    job.phase = "cleanup";
  }
  store_job(job);
}

void cleanup_step(const AggregateDef &def, JobRow &job) {
  drop_generations_except(def, def.generation, def.build_generation);
  delete_job(job);
}

bool worker_alive(int32 aggr_id) { return held_by_live_worker(job_lock_tag(aggr_id, kWorkerLockClass)); }

// Live job workers in the whole cluster (each holds its worker lock).
int live_job_workers() {
  int n = 0;
  pg_guard([&] {
    LockData *locks = GetLockStatusData();
    for (int i = 0; i < locks->nelements; ++i) {
      const LockInstanceData &l = locks->locks[i];
      if (l.locktag.locktag_type == LOCKTAG_ADVISORY && l.locktag.locktag_field4 == kWorkerLockClass &&
          (l.holdMask & LOCKBIT_ON(ExclusiveLock)))
        ++n;
    }
  });
  return n;
}

// The worker connects as the bootstrap superuser and runs each step as the
// table's owner of that moment (job_step_as_owner): never as the role that
// started or resumed the job, nor as a reader whose read relaunched it.
// At most aggr_ext.max_job_workers run at once (a soft bound: two launches
// at the same instant may both pass): a job beyond it waits, and a worker
// that finishes its job takes a waiting one (run_waiting_jobs).
// `name`: the aggregate's, to tell the user a job waits (nullptr: quietly).
void launch_worker(int32 aggr_id, const char *name) {
  if (live_job_workers() >= max_job_workers) {
    int limit = max_job_workers;
    pg_guard([&] {
      ereport(name ? NOTICE : DEBUG1,
              (errmsg("the job of aggregate \"%s\" waits: %d aggr_ext job workers run (aggr_ext.max_job_workers)",
                      name ? name : "?", limit),
               errhint("It starts when one of them finishes.")));
    });
    return;
  }
  // The worker waits for the launching transaction, which writes the job row.
  uint32 ids[2] = {MyDatabaseId, GetTopTransactionIdIfAny()};
  if (!launch_worker_process("aggr_ext job for aggregate " + std::to_string(aggr_id), "aggr_ext job",
                             "aggr_ext_job_main", Int32GetDatum(aggr_id), ids, sizeof ids))
    pg_guard([&] {
      ereport(WARNING, (errmsg("no background worker slot is free for the aggr_ext job of aggregate %d", aggr_id),
                        errhint("Raise max_worker_processes, or drive the job with SELECT aggr_job_step(name).")));
    });
}
}  // namespace

// ---------------------------------------------------------------- public

JobRow load_job(int32 aggr_id) {
  JobRow j;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.jobs, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, kAggr, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggr_id));
    HeapTuple tup = fetch_row(rel, r.jobs_pkey, &key, 1, GetLatestSnapshot());
    if (tup) j = job_from_tuple(rel, tup);
    table_close(rel, AccessShareLock);
  });
  return j;
}

void start_job(const AggregateDef &def, const std::string &kind, int32 batch_size, bool background) {
  if (batch_size < 1) throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "batch_size must be at least 1");
  pg_guard([&] {
    LOCKTAG tag = job_lock_tag(def.id, kStepLockClass);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
  });
  JobRow job = load_job(def.id);
  if (job.exists && job.phase == "cleanup") {  // swapped already: finish it here
    cleanup_step(def, job);
    job = JobRow{};
  }
  if (job.exists && !job.cancelled)
    throw UserError(ERRCODE_OBJECT_IN_USE,
                    "a " + job.kind + " of aggregate \"" + def.name + "\" is already running (" + job_progress_text(job) + ")",
                    "Follow it with SELECT * FROM aggr_status(" + sql_literal(def.name) + "), or stop it with aggr_backfill_cancel.");
  if (kind == "rebuild" && def.state != "ready")
    throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "aggregate \"" + def.name + "\" is not ready (state: " + def.state + "): nothing to rebuild beside",
                    "Use CALL aggr_backfill(" + sql_literal(def.name) + ").");
  if (job.exists && job.kind == kind) {  // resume a cancelled job where it stopped
    job.cancelled = false;
    job.error.clear();
    job.batch_size = batch_size;
    job.background = background;
  } else {
    if (job.exists) {  // a cancelled backfill superseded: start over
      delete_job(job);
      delete_log(def.id, INT64_MAX);
    }
    job = JobRow{};
    job.aggr_id = def.id;
    job.kind = kind;
    job.phase = "scan";
    job.target = std::max(def.generation, def.build_generation) + 1;
    job.batch_size = batch_size;
    job.background = background;
    job.rows_total = estimate_rows(def.source);
    pg_guard([&] {
      job.role = GetUserId();  // who started it, for the record only: steps run as the table owner
      job.started = GetCurrentTimestamp();
      // Writers log for this job only after they see its announcement, which
      // commits after this number is drawn: every row of theirs is above it.
      Oid log_seq = get_relname_relid("log_seq_seq", get_namespace_oid("aggr_internal", false));
      job.log_floor = nextval_internal(log_seq, false);
    });
    // New writers log their changes from here on; backfill refuses reads.
    update_aggregate_generations(def.id, kind == "backfill" ? "building" : "ready", def.generation, job.target);
    drop_generations_except(def, def.generation, 0);  // leftovers of an abandoned build
  }
  store_job(job);
  if (background) launch_worker(def.id, def.name.c_str());
}

bool job_step(int32 aggr_id) {
  pg_guard([&] {
    LOCKTAG tag = job_lock_tag(aggr_id, kStepLockClass);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
  });
  JobRow job = load_job(aggr_id);
  if (!job.exists || job.cancelled || !job.error.empty()) return false;
  AggregateDef def;
  if (!load_aggregate_by_id(aggr_id, def)) return false;
  if (job.phase == "scan")
    scan_step(def, job);
  else if (job.phase == "replay")
    replay_step(def, job);
  else {
    cleanup_step(def, job);
    return false;
  }
  return true;
}

void cancel_job(const AggregateDef &def) {
  pg_guard([&] {
    LOCKTAG tag = job_lock_tag(def.id, kStepLockClass);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
  });
  JobRow job = load_job(def.id);
  if (!job.exists || job.cancelled)
    throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "no backfill or rebuild of aggregate \"" + def.name + "\" is running");
  if (job.phase == "cleanup") return;  // already swapped: nothing left to stop
  if (job.kind == "rebuild") {  // the live generation is intact: forget the copy
    update_aggregate_generations(def.id, def.state.c_str(), def.generation, 0);
    delete_log(def.id, INT64_MAX);
    delete_job(job);
    drop_generations_except(def, def.generation, 0);
    return;
  }
  job.cancelled = true;
  store_job(job);
}

void lock_job_steps(int32 aggr_id) {
  pg_guard([&] {
    LOCKTAG tag = job_lock_tag(aggr_id, kStepLockClass);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
  });
}

void discard_job(const AggregateDef &def) {
  // After the step in progress, if any: it updates the job row, and a row
  // version read before it commits can no longer be deleted.
  lock_job_steps(def.id);
  JobRow job = load_job(def.id);
  if (job.exists) delete_job(job);
  delete_log(def.id, INT64_MAX);
}

void ensure_job_worker(int32 aggr_id) {
  bool standby = false;
  pg_guard([&] { standby = RecoveryInProgress(); });
  if (standby) return;  // the primary runs jobs; a standby only replays them
  JobRow job = load_job(aggr_id);
  if (!job.exists || !job.background || job.cancelled || !job.error.empty()) return;
  // A job updated in the last seconds has a worker (or one is starting).
  TimestampTz now = 0;
  pg_guard([&] { now = GetCurrentTimestamp(); });
  if (now - job.updated < 5 * USECS_PER_SEC) return;
  if (!worker_alive(aggr_id)) launch_worker(aggr_id, nullptr);
}

std::string job_progress_text(const JobRow &job) {
  if (!job.exists) return "no job";
  std::string s = job.kind + " " + (job.cancelled ? "cancelled in " : "") + job.phase;
  if (job.phase == "scan") {
    int64 total = std::max(job.rows_total, job.rows_done);
    int pct = total > 0 ? static_cast<int>(100.0 * static_cast<double>(job.rows_done) / static_cast<double>(total)) : 0;
    s += ", " + std::to_string(job.rows_done) + " of ~" + std::to_string(total) + " rows (" + std::to_string(pct) + "%)";
  }
  if (!job.error.empty()) s += ", failed: " + job.error;
  return s;
}

}  // namespace aggr::pg

// ---------------------------------------------------------------- worker

namespace aggr::pg {
namespace {
// The scan step keeps its key-ordered cursor WITH HOLD across steps. Such a
// cursor's remaining rows are computed at commit (PreCommit_Portals), which
// would run the aggregate's expressions as whoever commits: the worker's
// bootstrap superuser, or a superuser calling aggr_job_step. (PostgreSQL
// forbids WITH HOLD cursors in a security-restricted operation for this
// reason.) So the cursor is materialized here, still as the table owner, as
// portalmem.c's HoldPortal does at commit; the commit then finds nothing to
// do. An abort later in this transaction keeps the held cursor; scan_step
// already reopens a cursor that is ahead of the job's committed progress.
void hold_job_cursor(int32 aggr_id) {
  std::string name = portal_name(aggr_id);
  pg_guard([&] {
    Portal portal = GetPortalByName(name.c_str());
    if (!portal || !(portal->cursorOptions & CURSOR_OPT_HOLD) || portal->createSubid == InvalidSubTransactionId ||
        portal->status != PORTAL_READY)
      return;  // none, or already held by an earlier transaction
    PortalCreateHoldStore(portal);
    PersistHoldablePortal(portal);
    if (portal->cplan) {  // none for SPI's unsaved plans; released as HoldPortal would
      ReleaseCachedPlan(portal->cplan, NULL);
      portal->cplan = NULL;
      portal->stmts = NIL;
    }
    portal->resowner = NULL;
    portal->createSubid = InvalidSubTransactionId;
    portal->activeSubid = InvalidSubTransactionId;
    portal->createLevel = 0;
  });
}
}  // namespace

bool job_step_as_owner(int32 aggr_id) {
  bool more = false;
  run_as_aggregate_owner(aggr_id, [&] {
    more = job_step(aggr_id);
    hold_job_cursor(aggr_id);
  });
  return more;
}

namespace {
// One step in its own transaction; false when the job is over. An error
// aborts the step (logged in full) and stops the job: the error is recorded
// in its row (aggr_status shows it) in a transaction of its own, which
// commits only if recording succeeded.
bool run_step_transaction(int32 aggr_id) {
  bool more = false;
  std::string what = "aggr_ext job of aggregate " + std::to_string(aggr_id);
  char *message = run_in_transaction(what.c_str(), [&] { more = job_step_as_owner(aggr_id); });
  if (!message) return more;
  what += ": recording its error";
  (void)run_in_transaction(what.c_str(), [&] {
    JobRow job = load_job(aggr_id);
    if (job.exists) {
      job.error = message;
      store_job(job);
    }
  });
  pfree(message);
  return false;
}

// Runs one job's steps until it is over.
void run_job(int32 aggr_id) {
  while (run_step_transaction(aggr_id)) {
    CHECK_FOR_INTERRUPTS();
    if (job_delay_ms > 0) pg_usleep(job_delay_ms * 1000L);  // throttle (aggr_ext.job_delay)
  }
}

// The oldest background job of this database that no worker runs, claimed
// for this worker (its worker lock taken); 0 when there is none.
int32 claim_waiting_job() {
  std::vector<int32> waiting;
  (void)run_in_transaction("listing waiting aggr_ext jobs", [&] {
    pg_guard([&] {
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
      if (SPI_execute("SELECT aggr_id FROM aggr_internal.jobs WHERE background AND NOT cancelled AND error IS NULL "
                      "ORDER BY started",
                      true, 0) != SPI_OK_SELECT)
        elog(ERROR, "could not list the waiting jobs");
    });
    for (uint64 i = 0; i < SPI_processed; ++i) {
      bool isnull;
      int32 id = 0;
      pg_guard([&] { id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)); });
      waiting.push_back(id);
    }
    pg_guard([] { SPI_finish(); });
  });
  for (int32 id : waiting)
    if (claim_for_session(job_lock_tag(id, kWorkerLockClass))) return id;
  return 0;
}

// Whether the job row exists; false also when it could not be read (logged).
bool job_row_exists(int32 aggr_id) {
  bool exists = false;
  if (run_in_transaction("reading an aggr_ext job", [&] { exists = load_job(aggr_id).exists; })) return false;
  return exists;
}
}  // namespace
}  // namespace aggr::pg

extern "C" {
PGDLLEXPORT void aggr_ext_job_main(Datum arg);
}

void aggr_ext_job_main(Datum arg) {
  int32 aggr_id = DatumGetInt32(arg);
  uint32 ids[2];
  memcpy(ids, MyBgworkerEntry->bgw_extra, sizeof ids);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  // As the bootstrap superuser (a NOLOGIN owner could not connect); each
  // step switches to the table owner (job_step_as_owner).
  BackgroundWorkerInitializeConnectionByOid(ids[0], InvalidOid, 0);
  // Names the aggregate in pg_stat_activity (the backend_type alone does not).
  pgstat_report_appname(psprintf("aggr_ext job %d", aggr_id));
  // Only one worker per job: this session lock says a live one runs it.
  if (!aggr::pg::claim_for_session(aggr::pg::job_lock_tag(aggr_id, aggr::pg::kWorkerLockClass))) proc_exit(0);
  // The launching transaction may not have committed the job row yet.
  TransactionId launcher = ids[1];
  if (TransactionIdIsValid(launcher)) {
    StartTransactionCommand();
    XactLockTableWait(launcher, NULL, NULL, XLTW_None);
    CommitTransactionCommand();
  }
  for (;;) {
    if (aggr::pg::job_row_exists(aggr_id)) aggr::pg::run_job(aggr_id);
    aggr::pg::release_for_session(aggr::pg::job_lock_tag(aggr_id, aggr::pg::kWorkerLockClass));
    // Jobs that waited for a worker (aggr_ext.max_job_workers): take one.
    aggr_id = aggr::pg::claim_waiting_job();
    if (aggr_id == 0) break;
    pgstat_report_appname(psprintf("aggr_ext job %d", aggr_id));
  }
  proc_exit(0);
}
