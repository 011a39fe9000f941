// aggr_verify: a streaming merge of the table (ordered scan) against each
// tree (in-order cursor), plus each tree's own invariants. Memory stays
// bounded: ids of differing entries go to tuplesorts, which spill to disk.
#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "definition.hpp"
#include "jobs.hpp"
#include "deltas.hpp"
#include "maintenance.hpp"
#include "owner_context.hpp"
#include "result_row.hpp"

using namespace aggr;
using namespace aggr::pg;

namespace {

// Primary-key bytes of entries, sorted with bounded memory. end() releases
// the sort (its memory and temporary files) when the work succeeded.
// Without it (an exception left the work, and its error aborts the
// (sub)transaction) the abort frees the sort's memory context, a child of
// the statement's, and closes its temporary files (resource owner): the
// destructor calls nothing, where an error could only be swallowed.
class IdSort {
 public:
  IdSort() {
    pg_guard([&] { sort_ = tuplesort_begin_datum(BYTEAOID, ByteaLessOperator, InvalidOid, false, work_mem, NULL, TUPLESORT_NONE); });
  }
  void end() {
    Tuplesortstate *s = sort_;
    sort_ = nullptr;
    if (s) pg_guard([&] { tuplesort_end(s); });
  }
  void add(std::string_view id) {
    pg_guard([&] {
      bytea *b = (bytea *)palloc(id.size() + VARHDRSZ);
      SET_VARSIZE(b, id.size() + VARHDRSZ);
      memcpy(VARDATA(b), id.data(), id.size());
      tuplesort_putdatum(sort_, PointerGetDatum(b), false);
      pfree(b);
    });
  }
  void sort() { pg_guard([&] { tuplesort_performsort(sort_); }); }
  bool next(std::string &out) {
    bool got = false;
    pg_guard([&] {
      Datum d;
      bool isnull;
      got = tuplesort_getdatum(sort_, true, &d, &isnull, NULL);
      if (got) {
        bytea *b = DatumGetByteaPP(d);
        out.assign(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
      }
    });
    return got;
  }

 private:
  Tuplesortstate *sort_ = nullptr;
};

// Ids present in both sorted streams: rows whose entry moved (stale key).
std::uint64_t count_common(IdSort &a, IdSort &b) {
  a.sort();
  b.sort();
  std::string x, y;
  bool has_x = a.next(x), has_y = b.next(y);
  std::uint64_t common = 0;
  while (has_x && has_y) {
    int c = x.compare(y);
    if (c == 0) ++common;
    if (c <= 0) has_x = a.next(x);
    if (c >= 0) has_y = b.next(y);
  }
  return common;
}

struct Figures {
  std::uint64_t table_count = 0, aggregate_count = 0, missing = 0, extra = 0, changed = 0;
  Sum table_sum, aggregate_sum;
  std::string detail;
};

// Receives each differing entry as the merge finds it.
class DiffSink {
 public:
  virtual ~DiffSink() = default;
  virtual void missing(const std::string &ns, const Entry &table) = 0;
  virtual void extra(const std::string &ns, const Entry &tree) = 0;
  virtual void changed(const std::string &ns, const Entry &table, const Entry &tree) = 0;
};

class Verifier {
 public:
  // fresh: read with a new snapshot (READ COMMITTED), as aggr_repair must
  // after locking out writers; otherwise with the statement's snapshot.
  // `def` is the definition as the caller just read it: the compiled one is
  // kept for the whole transaction, and its generation may be older (the
  // transaction built the aggregate, or swapped in a rebuild).
  Verifier(CompiledAggregate &agg, const AggregateDef &def, DiffSink *sink = nullptr, bool fresh = false)
      : agg_(agg), def_(def), order_(agg.layout()), sink_(sink) {
    pg_guard([&] {
      r_ = internal_relations();
      trees_ = table_open(r_.trees, AccessShareLock);
      nodes_ = table_open(r_.nodes, AccessShareLock);
      PushCopiedSnapshot(fresh || !ActiveSnapshotSet() ? GetTransactionSnapshot() : GetActiveSnapshot());
      UpdateActiveSnapshotCommandId();
      snap_ = GetActiveSnapshot();
      scratch_ = AllocSetContextCreate(CurrentMemoryContext, "aggr_verify", ALLOCSET_DEFAULT_SIZES);
    });
  }
  // Releases the sorts, the snapshot, the relations and the scratch memory:
  // call it once the results (figures, ids) have been taken. Not closed (an
  // exception is leaving the pass), the (sub)transaction's abort does the
  // same: it pops the snapshot (AtAbort_Snapshot / AtSubAbort_Snapshot),
  // closes the relations and temporary files (resource owner) and frees the
  // memory contexts, children of the statement's. The destructor calls
  // nothing into PostgreSQL, where an error could only be swallowed.
  void close() {
    missing_ids_.end();
    extra_ids_.end();
    Relation t = trees_, n = nodes_;
    MemoryContext s = scratch_;
    trees_ = nodes_ = nullptr;
    scratch_ = nullptr;
    pg_guard([&] {
      PopActiveSnapshot();
      table_close(n, AccessShareLock);
      table_close(t, AccessShareLock);
      MemoryContextDelete(s);
    });
  }

  void table_row(const CompiledAggregate::RowEntry &e) {
    if (!open_ || e.ns != row_.ns) {
      drain();
      open(e.ns);
    }
    ++f_.table_count;
    f_.table_sum += e.value;
    while (cursor_ && cursor_->valid() && order_.compare(cursor_->entry().key, e.key) < 0) extra_entry();
    if (cursor_ && cursor_->valid() && order_.compare(cursor_->entry().key, e.key) == 0) {
      if (!cursor_->entry().value.same_as(e.value)) {
        ++f_.changed;
        if (sink_) sink_->changed(e.ns, Entry{e.key, e.value}, cursor_->entry());
      }
      cursor_->next();
    } else {
      ++f_.missing;
      missing_ids_.add(id_of(e.key));
      if (sink_) sink_->missing(e.ns, Entry{e.key, e.value});
    }
  }

  // Trees the table scan never reached: all their entries are extra.
  void finish() {
    drain();
    std::vector<std::string> others;
    for (const TreeRow &row : list_tree_rows(trees_, r_, def_.id, def_.generation, snap_)) {
      f_.aggregate_count += row.meta.count;
      f_.aggregate_sum += row.meta.sum;
      if (!visited_.count(row.tree_id)) others.push_back(row.ns);
    }
    if (def_.deferred)  // namespaces that so far only have deltas
      for (const std::string &ns : pending_namespaces(def_.id, def_.generation, snap_))
        if (!opened_.count(ns)) others.push_back(ns);
    for (const std::string &ns : others) {
      open(ns);
      drain();
    }
    std::uint64_t moved = count_common(missing_ids_, extra_ids_);
    f_.changed += moved;
    f_.missing -= moved;
    f_.extra -= moved;
  }
  const Figures &figures() const { return f_; }

 private:
  void open(const std::string &ns) {
    cursor_.reset();
    tree_.reset();
    store_.reset();
    pg_guard([&] { row_ = load_tree_row(trees_, r_, def_.id, def_.generation, ns, snap_); });
    row_.ns = ns;
    open_ = true;
    opened_.insert(ns);
    // A deferred aggregate is its trees plus the deltas the snapshot sees.
    pending_ = pending_changes(def_, ns, order_, snap_);
    f_.aggregate_count = static_cast<std::uint64_t>(static_cast<int64>(f_.aggregate_count) + pending_.count_change());
    f_.aggregate_sum += pending_.sum_change();
    if (!row_.exists && pending_.empty()) return;
    if (row_.exists) visited_.insert(row_.tree_id);
    store_ = std::make_unique<PgNodeStore>(nodes_, r_.nodes_pkey, row_, agg_.tree_config(), snap_, false);
    try {
      tree_ = std::make_unique<Tree>(*store_, order_, agg_.tree_config(), row_.exists ? row_.meta : TreeMeta{});
      tree_->check();
      cursor_ = std::make_unique<MergedCursor>(*store_, *tree_, order_, pending_, 0);
    } catch (const InvariantViolation &e) {  // readable but wrong: report it; CorruptNode: raise it
      if (f_.detail.empty()) f_.detail = std::string("tree invariant violated: ") + e.what();
    }
  }
  void drain() {
    while (cursor_ && cursor_->valid()) extra_entry();
  }
  void extra_entry() {
    ++f_.extra;
    extra_ids_.add(id_of(cursor_->entry().key));
    if (sink_) sink_->extra(row_.ns, cursor_->entry());
    cursor_->next();
  }

 public:
  std::string id_of(const std::string &key) {
    std::size_t pos = 0;
    pg_guard([&] {
      MemoryContext old = MemoryContextSwitchTo(scratch_);
      bool isnull;
      for (std::size_t i = 0; i < agg_.key_columns(); ++i) (void)agg_.layout().decode(key, pos, i, isnull);
      MemoryContextSwitchTo(old);
      MemoryContextReset(scratch_);
    });
    return key.substr(pos);
  }

 private:
  CompiledAggregate &agg_;
  AggregateDef def_;
  EntryOrdering order_;
  DiffSink *sink_;
  Relations r_{};
  Relation trees_ = nullptr, nodes_ = nullptr;
  Snapshot snap_ = nullptr;
  MemoryContext scratch_ = nullptr;
  bool open_ = false;
  TreeRow row_;
  std::unique_ptr<PgNodeStore> store_;
  std::unique_ptr<Tree> tree_;
  PendingChanges pending_;
  std::unique_ptr<MergedCursor> cursor_;
  std::set<int64> visited_;
  std::set<std::string> opened_;
  IdSort missing_ids_, extra_ids_;
  Figures f_;
};

}  // namespace

namespace {
AggregateDef owned_aggregate(FunctionCallInfo fcinfo);
void diff_as_owner(FunctionCallInfo fcinfo, const AggregateDef &def);
}  // namespace

// Verify, diff and repair evaluate the owner's expressions over the whole
// table: as REINDEX does, they run as the table owner (owner_context.hpp),
// whoever calls them, and compile the aggregate there.
namespace {
// Verifies one aggregate on a plain table (or a leaf partition), as its owner.
Figures verify_figures(const AggregateDef &def) {
  Figures f;
  run_as_table_owner(def.source, [&] {
    CompiledAggregate &agg = compiled_aggregate(def);
    agg.check_not_stale();
    f = naming_corruption(def.name, def.state == "ready", [&] {
      Verifier v(agg, def);
      scan_in_order(agg, [&](const CompiledAggregate::RowEntry &e) { v.table_row(e); });
      v.finish();
      Figures figures = v.figures();
      v.close();
      return figures;
    });
  });
  if (def.state != "ready" && f.detail.empty()) f.detail = "aggregate state is " + def.state;
  return f;
}

void append_detail(std::string &detail, const std::string &more) {
  if (more.empty()) return;
  if (!detail.empty()) detail += "; ";
  detail += more;
}

// The aggregate of a partitioned table: each part verified against its
// partition, the figures added up, and every leaf partition must have
// exactly one part.
Figures verify_parts(const AggregateDef &parent) {
  Figures total;
  std::vector<Oid> leaves = leaf_partitions(parent.source, AccessShareLock);
  std::vector<AggregateDef> parts = load_children(parent.id);
  for (Oid leaf : leaves)
    if (std::none_of(parts.begin(), parts.end(), [&](const AggregateDef &p) { return p.source == leaf; })) {
      std::string name;
      pg_guard([&] { name = get_rel_name(leaf); });
      append_detail(total.detail, "partition " + name + " has no part");
    }
  for (const AggregateDef &part : parts) {
    if (std::find(leaves.begin(), leaves.end(), part.source) == leaves.end())
      append_detail(total.detail, "part " + part.name + " is not on a leaf partition");
    Figures f = verify_figures(part);
    total.table_count += f.table_count;
    total.aggregate_count += f.aggregate_count;
    total.missing += f.missing;
    total.extra += f.extra;
    total.changed += f.changed;
    total.table_sum += f.table_sum;
    total.aggregate_sum += f.aggregate_sum;
    if (!f.detail.empty()) append_detail(total.detail, part.name + ": " + f.detail);
  }
  return total;
}
}  // namespace

AGGR_FUNCTION(aggr_verify) {
  AggregateDef def = owned_aggregate(fcinfo);
  op_buffer().flush();
  CompiledAggregate *compiled = nullptr;
  run_as_table_owner(def.source, [&] { compiled = &compiled_aggregate(def); });
  Figures f = is_partitioned_aggregate(def) ? verify_parts(def) : verify_figures(def);
  CompiledAggregate &agg = *compiled;  // valid to the end of the transaction
  bool ok = f.missing == 0 && f.extra == 0 && f.changed == 0 && f.detail.empty() && f.table_count == f.aggregate_count;
  Datum result = 0;
  pg_guard([&] {
    Datum v[9];
    bool n[9] = {};
    bool has_sum = agg.sum().kind != SumKind::None;
    v[0] = CStringGetTextDatum(ok ? "ok" : "mismatch");
    v[1] = Int64GetDatum(static_cast<int64>(f.table_count));
    v[2] = Int64GetDatum(static_cast<int64>(f.aggregate_count));
    n[3] = n[4] = !has_sum;
    v[3] = has_sum ? agg.sum().to_numeric(f.table_sum) : (Datum)0;
    v[4] = has_sum ? agg.sum().to_numeric(f.aggregate_sum) : (Datum)0;
    v[5] = Int64GetDatum(static_cast<int64>(f.missing));
    v[6] = Int64GetDatum(static_cast<int64>(f.extra));
    v[7] = Int64GetDatum(static_cast<int64>(f.changed));
    n[8] = f.detail.empty();
    v[8] = n[8] ? (Datum)0 : CStringGetTextDatum(f.detail.c_str());
    result = result_row(fcinfo, v, n);
  });
  return result;
}

namespace {

// Keeps every differing entry (memory grows with the differences only) and
// pairs missing with extra entries of the same row: a stale key.
class DiffCollector : public DiffSink {
 public:
  struct Item {
    std::string ns;
    Entry entry;
  };
  struct Change {
    std::string table_ns, tree_ns;
    Entry table, tree;
  };
  void missing(const std::string &ns, const Entry &t) override { missing_.push_back({ns, t}); }
  void extra(const std::string &ns, const Entry &t) override { extra_.push_back({ns, t}); }
  void changed(const std::string &ns, const Entry &table, const Entry &tree) override {
    changes_.push_back({ns, ns, table, tree});
  }
  // Moves missing/extra pairs with the same primary key into changes.
  void pair(Verifier &v) {
    std::map<std::string, std::size_t> extra_by_id;
    for (std::size_t i = 0; i < extra_.size(); ++i) extra_by_id[v.id_of(extra_[i].entry.key)] = i;
    std::vector<Item> lone_missing;
    std::vector<bool> paired(extra_.size(), false);
    for (Item &m : missing_) {
      auto it = extra_by_id.find(v.id_of(m.entry.key));
      if (it == extra_by_id.end()) {
        lone_missing.push_back(std::move(m));
        continue;
      }
      paired[it->second] = true;
      changes_.push_back({m.ns, extra_[it->second].ns, m.entry, extra_[it->second].entry});
    }
    std::vector<Item> lone_extra;
    for (std::size_t i = 0; i < extra_.size(); ++i)
      if (!paired[i]) lone_extra.push_back(std::move(extra_[i]));
    missing_ = std::move(lone_missing);
    extra_ = std::move(lone_extra);
  }
  std::vector<Item> missing_, extra_;
  std::vector<Change> changes_;
};

}  // namespace

namespace {
AggregateDef owned_aggregate(FunctionCallInfo fcinfo) {
  std::string name;
  pg_guard([&] { name = TextDatumGetCString(PG_GETARG_DATUM(0)); });
  AggregateDef def;
  load_aggregate_by_name(name, def, false);
  pg_guard([&] {
    char *relname = get_rel_name(def.source);
    if (!relname)
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                      errmsg("source table of aggregate \"%s\" no longer exists", def.name.c_str())));
    if (!pg_class_ownercheck(def.source, GetUserId())) aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
  });
  CompiledAggregate *agg = nullptr;
  run_as_table_owner(def.source, [&] { agg = &compiled_aggregate(def); });  // compiles as the owner (folds its functions)
  agg->check_not_stale();
  pg_guard([&] { check_read_privileges(def, *agg); });  // reveals rows; a forced policy would hide rows from the scan
  return def;
}

// Text of a namespace value (NULL datum when not namespaced).
Datum ns_datum(CompiledAggregate &agg, const std::string &ns, bool *isnull) {
  *isnull = !agg.def().namespaced();
  if (*isnull) return (Datum)0;
  std::size_t pos = 0;
  bool n;
  Datum d = agg.ns_layout().decode(ns, pos, 0, n);
  Oid out;
  bool varlena;
  getTypeOutputInfo(agg.ns_type(), &out, &varlena);
  return CStringGetTextDatum(OidOutputFunctionCall(out, d));
}
}  // namespace

// The differing entries themselves: (id, kind, namespace, table_key,
// tree_key, table_sum, tree_sum). kind: missing | extra | changed.
AGGR_FUNCTION(aggr_diff) {
  AggregateDef def = owned_aggregate(fcinfo);
  op_buffer().flush();
  std::vector<AggregateDef> defs{def};
  if (is_partitioned_aggregate(def)) defs = load_children(def.id);
  for (const AggregateDef &one : defs) run_as_table_owner(one.source, [&] { diff_as_owner(fcinfo, one); });
  if (defs.empty()) pg_guard([&] { InitMaterializedSRF(fcinfo, 0); });
  return (Datum)0;
}

namespace {
void diff_as_owner(FunctionCallInfo fcinfo, const AggregateDef &def) {
  CompiledAggregate &agg = compiled_aggregate(def);
  agg.check_not_stale();
  DiffCollector diff;
  naming_corruption(def.name, def.state == "ready", [&] {
    Verifier v(agg, def, &diff);
    scan_in_order(agg, [&](const CompiledAggregate::RowEntry &e) { v.table_row(e); });
    v.finish();
    diff.pair(v);
    v.close();
  });
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  if (!rsinfo->setResult) pg_guard([&] { InitMaterializedSRF(fcinfo, 0); });  // the parts of a partitioned table's: one result
  bool has_sum = agg.sum().kind != SumKind::None;
  auto emit = [&](const char *kind, const std::string &ns, const Entry *table, const Entry *tree) {
    const Entry &any = table ? *table : *tree;
    std::string id = agg.id_text(any.key);
    std::string table_key = table ? agg.key_text(table->key) : std::string();
    std::string tree_key = tree ? agg.key_text(tree->key) : std::string();
    pg_guard([&] {
      Datum v[7];
      bool n[7] = {false, false, false, !table, !tree, !table || !has_sum, !tree || !has_sum};
      v[0] = CStringGetTextDatum(id.c_str());
      v[1] = CStringGetTextDatum(kind);
      v[2] = ns_datum(agg, ns, &n[2]);
      v[3] = table ? CStringGetTextDatum(table_key.c_str()) : (Datum)0;
      v[4] = tree ? CStringGetTextDatum(tree_key.c_str()) : (Datum)0;
      v[5] = n[5] ? (Datum)0 : agg.sum().to_numeric(table->value);
      v[6] = n[6] ? (Datum)0 : agg.sum().to_numeric(tree->value);
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
    });
  };
  for (auto &m : diff.missing_) emit("missing", m.ns, &m.entry, nullptr);
  for (auto &x : diff.extra_) emit("extra", x.ns, nullptr, &x.entry);
  for (auto &c : diff.changes_) emit("changed", c.table_ns, &c.table, &c.tree);
}

// The work of aggr_repair, as the table owner; (missing, extra, changed) fixed.
void repair_as_owner(const AggregateDef &def, std::size_t counts[3]);
}  // namespace

// Diff and patch in place, with writers held at commit for the pass.
AGGR_FUNCTION(aggr_repair) {
  pg_guard([] {
    PreventCommandIfReadOnly("aggr_repair()");
    PreventCommandDuringRecovery("aggr_repair()");
  });
  AggregateDef parent = owned_aggregate(fcinfo);
  std::vector<AggregateDef> defs{parent};
  if (is_partitioned_aggregate(parent)) defs = load_children(parent.id);
  for (const AggregateDef &def : defs) {
    if (def.state != "ready")
      throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                      "aggregate \"" + def.name + "\" is not ready (state: " + def.state + "): nothing to repair",
                      "Fill it with CALL aggr_backfill(" + sql_literal(def.name) + ").");
    if (def.build_generation != 0)
      throw UserError(ERRCODE_OBJECT_IN_USE, "a backfill or rebuild of aggregate \"" + def.name + "\" is running");
  }
  bool rr = false;
  pg_guard([&] { rr = IsolationUsesXactSnapshot(); });
  if (rr)
    throw UserError(ERRCODE_ACTIVE_SQL_TRANSACTION, "aggr_repair must run in a READ COMMITTED transaction",
                    "It compares the table and the aggregate as of the moment writers are locked out.");
  op_buffer().flush();
  std::size_t counts[3] = {};
  for (const AggregateDef &def : defs) {
    std::size_t part[3] = {};
    run_as_table_owner(def.source, [&] { repair_as_owner(def, part); });
    for (int i = 0; i < 3; ++i) counts[i] += part[i];
  }
  Datum result = 0;
  pg_guard([&] {
    Datum v[3] = {Int64GetDatum((int64)counts[0]), Int64GetDatum((int64)counts[1]), Int64GetDatum((int64)counts[2])};
    bool n[3] = {};
    result = result_row(fcinfo, v, n);
  });
  return result;
}

namespace {
void repair_as_owner(const AggregateDef &def, std::size_t counts[3]) {
  int32 id = def.id;
  pg_guard([&] { lock_aggregate(id, AccessExclusiveLock); });  // no writer commits a change until we do
  // Fixes go into the trees: pending deltas first, or they would count twice.
  while (merge_deltas(id) > 0) {
  }
  CompiledAggregate &agg = compiled_aggregate(def);
  agg.check_not_stale();
  EntryOrdering order(agg.layout());
  DiffCollector diff;
  naming_corruption(def.name, def.state == "ready", [&] {
    Verifier v(agg, def, &diff, true);
    scan_in_order(agg, [&](const CompiledAggregate::RowEntry &e) { v.table_row(e); });
    v.finish();
    diff.pair(v);
    v.close();
  });
  std::map<std::string, std::vector<Op>> fixes;  // per namespace
  for (auto &m : diff.missing_) fixes[m.ns].push_back(Op{m.entry.key, m.entry.value, Op::Action::Upsert, false});
  for (auto &x : diff.extra_) fixes[x.ns].push_back(Op{x.entry.key, Sum{}, Op::Action::Remove, true});
  for (auto &c : diff.changes_) {
    if (order.compare(c.table.key, c.tree.key) != 0 || c.table_ns != c.tree_ns)
      fixes[c.tree_ns].push_back(Op{c.tree.key, Sum{}, Op::Action::Remove, true});
    fixes[c.table_ns].push_back(Op{c.table.key, c.table.value, Op::Action::Upsert, true});
  }
  OpenTrees o = open_trees(RowExclusiveLock);
  for (auto &[ns, ops] : fixes) {
    std::sort(ops.begin(), ops.end(), [&](const Op &a, const Op &b) { return order.compare(a.key, b.key) < 0; });
    apply_to_tree(o, agg, order, def.generation, ns, ops, false);
  }
  close_trees(o, RowExclusiveLock);
  pg_guard([] { CommandCounterIncrement(); });
  counts[0] = diff.missing_.size();
  counts[1] = diff.extra_.size();
  counts[2] = diff.changes_.size();
}
}  // namespace
