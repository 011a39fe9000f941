#include "maintenance.hpp"

#include "deltas.hpp"
#include "sorted_scan.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>

namespace aggr::pg {

int write_buffer_kb = 64 * 1024;

namespace {
// Flushed ops kept for reads as of an earlier command (see OpBuffer).
constexpr std::size_t kJournalBytes = 16u << 20;

std::size_t op_bytes(const PendingOp &op) { return op.key.size() + op.ns.size() + sizeof(PendingOp); }

// The tree row as the writer must see it: the newest committed version.
// Under REPEATABLE READ / SERIALIZABLE a version the transaction's snapshot
// cannot see means a concurrent writer got there first.
TreeRow load_tree_for_write(const OpenTrees &o, const AggregateDef &def, int32 generation, const std::string &ns) {
  TreeRow latest, mine;
  bool conflict = false;
  pg_guard([&] {
    lock_tree(def.id, generation, ns);
    latest = load_tree_row(o.trees, o.r, def.id, generation, ns, GetLatestSnapshot());
    if (IsolationUsesXactSnapshot()) {
      PushCopiedSnapshot(GetTransactionSnapshot());
      UpdateActiveSnapshotCommandId();
      mine = load_tree_row(o.trees, o.r, def.id, generation, ns, GetActiveSnapshot());
      PopActiveSnapshot();
      conflict = latest.exists != mine.exists || (latest.exists && !ItemPointerEquals(&latest.tid, &mine.tid));
    }
  });
  if (conflict)
    throw UserError(ERRCODE_T_R_SERIALIZATION_FAILURE,
                    "could not serialize access due to concurrent update of aggregate \"" + def.name + "\"",
                    "The transaction might succeed if retried.");
  return latest;
}

// Under REPEATABLE READ / SERIALIZABLE the transaction reads the definition
// its snapshot sees: a rebuild's swap or a write-mode switch committed since
// would send this flush where the transaction's own reads never look (a new
// generation, deltas its direct reads ignore, or the reverse), and it would
// not see its own changes. A direct write already fails there (the new
// tree's row is a concurrent update); a deferred one must too.
void check_definition_unchanged_for_snapshot(const AggregateDef &latest) {
  bool snapshot_isolation = false;
  pg_guard([&] { snapshot_isolation = IsolationUsesXactSnapshot(); });
  if (!snapshot_isolation) return;
  AggregateDef seen;
  Snapshot snap = nullptr;
  pg_guard([&] {
    PushCopiedSnapshot(GetTransactionSnapshot());
    UpdateActiveSnapshotCommandId();
    snap = GetActiveSnapshot();
  });
  bool visible = false;
  try {
    visible = load_aggregate_by_id(latest.id, seen, snap);
  } catch (...) {
    pg_guard([] { PopActiveSnapshot(); });
    throw;
  }
  pg_guard([] { PopActiveSnapshot(); });
  // Created after the snapshot: its reads do not see it at all.
  if (visible && (seen.generation != latest.generation || seen.deferred != latest.deferred))
    throw UserError(ERRCODE_T_R_SERIALIZATION_FAILURE,
                    "could not serialize access due to concurrent rebuild or write-mode change of aggregate \"" +
                        latest.name + "\"",
                    "The transaction might succeed if retried.");
}
}  // namespace

OpenTrees open_trees(LOCKMODE mode) {
  OpenTrees o;
  pg_guard([&] {
    o.r = internal_relations();
    o.trees = table_open(o.r.trees, mode);
    o.nodes = table_open(o.r.nodes, mode);
  });
  return o;
}

void close_trees(OpenTrees &o, LOCKMODE mode) {
  pg_guard([&] {
    table_close(o.nodes, mode);
    table_close(o.trees, mode);
  });
}

// Collapses the ops of one tree (sorted by key, then time) into one
// idempotent op per entry: the last change decides the action, the first
// says whether the entry should have been there before.
std::vector<Op> net_ops(const std::vector<const PendingOp *> &run, const Ordering &order) {
  std::vector<Op> out;
  std::size_t i = 0;
  while (i < run.size()) {
    std::size_t j = i + 1;
    while (j < run.size() && order.compare(run[i]->key, run[j]->key) == 0) ++j;
    const PendingOp &first = *run[i], &last = *run[j - 1];
    if (!(first.insert && !last.insert)) {  // inserted then deleted: nothing to do
      Op op;
      op.key = last.key;
      op.value = last.value;
      op.action = last.insert ? Op::Action::Upsert : Op::Action::Remove;
      op.expect_present = !first.insert;
      out.push_back(std::move(op));
    }
    i = j;
  }
  return out;
}

// The same run as signed deltas for the deferred write path: -1 for the
// entry as it was before the transaction, +1 for it as it is now.
std::vector<Delta> signed_deltas(const std::vector<const PendingOp *> &run, const Ordering &order) {
  std::vector<Delta> out;
  std::size_t i = 0;
  while (i < run.size()) {
    std::size_t j = i + 1;
    while (j < run.size() && order.compare(run[i]->key, run[j]->key) == 0) ++j;
    const PendingOp &first = *run[i], &last = *run[j - 1];
    bool existed = !first.insert, exists = last.insert;
    if (!(existed && exists && first.value.same_as(last.value))) {
      if (existed) out.push_back(Delta{first.key, first.value, -1});
      if (exists) out.push_back(Delta{last.key, last.value, +1});
    }
    i = j;
  }
  return out;
}

namespace {
// Per tree this transaction wrote: the inserting transaction of the first
// version of another transaction it wrote on top of. Under READ COMMITTED
// that version may have committed after a statement's snapshot (the write
// waited for its writer's tree lock); a read in that statement would then see
// this transaction's tree row but not the other's nodes.
std::map<std::tuple<int32, int32, std::string>, TransactionId> &foreign_bases() {
  static std::map<std::tuple<int32, int32, std::string>, TransactionId> bases;
  return bases;
}

void note_tree_base(int32 aggr_id, int32 generation, const std::string &ns, const TreeRow &base) {
  if (!base.exists || !TransactionIdIsNormal(base.xmin)) return;
  bool mine = false;
  pg_guard([&] { mine = TransactionIdIsCurrentTransactionId(base.xmin); });
  if (!mine) foreign_bases().emplace(std::make_tuple(aggr_id, generation, ns), base.xmin);  // keeps the first
}
}  // namespace

TransactionId foreign_tree_base(int32 aggr_id, int32 generation, const std::string &ns) {
  auto it = foreign_bases().find(std::make_tuple(aggr_id, generation, ns));
  return it == foreign_bases().end() ? InvalidTransactionId : it->second;
}

ApplyStats apply_to_tree(const OpenTrees &o, CompiledAggregate &agg, const Ordering &order, int32 generation,
                         const std::string &ns, const std::vector<Op> &ops, bool count_drift) {
  TreeRow row = load_tree_for_write(o, agg.def(), generation, ns);
  note_tree_base(agg.def().id, generation, ns, row);
  if (!row.exists) pg_guard([&] { row.tree_id = nextval_internal(o.r.trees_seq, false); });
  row.generation = generation;
  pg_guard([&] { PushCopiedSnapshot(GetLatestSnapshot()); });
  ApplyStats total;
  // In chunks: the nodes a chunk changes stay decoded until it is written
  // back, and a bulk load's flush can touch every leaf of a large tree.
  constexpr std::size_t kChunk = 4096;
  for (std::size_t begin = 0; begin < ops.size(); begin += kChunk) {
    std::vector<Op> chunk(ops.begin() + static_cast<long>(begin),
                          ops.begin() + static_cast<long>(std::min(ops.size(), begin + kChunk)));
    Snapshot snap = nullptr;
    pg_guard([&] { snap = GetActiveSnapshot(); });
    PgNodeStore store(o.nodes, o.r.nodes_pkey, row, agg.tree_config(), snap, false);
    Tree tree(store, order, agg.tree_config(), row.meta);
    ApplyStats stats = naming_corruption(agg.def().name, agg.def().state == "ready", [&] { return tree.apply(chunk); });
    store.write_back();
    row.meta = tree.meta();
    total.inserted += stats.inserted;
    total.replaced += stats.replaced;
    total.removed += stats.removed;
    total.drift += stats.drift;
    if (begin + kChunk < ops.size()) pg_guard([] {  // the next chunk reads what this one wrote
        CommandCounterIncrement();
        UpdateActiveSnapshotCommandId();
      });
  }
  if (count_drift) row.drift += static_cast<int64>(total.drift);
  pg_guard([&] {
    PopActiveSnapshot();
    store_tree_row(o.trees, o.r, row);
  });
  return total;
}

namespace {
// Appends rows (seq, aggr_id, ns, key, sum, op) to the job log.
void append_log_rows(int32 aggr_id, const std::string &ns, const std::vector<Op> &ops, char fixed_op) {
  pg_guard([&] {
    Relations r = internal_relations();
    Relation log = table_open(r.log, RowExclusiveLock);
    Oid seq = get_relname_relid("log_seq_seq", get_namespace_oid("aggr_internal", false));
    for (const Op &op : ops) {
      Datum v[6];
      bool n[6] = {};
      v[0] = Int64GetDatum(nextval_internal(seq, false));
      v[1] = Int32GetDatum(aggr_id);
      v[2] = PointerGetDatum(cstring_to_text_with_len(ns.data(), static_cast<int>(ns.size())));
      v[3] = PointerGetDatum(cstring_to_text_with_len(op.key.data(), static_cast<int>(op.key.size())));
      v[4] = PointerGetDatum(sum_to_bytea(op.value));
      v[5] = CharGetDatum(fixed_op ? fixed_op : op.action == Op::Action::Upsert ? 'i' : 'd');
      HeapTuple tup = heap_form_tuple(RelationGetDescr(log), v, n);
      insert_row(log, tup);
      heap_freetuple(tup);
    }
    table_close(log, RowExclusiveLock);
  });
}
}  // namespace

void append_log(int32 aggr_id, const std::string &ns, const std::vector<Op> &ops) { append_log_rows(aggr_id, ns, ops, 0); }

void append_truncate_marker(int32 aggr_id) { append_log_rows(aggr_id, std::string(), std::vector<Op>(1), 't'); }

namespace {
// A deferred writer whose tree has a backlog beyond kMergeBacklog folds it
// in itself (holding the tree lock to commit, as a direct writer would),
// so that writers cannot outrun the merger without bound. Not under
// REPEATABLE READ / SERIALIZABLE: there a merge could fail the writer.
void backpressure(const AggregateDef &def, const std::string &ns, int64 last_seq, std::size_t appended) {
  // Checked once per 1,024 deltas this backend appends: the check walks
  // the index past deltas merged but not yet vacuumed away.
  static std::size_t since_check = 0;
  since_check += appended;
  if (since_check < 1024) return;
  since_check = 0;
  bool snapshot_isolation = false;
  pg_guard([&] { snapshot_isolation = IsolationUsesXactSnapshot(); });
  if (snapshot_isolation) return;
  int64 oldest = oldest_pending_seq(def.id, def.generation, ns);
  if (oldest >= 0 && last_seq - oldest > kMergeBacklog) (void)merge_deltas(def.id, &ns);
}

// Applies one aggregate's ops, a namespace's run at a time: to the live
// trees, and to the job's log when a backfill or rebuild is filling a new
// generation. Several runs of one namespace may follow each other (a merge
// of spilled runs hands them over in bounded batches, whole key groups each,
// with a CommandCounterIncrement between).
class AggregateWriter {
 public:
  AggregateWriter(const AggregateDef &def, CompiledAggregate &agg)
      : def_(def), agg_(agg), order_(agg.layout()), live_(def.generation != 0 && def.state != "building"),
        o_(open_trees(RowExclusiveLock)) {}

  const Ordering &order() const { return order_; }

  // `run`: ops of namespace `ns`, sorted by key, then time.
  void apply(const std::string &ns, const std::vector<const PendingOp *> &run) {
    std::vector<Op> net = net_ops(run, order_);
    if (net.empty()) return;
    if (def_.build_generation != 0) append_log(def_.id, ns, net);
    if (live_ && def_.deferred) {
      std::vector<Delta> deltas = signed_deltas(run, order_);
      int64 last = append_deltas(def_.id, def_.generation, ns, deltas);
      appended_ = appended_ || !deltas.empty();
      if (!deltas.empty()) backpressure(def_, ns, last, deltas.size());
    } else if (live_) {
      apply_to_tree(o_, agg_, order_, def_.generation, ns, net, true);
    }
  }

  void finish() {
    close_trees(o_, RowExclusiveLock);
    if (appended_) ensure_merger();
  }

 private:
  const AggregateDef &def_;
  CompiledAggregate &agg_;
  EntryOrdering order_;
  bool live_;
  OpenTrees o_;
  bool appended_ = false;
};

void flush_aggregate(const AggregateDef &def, std::vector<const PendingOp *> &ops) {
  CompiledAggregate &agg = compiled_aggregate(def);
  if (agg.stale()) return;  // its entries can no longer be compared; reads refuse it
  check_definition_unchanged_for_snapshot(def);
  AggregateWriter writer(def, agg);
  const Ordering &order = writer.order();
  std::stable_sort(ops.begin(), ops.end(), [&](const PendingOp *a, const PendingOp *b) {
    if (a->ns != b->ns) return a->ns < b->ns;
    return order.compare(a->key, b->key) < 0;
  });
  std::size_t i = 0;
  while (i < ops.size()) {
    std::size_t j = i;
    std::vector<const PendingOp *> run;
    while (j < ops.size() && ops[j]->ns == ops[i]->ns) run.push_back(ops[j++]);
    writer.apply(ops[i]->ns, run);
    i = j;
  }
  writer.finish();
}

// The definition an aggregate's ops are applied under, or nullptr when they
// are to be dropped (the aggregate was dropped meanwhile, or its entries
// can no longer be compared: reads refuse it). Takes the aggregate lock
// first: a job's swap holds it exclusively, so the definition read next is
// the one in force until this transaction ends.
CompiledAggregate *aggregate_for_ops(int32 id, AggregateDef &def) {
  pg_guard([&] { lock_aggregate(id, RowExclusiveLock); });
  if (!load_aggregate_by_id(id, def)) return nullptr;
  CompiledAggregate &agg = compiled_aggregate(def);
  return agg.stale() ? nullptr : &agg;
}

std::size_t write_buffer_bytes() { return static_cast<std::size_t>(write_buffer_kb) * 1024; }
}  // namespace

OpBuffer &op_buffer() {
  static OpBuffer buffer;
  return buffer;
}

void OpBuffer::add(PendingOp op) {
  op.cid = GetCurrentCommandId(false);
  op.seq = next_seq_++;
  pending_bytes_ += op_bytes(op);
  ops_.push_back(std::move(op));
  // Bounds backend memory on huge loads without applying anything yet.
  if (pending_bytes_ > write_buffer_bytes()) spill();
}

// Sorts the pending in-memory ops into a new run on disk.
void OpBuffer::spill() {
  std::vector<const PendingOp *> todo;
  for (std::size_t i = flushed_; i < ops_.size(); ++i) todo.push_back(&ops_[i]);
  std::stable_sort(todo.begin(), todo.end(),
                   [](const PendingOp *a, const PendingOp *b) { return a->aggr_id < b->aggr_id; });
  SpillRun run;
  std::vector<bool> keep;
  try {
    keep = sort_into(run, todo);
  } catch (...) {
    abandoned_.push_back(std::move(run));  // the ops stay pending in memory
    throw;
  }
  runs_.push_back(std::move(run));
  keep_unsorted(todo, keep);
}

void OpBuffer::close_abandoned() {
  while (!abandoned_.empty()) {
    SpillRun run = std::move(abandoned_.back());
    abandoned_.pop_back();
    run.close();
  }
}

// Writes the ops of `todo` (sorted by aggregate) into `run` in key order;
// returns, per op of todo, whether it stays in memory: those of aggregates
// dropped so far (or stale).
std::vector<bool> OpBuffer::sort_into(SpillRun &run, std::vector<const PendingOp *> &todo) {
  // Ops of an aggregate this transaction dropped (or made stale) so far stay
  // in memory, pending: a ROLLBACK TO can bring the aggregate back, and its
  // ops must then be applied. They cannot be sorted into the run without a
  // definition; a flush drops them (into the journal) if it is still gone.
  std::vector<bool> keep(todo.size(), false);
  std::size_t i = 0;
  while (i < todo.size()) {
    std::size_t j = i;
    while (j < todo.size() && todo[j]->aggr_id == todo[i]->aggr_id) ++j;
    AggregateDef def;
    CompiledAggregate *agg = aggregate_for_ops(todo[i]->aggr_id, def);
    if (!agg) std::fill(keep.begin() + static_cast<long>(i), keep.begin() + static_cast<long>(j), true);
    if (agg) {
      EntryOrdering order(agg->layout());
      // Stable: ops of one entry stay in recording (seq) order.
      std::stable_sort(todo.begin() + static_cast<long>(i), todo.begin() + static_cast<long>(j),
                       [&](const PendingOp *a, const PendingOp *b) {
                         if (a->ns != b->ns) return a->ns < b->ns;
                         return order.compare(a->key, b->key) < 0;
                       });
      for (std::size_t k = i; k < j; ++k) run.append(*todo[k]);
    }
    i = j;
  }
  run.finish_writing();
  return keep;
}

// After a spill: only the ops spill() could not sort stay in memory.
void OpBuffer::keep_unsorted(const std::vector<const PendingOp *> &todo, const std::vector<bool> &keep) {
  std::vector<std::uint64_t> kept_seqs;
  for (std::size_t k = 0; k < todo.size(); ++k)
    if (keep[k]) kept_seqs.push_back(todo[k]->seq);
  std::sort(kept_seqs.begin(), kept_seqs.end());
  // Compacts the kept ops (in seq order) after the journal. Not counted in
  // pending_bytes_: no new op of a dropped aggregate comes, so they stay
  // below one bound, and counting them would spill tiny runs on every add.
  auto out = ops_.begin() + static_cast<long>(flushed_);
  for (auto in = out; in != ops_.end(); ++in)
    if (std::binary_search(kept_seqs.begin(), kept_seqs.end(), in->seq)) {
      if (out != in) *out = std::move(*in);
      ++out;
    }
  ops_.erase(out, ops_.end());
  pending_bytes_ = 0;
}

bool OpBuffer::discarded(std::uint64_t seq) const {
  auto it =
      std::upper_bound(discarded_.begin(), discarded_.end(), seq,
                       [](std::uint64_t s, const std::pair<std::uint64_t, std::uint64_t> &r) { return s < r.first; });
  return it != discarded_.begin() && seq < std::prev(it)->second;
}

// Applies the pending runs in one merge: per aggregate and namespace in key
// order, in batches of whole key groups, so each leaf is written about once.
void OpBuffer::merge_runs() {
  std::vector<SpillRun *> src;
  for (std::size_t r = applied_runs_; r < runs_.size(); ++r) {
    runs_[r].start_reading();
    src.push_back(&runs_[r]);
  }
  std::vector<PendingOp> head(src.size());
  std::vector<bool> has(src.size());
  auto advance = [&](std::size_t k) {
    while ((has[k] = src[k]->next(head[k])) && discarded(head[k].seq)) {
    }
  };
  for (std::size_t k = 0; k < src.size(); ++k) advance(k);
  const std::size_t batch_bound = std::max<std::size_t>(write_buffer_bytes() / 4, 16u << 10);
  for (;;) {
    bool any = false;
    int32 id = 0;
    for (std::size_t k = 0; k < src.size(); ++k)
      if (has[k] && (!any || head[k].aggr_id < id)) any = true, id = head[k].aggr_id;
    if (!any) break;
    AggregateDef def;
    CompiledAggregate *agg = aggregate_for_ops(id, def);
    if (!agg) {  // drop its ops
      for (std::size_t k = 0; k < src.size(); ++k)
        while (has[k] && head[k].aggr_id == id) advance(k);
      continue;
    }
    check_definition_unchanged_for_snapshot(def);
    AggregateWriter writer(def, *agg);
    const Ordering &order = writer.order();
    auto before = [&](const PendingOp &a, const PendingOp &b) {
      if (a.ns != b.ns) return a.ns < b.ns;
      int c = order.compare(a.key, b.key);
      return c != 0 ? c < 0 : a.seq < b.seq;
    };
    auto heap_less = [&](std::size_t a, std::size_t b) { return before(head[b], head[a]); };  // a min-heap
    std::vector<std::size_t> heap;
    for (std::size_t k = 0; k < src.size(); ++k)
      if (has[k] && head[k].aggr_id == id) heap.push_back(k);
    std::make_heap(heap.begin(), heap.end(), heap_less);
    std::vector<PendingOp> batch;
    std::size_t batch_bytes = 0;
    auto apply_batch = [&] {
      if (batch.empty()) return;
      std::vector<const PendingOp *> run;
      for (const PendingOp &op : batch) run.push_back(&op);
      writer.apply(batch.front().ns, run);
      pg_guard([] { CommandCounterIncrement(); });  // the next batch reads what this one wrote
      batch.clear();
      batch_bytes = 0;
    };
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), heap_less);
      std::size_t k = heap.back();
      heap.pop_back();
      PendingOp op = std::move(head[k]);
      advance(k);
      if (has[k] && head[k].aggr_id == id) {
        heap.push_back(k);
        std::push_heap(heap.begin(), heap.end(), heap_less);
      }
      if (!batch.empty()) {
        const PendingOp &last = batch.back();
        if (before(op, last))  // a run sorted under another definition (cannot happen within one transaction)
          throw std::runtime_error("aggr_ext: spilled ops of aggregate \"" + def.name + "\" are out of order");
        bool new_ns = op.ns != last.ns;
        if (new_ns || (batch_bytes >= batch_bound && order.compare(op.key, last.key) != 0)) apply_batch();
      }
      batch_bytes += op_bytes(op);
      batch.push_back(std::move(op));
    }
    apply_batch();
    writer.finish();
  }
  for (std::size_t r = applied_runs_; r < runs_.size(); ++r)
    dropped_max_cid_ = std::max(dropped_max_cid_, runs_[r].max_cid());
  dropped_any_ = true;  // spilled ops are not in the journal: reads as of their commands cannot undo them
  applied_runs_ = runs_.size();
}

void OpBuffer::flush() {
  close_abandoned();
  if (empty()) return;
  if (applied_runs_ < runs_.size()) {
    if (flushed_ < ops_.size()) spill();
    merge_runs();
    pg_guard([] { CommandCounterIncrement(); });
    forget_flushed_if_top_level();
    if (flushed_ == ops_.size()) return;
    // Left in memory by spill(): ops of aggregates dropped so far, dropped
    // below (moved to the journal, so that a ROLLBACK TO makes them pending).
  }
  std::vector<const PendingOp *> todo;
  for (std::size_t i = flushed_; i < ops_.size(); ++i) todo.push_back(&ops_[i]);
  std::stable_sort(todo.begin(), todo.end(), [](const PendingOp *a, const PendingOp *b) { return a->aggr_id < b->aggr_id; });
  std::size_t i = 0;
  while (i < todo.size()) {
    std::size_t j = i;
    std::vector<const PendingOp *> mine;
    while (j < todo.size() && todo[j]->aggr_id == todo[i]->aggr_id) mine.push_back(todo[j++]);
    // The aggregate lock comes first: a job's swap holds it exclusively, so the
    // definition read next is the one in force until this transaction ends.
    int32 id = todo[i]->aggr_id;
    pg_guard([&] { lock_aggregate(id, RowExclusiveLock); });
    AggregateDef def;
    if (load_aggregate_by_id(id, def)) flush_aggregate(def, mine);  // else: dropped meanwhile
    i = j;
  }
  pg_guard([] { CommandCounterIncrement(); });
  journal_bytes_ += pending_bytes_;
  flushed_ = ops_.size();
  pending_bytes_ = 0;
  forget_flushed_if_top_level();
}

// Drops the journal when it outgrows its bound; not inside a subtransaction,
// whose abort needs the ops flushed before it began.
void OpBuffer::forget_flushed_if_top_level() {
  if (levels_.empty() && !runs_.empty() && applied_runs_ == runs_.size()) {
    for (SpillRun &run : runs_) run.close();
    runs_.clear();
    applied_runs_ = 0;
    discarded_.clear();
  }
  if (!levels_.empty() || flushed_ != ops_.size() || journal_bytes_ <= kJournalBytes) return;
  for (const PendingOp &op : ops_) dropped_max_cid_ = std::max(dropped_max_cid_, op.cid);
  dropped_any_ = dropped_any_ || !ops_.empty();
  ops_.clear();
  flushed_ = 0;
  journal_bytes_ = 0;
}

std::vector<Delta> OpBuffer::undo_since(int32 aggr_id, const std::string &ns, CommandId cid, const Ordering &order,
                                        const std::string &name) const {
  if (dropped_any_ && dropped_max_cid_ >= cid)
    throw UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                    "aggregate \"" + name + "\" cannot be read as of an earlier command of this transaction",
                    "This transaction changed its table heavily since the query's snapshot was taken (an open cursor, "
                    "or a query still fetching rows). Read the aggregate in a new statement.");
  auto first = std::lower_bound(ops_.begin(), ops_.begin() + static_cast<long>(flushed_), cid,
                                [](const PendingOp &op, CommandId c) { return op.cid < c; });
  std::vector<const PendingOp *> run;
  for (auto it = first; it != ops_.begin() + static_cast<long>(flushed_); ++it)
    if (it->aggr_id == aggr_id && it->ns == ns) run.push_back(&*it);
  if (run.empty()) return {};
  std::stable_sort(run.begin(), run.end(),
                   [&](const PendingOp *a, const PendingOp *b) { return order.compare(a->key, b->key) < 0; });
  // Undoing is the same changes backwards with opposite signs.
  std::vector<Delta> undo = signed_deltas(run, order);
  std::reverse(undo.begin(), undo.end());
  for (Delta &d : undo) d.sign = -d.sign;
  return undo;
}

bool OpBuffer::changed_since(int32 aggr_id, const std::string &ns, CommandId cid) const {
  if (dropped_any_ && dropped_max_cid_ >= cid) return true;
  auto first = std::lower_bound(ops_.begin(), ops_.begin() + static_cast<long>(flushed_), cid,
                                [](const PendingOp &op, CommandId c) { return op.cid < c; });
  for (auto it = first; it != ops_.begin() + static_cast<long>(flushed_); ++it)
    if (it->aggr_id == aggr_id && it->ns == ns) return true;
  return false;
}

void OpBuffer::note_fold(int32 aggr_id) {
  Fold f{};
  pg_guard([&] {
    f.cid = GetCurrentCommandId(false);
    if (ActiveSnapshotSet()) {
      f.snap = GetActiveSnapshot();
      f.xmin = f.snap->xmin;
      f.xmax = f.snap->xmax;
    }
  });
  std::vector<Fold> &folds = folds_[aggr_id];
  if (folds.size() < 64) folds.push_back(f);
  else folds.back() = Fold{f.cid, nullptr, InvalidTransactionId, InvalidTransactionId};  // many: keep it unsafe
}

bool OpBuffer::folded_since(int32 aggr_id, CommandId cid, Snapshot snap) const {
  auto it = folds_.find(aggr_id);
  if (it == folds_.end()) return false;
  for (const Fold &f : it->second) {
    bool same_query = snap && f.snap == snap && f.xmin == snap->xmin && f.xmax == snap->xmax;
    if (f.cid >= cid && !same_query) return true;
  }
  return false;
}

void OpBuffer::subxact_start(SubTransactionId id) { levels_.push_back(Level{id, next_seq_, flushed_, applied_runs_}); }

void OpBuffer::subxact_commit(SubTransactionId id) {
  while (!levels_.empty()) {
    bool match = levels_.back().id == id;
    levels_.pop_back();
    if (match) break;
  }
  forget_flushed_if_top_level();
}

void OpBuffer::subxact_abort(SubTransactionId id) {
  while (!levels_.empty()) {
    Level l = levels_.back();
    levels_.pop_back();
    if (l.id != id) continue;
    // The subtransaction's tree writes are rolled back: what it flushed of
    // earlier ops (in memory or in runs) is pending again; its own ops are
    // gone, from memory here and from runs when they are read.
    ops_.erase(std::lower_bound(ops_.begin(), ops_.end(), l.start_seq,
                                [](const PendingOp &op, std::uint64_t s) { return op.seq < s; }),
               ops_.end());
    flushed_ = std::min({flushed_, l.flushed_at_start, ops_.size()});
    applied_runs_ = std::min(applied_runs_, l.applied_runs_at_start);
    if (std::any_of(runs_.begin(), runs_.end(), [&](const SpillRun &r) { return r.max_seq() >= l.start_seq; })) {
      while (!discarded_.empty() && discarded_.back().first >= l.start_seq) discarded_.pop_back();
      if (!discarded_.empty() && discarded_.back().second >= l.start_seq)
        discarded_.back().second = next_seq_;
      else
        discarded_.emplace_back(l.start_seq, next_seq_);
    }
    pending_bytes_ = journal_bytes_ = 0;
    for (std::size_t i = 0; i < ops_.size(); ++i) (i < flushed_ ? journal_bytes_ : pending_bytes_) += op_bytes(ops_[i]);
    break;
  }
  forget_flushed_if_top_level();
}

void OpBuffer::reset() {
  // Runs are closed once applied at the top level; any left (an abort) are
  // closed by PostgreSQL with the transaction's resources.
  for (SpillRun &run : runs_) run.forget();
  runs_.clear();
  for (SpillRun &run : abandoned_) run.forget();
  abandoned_.clear();
  applied_runs_ = 0;
  discarded_.clear();
  next_seq_ = 0;
  ops_.clear();
  ops_.shrink_to_fit();
  levels_.clear();
  flushed_ = 0;
  pending_bytes_ = journal_bytes_ = 0;
  dropped_any_ = false;
  dropped_max_cid_ = 0;
  folds_.clear();
}

// ---------------------------------------------------------------- callbacks

namespace {
void run_flush_at_commit() {
  ErrorReport report;
  bool failed = false;
  try {
    op_buffer().flush();
  } catch (...) {
    report = capture_current_exception();
    failed = true;
  }
  if (failed) raise_report(report);
}

void xact_callback(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
    case XACT_EVENT_PRE_PREPARE:
      run_flush_at_commit();
      break;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_PARALLEL_COMMIT:
      foreign_bases().clear();
      op_buffer().reset();
      compiled_aggregates_at_xact_end(true);
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      foreign_bases().clear();
      op_buffer().reset();
      compiled_aggregates_at_xact_end(false);
      break;
    default:
      break;
  }
}

// Called from C frames: no exception may leave it (subxact_start allocates;
// bad_alloc becomes an ERROR raised once the C++ frames are gone).
void subxact_callback(SubXactEvent event, SubTransactionId mine, SubTransactionId, void *) {
  ErrorReport report;
  bool failed = false;
  try {
    switch (event) {
      case SUBXACT_EVENT_START_SUB: op_buffer().subxact_start(mine); break;
      case SUBXACT_EVENT_COMMIT_SUB: op_buffer().subxact_commit(mine); break;
      case SUBXACT_EVENT_ABORT_SUB: op_buffer().subxact_abort(mine); break;
      default: break;
    }
  } catch (...) {
    report = capture_current_exception();
    failed = true;
  }
  if (failed) raise_report(report);
}
}  // namespace

void register_transaction_callbacks() {
  RegisterXactCallback(xact_callback, nullptr);
  RegisterSubXactCallback(subxact_callback, nullptr);
}

// ---------------------------------------------------------------- clear and build

void clear_trees(const AggregateDef &def, int32 generation, const std::string *ns) {
  int32 id = def.id;
  op_buffer().note_fold(id);
  pg_guard([&] {
    if (ns) {
      lock_aggregate(id, RowExclusiveLock);
      lock_tree(id, generation, *ns);
    } else {
      lock_aggregate(id, AccessExclusiveLock);
    }
  });
  OpenTrees o = open_trees(RowExclusiveLock);
  std::vector<TreeRow> rows;
  pg_guard([&] { rows = list_tree_rows(o.trees, o.r, id, generation, GetLatestSnapshot()); });
  for (const TreeRow &row : rows)
    if (!ns || row.ns == *ns) pg_guard([&] { drop_tree(o.trees, o.nodes, o.r, row); });
  delete_deltas(id, [&](int32 gen, const std::string &n) { return gen == generation && (!ns || n == *ns); });
  pg_guard([] { CommandCounterIncrement(); });
  close_trees(o, RowExclusiveLock);
}

namespace {
// Rows of the ordered scan go straight from the executor's slot to the
// visitor (no copy into an SPI tuple table: a build visits every row). The
// visitor is C++ called from the executor: nothing may unwind through it.
// What it throws is kept and the scan stopped with an error; scan_in_order
// throws it again, as it was (a CorruptNode stays one, for its caller to name).
struct ScanReceiver {
  DestReceiver pub;  // first: the executor sees a DestReceiver
  CompiledAggregate *agg;
  const std::function<bool(const CompiledAggregate::RowEntry &)> *visit;  // false: stop the scan
  CompiledAggregate::RowEntry *entry;
  std::exception_ptr thrown;
  ErrorContextCallback *outer_context;  // error_context_stack before SPI pushed its own
  ErrorContextCallback *spi_context;    // SPI's, put back at shutdown
};

bool scan_receive(TupleTableSlot *slot, DestReceiver *self) {
  ScanReceiver *r = reinterpret_cast<ScanReceiver *>(self);
  bool more = true;
  try {
    pg_guard([&] { r->agg->encode_scan_row(slot, *r->entry); });
    more = (*r->visit)(*r->entry);
  } catch (...) {
    r->thrown = std::current_exception();
  }
  if (r->thrown) elog(ERROR, "aggr_ext: the ordered scan stopped");  // replaced by r->thrown in scan_rows
  return more;  // false ends the executor's run: no error, nothing left behind
}
// Errors while the scan runs (of a row: a NULL namespace, a key too large;
// of the sort: temp_file_limit, a cancel) are the aggregate's, not of the
// internal query: SPI's context line is left out while the executor runs,
// and the caller's context lines (a PL/pgSQL line) stay. An error longjmps
// to run_ordered_scan's pg_guard, which restores error_context_stack.
void scan_startup(DestReceiver *self, int, TupleDesc desc) {
  ScanReceiver *r = reinterpret_cast<ScanReceiver *>(self);
  r->spi_context = error_context_stack;
  error_context_stack = r->outer_context;
  r->agg->check_scan_types(desc);  // raises (no C++ object lives in this frame)
}
void scan_shutdown(DestReceiver *self) { error_context_stack = reinterpret_cast<ScanReceiver *>(self)->spi_context; }
void scan_destroy(DestReceiver *) {}

void run_ordered_scan(CompiledAggregate &agg, const std::string &sql, ScanReceiver &receiver) {
  char work_mem_kb[24];  // formatted here: no C++ temporary where set_config_option may longjmp
  snprintf(work_mem_kb, sizeof work_mem_kb, "%d", maintenance_work_mem);
  pg_guard([&] {
    // A whole-table scan in order: read the heap and sort it in
    // maintenance_work_mem, as CREATE INDEX does. An index in the same order
    // tempts the planner, but visiting every row through it is random heap
    // access (measured: 1.7x slower at 1M rows, far worse beyond RAM).
    int guc_level = NewGUCNestLevel();
    (void)set_config_option("enable_indexscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    (void)set_config_option("enable_indexonlyscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    (void)set_config_option("work_mem", work_mem_kb, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    // CREATE INDEX compiles nothing either: at 10M rows the plan's cost
    // would buy JIT inlining and optimization (tens to hundreds of ms).
    (void)set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, NULL);
    if (!plan) elog(ERROR, "could not plan the ordered scan of aggregate \"%s\": %s", agg.def().name.c_str(), sql.c_str());
    SPIExecuteOptions options;
    memset(&options, 0, sizeof options);
    options.read_only = true;
    options.dest = &receiver.pub;
    receiver.outer_context = error_context_stack;
    int rc = SPI_execute_plan_extended(plan, &options);
    // A SELECT into a receiver of DestNone kind reports SPI_OK_UTILITY.
    if (rc != SPI_OK_UTILITY && rc != SPI_OK_SELECT) elog(ERROR, "the ordered scan of aggregate \"%s\" failed: %s", agg.def().name.c_str(), SPI_result_code_string(rc));
    SPI_finish();
    AtEOXact_GUC(true, guc_level);
  });
}
}  // namespace

void scan_in_order(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit) {
  scan_rows(agg, agg.scan_query(true), [&](const CompiledAggregate::RowEntry &e) {
    visit(e);
    return true;
  });
}

void scan_rows(CompiledAggregate &agg, const std::string &sql,
               const std::function<bool(const CompiledAggregate::RowEntry &)> &visit) {
  CompiledAggregate::RowEntry entry;
  ScanReceiver receiver{};
  receiver.pub.receiveSlot = scan_receive;
  receiver.pub.rStartup = scan_startup;
  receiver.pub.rShutdown = scan_shutdown;
  receiver.pub.rDestroy = scan_destroy;
  receiver.pub.mydest = DestNone;
  receiver.agg = &agg;
  receiver.visit = &visit;
  receiver.entry = &entry;
  try {
    run_ordered_scan(agg, sql, receiver);
  } catch (...) {
    if (receiver.thrown) std::rethrow_exception(receiver.thrown);
    throw;
  }
}


namespace {
struct NamespaceBuild {
  TreeRow row;
  std::unique_ptr<PgNodeStore> store;
  std::unique_ptr<BulkBuilder> builder;
};

void finish_build(NamespaceBuild &b, const OpenTrees &o) {
  if (!b.builder) return;
  TreeMeta meta = b.builder->finish();
  b.row.meta = meta;
  pg_guard([&] { store_tree_row(o.trees, o.r, b.row); });
  b.builder.reset();
  b.store.reset();
}
}  // namespace

int64 estimate_rows(Oid relid) {
  int64 estimate = 0;
  pg_guard([&] {
    Relation rel = table_open(relid, AccessShareLock);
    float4 reltuples = rel->rd_rel->reltuples;
    estimate = reltuples >= 0 ? static_cast<int64>(reltuples)
                              : static_cast<int64>(RelationGetNumberOfBlocks(rel)) * 100;  // never analyzed
    table_close(rel, AccessShareLock);
  });
  return estimate;
}

bool bulk_build(const AggregateDef &def, CompiledAggregate &agg, int32 target, const char *verb,
                const std::function<bool(const RowVisitor &)> &scan, std::uint64_t &rows,
                CompiledAggregate::RowEntry *last) {
  EntryOrdering order(agg.layout());
  OpenTrees o = open_trees(RowExclusiveLock);
  NamespaceBuild current;
  rows = 0;
  bool scanned = scan([&](const CompiledAggregate::RowEntry &entry) {
    if (!current.builder || entry.ns != current.row.ns) {
      finish_build(current, o);
      current.row = TreeRow{};
      current.row.aggr_id = def.id;
      current.row.generation = target;
      current.row.ns = entry.ns;
      pg_guard([&] { current.row.tree_id = nextval_internal(o.r.trees_seq, false); });
      current.store = std::make_unique<PgNodeStore>(o.nodes, o.r.nodes_pkey, current.row, agg.tree_config(),
                                                    nullptr, true);
      current.builder = std::make_unique<BulkBuilder>(*current.store, order, agg.tree_config());
    }
    agg.check_entry_size(entry.key);
    current.builder->add(Entry{entry.key, entry.value});
    if (last) *last = entry;
    if (++rows % 1000000 == 0) {
      std::uint64_t done = rows;
      pg_guard([&] { ereport(NOTICE, (errmsg("%s \"%s\": %lu rows indexed", verb, def.name.c_str(), (unsigned long)done))); });
    }
  });
  finish_build(current, o);
  pg_guard([] { CommandCounterIncrement(); });
  close_trees(o, RowExclusiveLock);
  return scanned;
}

std::uint64_t build_trees(const AggregateDef &def, const char *verb) {
  op_buffer().flush();
  if (def.build_generation != 0)
    throw UserError(ERRCODE_OBJECT_IN_USE, "a backfill or rebuild of aggregate \"" + def.name + "\" is running",
                    "Wait for it (SELECT * FROM aggr_status(" + sql_literal(def.name) + ")) or cancel it with aggr_backfill_cancel.");
  int32 target = def.generation + 1;
  CompiledAggregate &agg = compiled_aggregate(def);
  std::uint64_t rows = 0;
  bulk_build(def, agg, target, verb, [&](const RowVisitor &visit) {
    if (!visit_sorted(agg, visit, UINT64_MAX, true)) scan_in_order(agg, visit);
    return true;
  }, rows, nullptr);
  clear_trees(def, def.generation, nullptr);  // the previous generation, if any
  update_aggregate_generations(def.id, "ready", target, 0);
  return rows;
}

}  // namespace aggr::pg
