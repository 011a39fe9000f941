// aggr_verify: a streaming merge of the table (ordered scan) against each
// tree (in-order cursor), plus each tree's own invariants. Memory stays
// bounded: ids of differing entries go to tuplesorts, which spill to disk.
#include <memory>
#include <set>

#include "maintenance.hpp"

using namespace aggr;
using namespace aggr::pg;

namespace {

// Primary-key bytes of entries, sorted with bounded memory.
class IdSort {
 public:
  IdSort() {
    pg_guard([&] { sort_ = tuplesort_begin_datum(BYTEAOID, ByteaLessOperator, InvalidOid, false, work_mem, NULL, TUPLESORT_NONE); });
  }
  ~IdSort() {
    Tuplesortstate *s = sort_;
    try {
      pg_guard([&] { tuplesort_end(s); });
    } catch (...) {
    }
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

class Verifier {
 public:
  explicit Verifier(CompiledAggregate &agg) : agg_(agg), order_(agg.layout()) {
    pg_guard([&] {
      r_ = internal_relations();
      trees_ = table_open(r_.trees, AccessShareLock);
      nodes_ = table_open(r_.nodes, AccessShareLock);
      PushCopiedSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
      UpdateActiveSnapshotCommandId();
      snap_ = GetActiveSnapshot();
      scratch_ = AllocSetContextCreate(CurrentMemoryContext, "aggr_verify", ALLOCSET_DEFAULT_SIZES);
    });
  }
  ~Verifier() {
    Relation t = trees_, n = nodes_;
    MemoryContext s = scratch_;
    try {
      pg_guard([&] {
        PopActiveSnapshot();
        table_close(n, AccessShareLock);
        table_close(t, AccessShareLock);
        MemoryContextDelete(s);
      });
    } catch (...) {
    }
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
      if (!cursor_->entry().value.same_as(e.value)) ++f_.changed;
      cursor_->next();
    } else {
      ++f_.missing;
      missing_ids_.add(id_of(e.key));
    }
  }

  // Trees the table scan never reached: all their entries are extra.
  void finish() {
    drain();
    std::vector<std::string> others;
    pg_guard([&] {
      ScanKeyData key;
      ScanKeyInit(&key, 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(agg_.def().id));
      SysScanDesc scan = systable_beginscan(trees_, r_.trees_aggr_ns_key, true, snap_, 1, &key);
      HeapTuple tup;
      while (HeapTupleIsValid(tup = systable_getnext(scan))) {
        TreeRow row = tree_row_from_tuple(trees_, tup);
        f_.aggregate_count += row.meta.count;
        f_.aggregate_sum += row.meta.sum;
        if (!visited_.count(row.tree_id)) others.push_back(row.ns);
      }
      systable_endscan(scan);
    });
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
    store_.reset();
    pg_guard([&] { row_ = load_tree_row(trees_, r_, agg_.def().id, ns, snap_); });
    row_.ns = ns;
    open_ = true;
    if (!row_.exists) return;
    visited_.insert(row_.tree_id);
    store_ = std::make_unique<PgNodeStore>(nodes_, r_.nodes_pkey, row_, agg_.tree_config().sum_kind, snap_, false);
    try {
      Tree(*store_, order_, agg_.tree_config(), row_.meta).check();
      cursor_ = std::make_unique<Cursor>(*store_, row_.meta, 0);
    } catch (const std::runtime_error &e) {  // InvariantViolation, CorruptNode
      if (f_.detail.empty()) f_.detail = std::string("tree invariant violated: ") + e.what();
    }
  }
  void drain() {
    while (cursor_ && cursor_->valid()) extra_entry();
  }
  void extra_entry() {
    ++f_.extra;
    extra_ids_.add(id_of(cursor_->entry().key));
    cursor_->next();
  }
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

  CompiledAggregate &agg_;
  EntryOrdering order_;
  Relations r_{};
  Relation trees_ = nullptr, nodes_ = nullptr;
  Snapshot snap_ = nullptr;
  MemoryContext scratch_ = nullptr;
  bool open_ = false;
  TreeRow row_;
  std::unique_ptr<PgNodeStore> store_;
  std::unique_ptr<Cursor> cursor_;
  std::set<int64> visited_;
  IdSort missing_ids_, extra_ids_;
  Figures f_;
};

}  // namespace

AGGR_FUNCTION(aggr_verify) {
  std::string name;
  pg_guard([&] { name = TextDatumGetCString(PG_GETARG_DATUM(0)); });
  AggregateDef def;
  load_aggregate_by_name(name, def, false);
  CompiledAggregate &agg = compiled_aggregate(def);
  pg_guard([&] {
    char *relname = get_rel_name(def.source);
    if (!pg_class_ownercheck(def.source, GetUserId())) aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
  });
  op_buffer().flush();
  Figures f;
  {
    Verifier v(agg);
    scan_in_order(agg, [&](const CompiledAggregate::RowEntry &e) { v.table_row(e); });
    v.finish();
    f = v.figures();
  }
  bool ok = f.missing == 0 && f.extra == 0 && f.changed == 0 && f.detail.empty() && f.table_count == f.aggregate_count;
  if (def.state != "ready" && f.detail.empty()) f.detail = "aggregate state is " + def.state;
  Datum result = 0;
  pg_guard([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
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
    result = HeapTupleGetDatum(heap_form_tuple(desc, v, n));
  });
  return result;
}
