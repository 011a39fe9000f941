// SQL-callable functions: definition, queries, operations.
#include <memory>
#include <set>

#include "jobs.hpp"
#include "deltas.hpp"
#include "maintenance.hpp"
#include "owner_context.hpp"
#include "result_row.hpp"

using namespace aggr;
using namespace aggr::pg;

namespace {

enum class Access { Read, Own };

// aggr_create(build => 'auto') builds in the background from this many rows.
constexpr double kBackgroundBuildRows = 100000;
constexpr int32 kDefaultBatchRows = 50000;

std::string text_arg(FunctionCallInfo fcinfo, int argno, const char *what) {
  if (PG_ARGISNULL(argno)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(what) + " must not be NULL");
  std::string out;
  pg_guard([&] { out = TextDatumGetCString(PG_GETARG_DATUM(argno)); });
  return out;
}

// Returns the source table's name; reports an aggregate whose table is gone.
const char *existing_source_name(const AggregateDef &def, const std::string &name_literal) {
  char *relname = get_rel_name(def.source);
  if (!relname)
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                    errmsg("source table of aggregate \"%s\" no longer exists", def.name.c_str()),
                    errhint("Remove the aggregate with SELECT aggr_drop(%s).", name_literal.c_str())));
  return relname;
}

void check_access(const AggregateDef &def, CompiledAggregate *agg, Access access) {
  const std::string name_literal = sql_literal(def.name);  // built here: no C++ temporary where ereport may longjmp
  pg_guard([&] {
    const char *relname = existing_source_name(def, name_literal);
    if (access == Access::Own) {
      if (!pg_class_ownercheck(def.source, GetUserId())) aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
      return;
    }
    check_read_privileges(def, *agg);  // SELECT, column privileges, row-level security as of now
  });
}

// Maintenance writes through heap calls that bypass the executor's checks:
// refuse it in read-only transactions and on standbys, as PostgreSQL would.
void require_writable(const char *command) {
  pg_guard([&] {
    PreventCommandIfReadOnly(command);
    PreventCommandIfParallelMode(command);
    PreventCommandDuringRecovery(command);
  });
}

// Folding deltas in writes what the latest snapshot sees into the trees; a
// REPEATABLE READ transaction would then count rows its snapshot cannot see.
void require_read_committed(const char *command) {
  bool snapshot_isolation = false;
  pg_guard([&] { snapshot_isolation = IsolationUsesXactSnapshot(); });
  if (snapshot_isolation)
    throw UserError(ERRCODE_ACTIVE_SQL_TRANSACTION, std::string(command) + " must run in a READ COMMITTED transaction",
                    "It folds in deltas committed after this transaction's snapshot was taken.");
}

struct Target {
  AggregateDef def;
  CompiledAggregate *agg = nullptr;
  Snapshot snapshot = nullptr;  // reads: the query's snapshot; the definition is the one it sees
};

// Both compile as the table owner: compiling folds constants, which runs
// the owner's IMMUTABLE functions (and whatever they call), and must not do
// so as a superuser reading or maintaining another role's aggregate. A read
// evaluates no expression of the aggregate (only its key layout is used),
// so the owner's entry serves it; writers still evaluate as themselves, in
// the triggers. Maintenance (Access::Own) checks ownership first, then
// works inside run_as_table_owner, where compiled_aggregate hands out that
// same entry.
Target open_aggregate(FunctionCallInfo fcinfo, Access access, bool require_ready = true) {
  Target t;
  // A read answers as of its query's snapshot, definition included: a
  // REPEATABLE READ transaction keeps the generation and write mode it saw
  // across a rebuild's swap or a mode switch. Maintenance acts on the latest.
  if (access == Access::Read)
    pg_guard([&] { t.snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot(); });
  load_aggregate_by_name(text_arg(fcinfo, 0, "aggregate name"), t.def, false, t.snapshot);
  if (access == Access::Own) {
    check_access(t.def, nullptr, access);  // reports a source table that no longer exists
    run_as_table_owner(t.def.source, [&] { t.agg = &compiled_aggregate(t.def); });
    t.agg->check_not_stale();
  } else {
    const std::string name_literal = sql_literal(t.def.name);
    pg_guard([&] { (void)existing_source_name(t.def, name_literal); });
    Oid user = InvalidOid;
    bool stranger = false;
    pg_guard([&] {
      user = GetUserId();
      // No SELECT on the table nor on any column: refused before anything of
      // the owner's runs (column grantees are checked column by column below).
      stranger = pg_class_aclcheck(t.def.source, user, ACL_SELECT) != ACLCHECK_OK &&
                 pg_attribute_aclcheck_all(t.def.source, user, ACL_SELECT, ACLMASK_ANY) != ACLCHECK_OK;
      if (stranger) aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(t.def.source));
    });
    if (user == table_owner(t.def.source))  // the owner's own read: nothing to switch (reads are hot)
      t.agg = &compiled_aggregate(t.def);
    else
      run_as_table_owner(t.def.source, [&] { t.agg = &compiled_aggregate(t.def); });
    t.agg->check_not_stale();
    check_access(t.def, t.agg, access);
  }
  if (require_ready && t.def.state != "ready") {
    ensure_job_worker(t.def.id);  // after a restart, resume the job
    JobRow job = load_job(t.def.id);
    std::string detail = job.exists ? "; " + job_progress_text(job) : "";
    throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "aggregate \"" + t.def.name + "\" is not ready (state: " + t.def.state + detail + ")",
                    job.exists && !job.cancelled ? "Wait for the job: CALL aggr_wait(" + sql_literal(t.def.name) + ")."
                                                 : "Fill it with CALL aggr_backfill(" + sql_literal(t.def.name) + ").");
  }
  return t;
}

// The encoded namespace named by argument `argno` ("" when not namespaced).
std::string namespace_arg(FunctionCallInfo fcinfo, int argno, const Target &t) {
  bool given = PG_NARGS() > argno && !PG_ARGISNULL(argno);
  if (!t.def.namespaced()) {
    if (given)
      throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "aggregate \"" + t.def.name + "\" has no namespace",
                      "Call it without namespace =>.");
    return {};
  }
  if (!given)
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                    "aggregate \"" + t.def.name + "\" is namespaced by " + t.def.ns_spec + ": pass namespace => <value>");
  std::string ns;
  pg_guard([&] {
    bool isnull;
    Datum v = coerce_any_arg(fcinfo, argno, t.agg->ns_type(), -1, "namespace", &isnull);
    t.agg->ns_layout().encode(ns, 0, v, false);
  });
  return ns;
}

// Key values of a bound or rank argument: a scalar, or ROW(...) for a
// multi-column key (a shorter ROW is a prefix), each of whatever type the
// caller passed: KeyProbe compares them as SQL would. False when SQL NULL.
bool key_arg(FunctionCallInfo fcinfo, int argno, const Target &t, std::vector<KeyValue> &values) {
  if (PG_NARGS() <= argno || PG_ARGISNULL(argno)) return false;
  std::size_t nkey = t.agg->key_columns();
  std::size_t count = 0;
  KeyValue vals[INDEX_MAX_KEYS];
  pg_guard([&] {
    Oid type = get_fn_expr_argtype(fcinfo->flinfo, argno);
    if (!OidIsValid(type)) ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not determine type of key value")));
    if (!type_is_rowtype(type)) {
      vals[0] = KeyValue{PG_GETARG_DATUM(argno), false, type};
      count = 1;
      return;
    }
    HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(argno);
    TupleDesc desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(rec), HeapTupleHeaderGetTypMod(rec));
    HeapTupleData tuple;
    tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
    tuple.t_data = rec;
    ItemPointerSetInvalid(&tuple.t_self);
    tuple.t_tableOid = InvalidOid;
    if (desc->natts > (int)nkey)
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("key value has %d fields but the key of aggregate \"%s\" has %d columns", desc->natts,
                             t.def.name.c_str(), (int)nkey)));
    Datum fields[INDEX_MAX_KEYS];
    bool fnull[INDEX_MAX_KEYS];
    heap_deform_tuple(&tuple, desc, fields, fnull);
    for (int i = 0; i < desc->natts; ++i) vals[i] = KeyValue{fields[i], fnull[i], TupleDescAttr(desc, i)->atttypid};
    count = static_cast<std::size_t>(desc->natts);
    ReleaseTupleDesc(desc);
  });
  values.assign(vals, vals + count);
  return true;
}

bool bool_arg(FunctionCallInfo fcinfo, int argno, bool dflt) {
  return PG_NARGS() > argno && !PG_ARGISNULL(argno) ? PG_GETARG_BOOL(argno) : dflt;
}

// Runs a read of t's trees: corruption found there is raised naming t.
// This transaction's buffered changes (of any aggregate) are flushed
// first, so that their errors are not blamed on t.
template <typename F>
Datum read_trees(const Target &t, F &&read) {
  op_buffer().flush();
  return naming_corruption(t.def.name, t.def.state == "ready", std::forward<F>(read));
}

// One tree opened for reading with the caller's snapshot (plus this
// transaction's own flushed changes).
class ReadTree {
 public:
  // The tree is read with every change this transaction flushed (the
  // query's snapshot with the command id advanced); changes of commands the
  // query's own snapshot does not see yet (an open cursor fetching after
  // later writes) are taken back out from the op buffer's journal.
  ReadTree(const Target &t, const std::string &ns) : order_(t.agg->layout()) {
    op_buffer().flush();
    CommandId query_cid = 0;
    pg_guard([&] {
      r_ = internal_relations();
      query_snap_ = t.snapshot;
      query_cid = query_snap_->curcid;
      PushCopiedSnapshot(query_snap_);
      UpdateActiveSnapshotCommandId();
      pushed_ = true;
      snap_ = GetActiveSnapshot();
      trees_ = table_open(r_.trees, AccessShareLock);
      nodes_ = table_open(r_.nodes, AccessShareLock);
      row_ = load_tree_row(trees_, r_, t.def.id, t.def.generation, ns, snap_);
    });
    store_ = std::make_unique<PgNodeStore>(nodes_, r_.nodes_pkey, row_, t.agg->tree_config().sum_kind, snap_, false);
    tree_ = std::make_unique<Tree>(*store_, order_, t.agg->tree_config(), row_.exists ? row_.meta : TreeMeta{});
    std::vector<Delta> deltas;
    if (t.def.deferred) deltas = load_deltas(t.def.id, t.def.generation, ns, snap_).deltas;
    std::vector<Delta> undo = op_buffer().undo_since(t.def.id, ns, query_cid, order_, t.def.name);
    check_undo_suffices(t, ns, query_cid);
    deltas.insert(deltas.end(), std::make_move_iterator(undo.begin()), std::make_move_iterator(undo.end()));
    pending_ = PendingChanges(std::move(deltas), order_);
  }
  ~ReadTree() {
    Relation trees = trees_, nodes = nodes_;
    bool pushed = pushed_;
    try {
      pg_guard([&] {
        if (nodes) table_close(nodes, AccessShareLock);
        if (trees) table_close(trees, AccessShareLock);
        if (pushed) PopActiveSnapshot();
      });
    } catch (...) {
    }
  }
  // The tree plus the pending deltas of a deferred aggregate.
  std::uint64_t count() const { return merged_count(tree_->meta(), pending_); }
  Prefix before(const Probe &probe) const {
    Prefix p = tree_->prefix_before(probe);
    p.count = static_cast<std::uint64_t>(static_cast<int64>(p.count) + pending_.count_before(probe, &p.sum));
    return p;
  }
  Prefix range(const Probe *lower, const Probe *upper) const {
    Prefix p = tree_->range(lower, upper);
    p.count = static_cast<std::uint64_t>(static_cast<int64>(p.count) + pending_.count_between(lower, upper, &p.sum));
    return p;
  }
  MergedCursor cursor(std::uint64_t offset) { return MergedCursor(*store_, *tree_, order_, pending_, offset); }
  // The snapshot of the query this read runs in: rows are fetched with it.
  Snapshot query_snapshot() const { return query_snap_; }

 private:
  // A read as of an earlier command of this transaction (an open cursor)
  // takes the transaction's later changes back out with the journal. That
  // is exact only if those changes went where this read looks and carry
  // nothing of other transactions. Not so when this transaction merged or
  // cleared the trees since, when its later writes went to another
  // generation or write mode (a rebuild's swap or a mode switch committed
  // after the read's snapshot), or when a later write of the tree was based
  // on a version another transaction committed after that snapshot: then
  // refuse, rather than count rows the snapshot does not see.
  void check_undo_suffices(const Target &t, const std::string &ns, CommandId query_cid) const {
    bool folded = op_buffer().folded_since(t.def.id, query_cid, query_snap_);
    if (!folded && !op_buffer().changed_since(t.def.id, ns, query_cid)) return;
    bool exact = !folded;
    if (exact) {
      AggregateDef latest;
      exact = load_aggregate_by_id(t.def.id, latest) && latest.generation == t.def.generation &&
              latest.deferred == t.def.deferred;
    }
    if (exact && row_.exists) {
      const int32 id = t.def.id, generation = t.def.generation;
      const TransactionId written_by = row_.xmin;
      pg_guard([&] {
        if (!TransactionIdIsCurrentTransactionId(written_by)) return;  // this transaction did not write the tree
        // Every version of the tree row: one committed by another
        // transaction after the snapshot is under this transaction's write.
        ScanKeyData keys[3];
        bytea *nsb = (bytea *)palloc(VARHDRSZ + ns.size());
        SET_VARSIZE(nsb, VARHDRSZ + ns.size());
        memcpy(VARDATA(nsb), ns.data(), ns.size());
        ScanKeyInit(&keys[0], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(id));
        ScanKeyInit(&keys[1], 3, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(generation));
        ScanKeyInit(&keys[2], 4, BTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(nsb));
        SysScanDesc scan = systable_beginscan(trees_, r_.trees_aggr_ns_key, true, SnapshotAny, 3, keys);
        HeapTuple tup;
        while (exact && HeapTupleIsValid(tup = systable_getnext(scan))) {
          TransactionId xmin = HeapTupleHeaderGetXmin(tup->t_data);
          if (TransactionIdIsCurrentTransactionId(xmin) || !TransactionIdDidCommit(xmin)) continue;
          if (XidInMVCCSnapshot(xmin, query_snap_)) exact = false;
        }
        systable_endscan(scan);
      });
    }
    if (!exact)
      throw UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                      "aggregate \"" + t.def.name + "\" cannot be read as of an earlier command of this transaction",
                      "This transaction changed the aggregate since the query's snapshot was taken (an open cursor, or a "
                      "query still fetching rows) after other transactions did. Read the aggregate in a new statement.");
  }

  EntryOrdering order_;
  Relations r_{};
  Relation trees_ = nullptr, nodes_ = nullptr;
  Snapshot snap_ = nullptr, query_snap_ = nullptr;
  bool pushed_ = false;
  TreeRow row_;
  std::unique_ptr<PgNodeStore> store_;
  std::unique_ptr<Tree> tree_;
  PendingChanges pending_;
};

Prefix range_of(FunctionCallInfo fcinfo, const Target &t, ReadTree &rt) {
  std::vector<KeyValue> lv, uv;
  bool has_lower = key_arg(fcinfo, 2, t, lv);
  bool has_upper = key_arg(fcinfo, 3, t, uv);
  std::unique_ptr<KeyProbe> lower, upper;
  if (has_lower) lower = std::make_unique<KeyProbe>(t.agg->layout(), lv, !bool_arg(fcinfo, 4, true));
  if (has_upper) upper = std::make_unique<KeyProbe>(t.agg->layout(), uv, bool_arg(fcinfo, 5, true));
  return rt.range(lower.get(), upper.get());
}

// Resolves a possibly negative offset against the entry count.
std::uint64_t resolve_offset(int64 offset, std::uint64_t count, const std::string &name, bool past_end_ok) {
  int64 resolved = offset < 0 ? offset + static_cast<int64>(count) : offset;
  if (resolved < 0 || (!past_end_ok && static_cast<std::uint64_t>(resolved) >= count))
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                    "offset " + std::to_string(offset) + " is out of range for aggregate \"" + name + "\"",
                    "It has " + std::to_string(count) + " entries; offsets run from 0 to " +
                        std::to_string(static_cast<int64>(count) - 1) + ", or from -1 backwards.");
  return static_cast<std::uint64_t>(resolved);
}

// Emits (position, id, key, sum_value) rows for `limit` entries from `offset`.
void emit_entries(FunctionCallInfo fcinfo, const Target &t, ReadTree &rt, std::uint64_t offset, std::uint64_t limit) {
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  pg_guard([&] { InitMaterializedSRF(fcinfo, 0); });
  std::uint64_t pos = offset;
  for (MergedCursor c = rt.cursor(offset); c.valid() && pos < offset + limit; c.next(), ++pos) {
    const Entry &e = c.entry();
    bool key_null = t.agg->key_columns() == 1 && e.key[0] == 0;  // single NULL key column
    std::string id = t.agg->id_text(e.key), key = key_null ? std::string() : t.agg->key_text(e.key);
    pg_guard([&] {
      Datum values[4];
      bool nulls[4] = {false, false, key_null, t.agg->sum().kind == SumKind::None};
      values[0] = Int64GetDatum(static_cast<int64>(pos));
      values[1] = CStringGetTextDatum(id.c_str());
      values[2] = key_null ? (Datum)0 : CStringGetTextDatum(key.c_str());
      values[3] = nulls[3] ? (Datum)0 : t.agg->sum().to_numeric(e.value);
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    });
  }
}

Datum key_at_end(FunctionCallInfo fcinfo, const Target &t, bool last) {
  ReadTree rt(t, namespace_arg(fcinfo, 1, t));
  std::uint64_t count = rt.count();
  if (count == 0) PG_RETURN_NULL();
  MergedCursor c = rt.cursor(last ? count - 1 : 0);
  if (!c.valid()) throw CorruptNode("the tree holds fewer entries than its count");
  Entry e = c.entry();
  if (t.agg->key_columns() == 1 && e.key[0] == 0) PG_RETURN_NULL();
  std::string text = t.agg->key_text(e.key);
  Datum result = 0;
  pg_guard([&] { result = CStringGetTextDatum(text.c_str()); });
  return result;
}

}  // namespace

// ---------------------------------------------------------------- queries

AGGR_FUNCTION(aggr_count) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    ReadTree rt(t, namespace_arg(fcinfo, 1, t));
    return Int64GetDatum(static_cast<int64>(range_of(fcinfo, t, rt).count));
  });
}

AGGR_FUNCTION(aggr_sum) {
  Target t = open_aggregate(fcinfo, Access::Read);
  if (t.agg->sum().kind == SumKind::None)
    throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "aggregate \"" + t.def.name + "\" has no sum_value",
                    "Create it with aggr_create(..., sum_value => 'column').");
  return read_trees(t, [&] {
    ReadTree rt(t, namespace_arg(fcinfo, 1, t));
    Sum s = range_of(fcinfo, t, rt).sum;
    Datum result = 0;
    pg_guard([&] { result = t.agg->sum().to_numeric(s); });
    return result;
  });
}

AGGR_FUNCTION(aggr_rank) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    ReadTree rt(t, namespace_arg(fcinfo, 2, t));
    std::vector<KeyValue> v;
    if (!key_arg(fcinfo, 1, t, v)) PG_RETURN_NULL();
    KeyProbe probe(t.agg->layout(), v, false);
    return Int64GetDatum(static_cast<int64>(rt.before(probe).count + 1));
  });
}

AGGR_FUNCTION(aggr_at) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    ReadTree rt(t, namespace_arg(fcinfo, 2, t));
    if (PG_ARGISNULL(1)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "offset must not be NULL");
    std::uint64_t offset = resolve_offset(PG_GETARG_INT64(1), rt.count(), t.def.name, false);
    emit_entries(fcinfo, t, rt, offset, 1);
    return (Datum)0;
  });
}

// A page's limit: int8 since 1.1 (int4 in a 1.0 schema not yet updated).
int64 limit_arg(FunctionCallInfo fcinfo, int argno) {
  Oid type = InvalidOid;
  pg_guard([&] { type = get_fn_expr_argtype(fcinfo->flinfo, argno); });
  int64 limit = type == INT4OID ? PG_GETARG_INT32(argno) : PG_GETARG_INT64(argno);
  if (limit < 0) throw UserError(ERRCODE_INVALID_ROW_COUNT_IN_LIMIT_CLAUSE, "limit must not be negative");
  return limit;
}

AGGR_FUNCTION(aggr_page) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    ReadTree rt(t, namespace_arg(fcinfo, 3, t));
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
      throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "offset and limit must not be NULL");
    int64 limit = limit_arg(fcinfo, 2);
    std::uint64_t offset = resolve_offset(PG_GETARG_INT64(1), rt.count(), t.def.name, true);
    emit_entries(fcinfo, t, rt, offset, static_cast<std::uint64_t>(limit));
    return (Datum)0;
  });
}

namespace {
// The source rows of `limit` entries from `offset`, found by primary key.
Datum page_rows(FunctionCallInfo fcinfo, const Target &t) {
  ReadTree rt(t, namespace_arg(fcinfo, 4, t));
  if (PG_ARGISNULL(1) || PG_ARGISNULL(2)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "offset and limit must not be NULL");
  int64 limit = limit_arg(fcinfo, 2);
  std::uint64_t offset = resolve_offset(PG_GETARG_INT64(1), rt.count(), t.def.name, true);
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  Relation rel = nullptr;
  const std::vector<AttrNumber> &pk = t.agg->pk_attnums();
  ScanKeyData keys[INDEX_MAX_KEYS];
  const std::string name_literal = sql_literal(t.def.name);  // for a hint inside pg_guard
  pg_guard([&] {
    InitMaterializedSRF(fcinfo, 0);
    rel = table_open(t.def.source, AccessShareLock);
    for (std::size_t i = 0; i < pk.size(); ++i) {
      const Column &c = t.agg->layout().column(t.agg->key_columns() + i);
      TypeCacheEntry *tc = lookup_type_cache(c.type, TYPECACHE_EQ_OPR_FINFO);
      ScanKeyInit(&keys[i], pk[i], BTEqualStrategyNumber, tc->eq_opr_finfo.fn_oid, (Datum)0);
      keys[i].sk_collation = c.collation;
    }
  });
  std::uint64_t pos = offset;
  for (MergedCursor c = rt.cursor(offset); c.valid() && pos < offset + static_cast<std::uint64_t>(limit);
       c.next(), ++pos) {
    const Entry &e = c.entry();
    pg_guard([&] {
      Datum values[INDEX_MAX_KEYS];
      bool nulls[INDEX_MAX_KEYS];
      t.agg->id_values(e.key, values, nulls);
      for (std::size_t i = 0; i < pk.size(); ++i) keys[i].sk_argument = values[i];
      SysScanDesc scan = systable_beginscan(rel, t.agg->pk_index(), true, rt.query_snapshot(), static_cast<int>(pk.size()), keys);
      HeapTuple tup = systable_getnext(scan);
      if (!HeapTupleIsValid(tup))
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("aggregate \"%s\" has an entry for a row that is not in %s", t.def.name.c_str(),
                               get_rel_name(t.def.source)),
                        errhint("Check it with SELECT * FROM aggr_verify(%s).", name_literal.c_str())));
      tuplestore_puttuple(rsinfo->setResult, tup);
      systable_endscan(scan);
    });
  }
  pg_guard([&] { table_close(rel, AccessShareLock); });
  return (Datum)0;
}
}  // namespace

AGGR_FUNCTION(aggr_page_rows) {
  Target t = open_aggregate(fcinfo, Access::Read);
  pg_guard([&] {
    if (pg_class_aclcheck(t.def.source, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
      aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(t.def.source));
    Oid rowtype = get_fn_expr_argtype(fcinfo->flinfo, 3);
    if (rowtype != get_rel_type_id(t.def.source))
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("row_type must be the row type of %s, not %s", get_rel_name(t.def.source), format_type_be(rowtype)),
                      errhint("Pass NULL::%s.", quote_qualified_identifier(get_namespace_name(get_rel_namespace(t.def.source)),
                                                                       get_rel_name(t.def.source)))));
  });
  return read_trees(t, [&] { return page_rows(fcinfo, t); });
}

AGGR_FUNCTION(aggr_min) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] { return key_at_end(fcinfo, t, false); });
}
AGGR_FUNCTION(aggr_max) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] { return key_at_end(fcinfo, t, true); });
}

// ---------------------------------------------------------------- definition

AGGR_FUNCTION(aggr_create) {
  require_writable("aggr_create()");
  std::string name = text_arg(fcinfo, 0, "name");
  if (PG_ARGISNULL(1)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "source must not be NULL");
  std::string key = text_arg(fcinfo, 2, "key");
  if (name.empty()) throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "aggregate name must not be empty");
  AggregateDef existing;
  if (load_aggregate_by_name(name, existing, true))
    throw UserError(ERRCODE_DUPLICATE_OBJECT, "aggregate \"" + name + "\" already exists");
  Oid source = PG_GETARG_OID(1);
  int32 id = 0;
  pg_guard([&] {
    // Ownership first, without a lock: a stranger's SHARE ROW EXCLUSIVE
    // request queued behind a writer would block every later writer (as
    // CREATE INDEX checks in RangeVarGetRelidExtended's callback).
    if (!pg_class_ownercheck(source, GetUserId())) {
      const char *name_now = get_rel_name(source);
      aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, name_now ? name_now : "?");
    }
    Relation rel = table_open(source, ShareRowExclusiveLock);  // as CREATE TRIGGER: no writes while we build
    const char *relname = RelationGetRelationName(rel);
    // Again under the lock: the owner may have changed while we waited.
    if (!pg_class_ownercheck(source, GetUserId())) aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
    if (rel->rd_rel->relkind != RELKIND_RELATION)
      ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("\"%s\" is not a table", relname),
                      errhint("Aggregates are supported on plain tables (not partitioned tables, views or foreign tables).")));
    // Crash recovery empties an unlogged table without firing a trigger;
    // the WAL-logged trees would keep every row.
    if (rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("table \"%s\" is unlogged", relname),
                      errdetail("After a crash the table is emptied without firing triggers; the aggregate would keep its rows."),
                      errhint("ALTER TABLE ... SET LOGGED first.")));
    if (rel->rd_rel->relrowsecurity)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("table \"%s\" has row-level security enabled", relname),
                      errdetail("An aggregate would count rows that some readers may not see.")));
    if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
      ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION), errmsg("table \"%s\" has no primary key", relname),
                      errhint("Aggregate entries are identified by the primary key: ALTER TABLE %s ADD PRIMARY KEY (...).",
                              quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)), relname))));
    const char *sum = PG_ARGISNULL(3) ? nullptr : TextDatumGetCString(PG_GETARG_DATUM(3));
    const char *ns = PG_ARGISNULL(4) ? nullptr : TextDatumGetCString(PG_GETARG_DATUM(4));
    ParsedDefinition parsed = parse_definition(rel, key.c_str(), sum, ns);
    id = insert_aggregate(name, source, key.c_str(), sum, ns, parsed);

    // Maintenance triggers fire ALWAYS: also under session_replication_role = replica.
    char *qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)), relname);
    table_close(rel, NoLock);  // ALTER TABLE below refuses a relation this function still holds open
    const char *fnschema = quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
    char *row_trigger = psprintf("aggr_ext_%d", id);
    char *truncate_trigger = psprintf("aggr_ext_%d_truncate", id);
    char *sql = psprintf(
        "CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s.aggr_ext_row_trigger('%d');"
        "CREATE TRIGGER %s AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s.aggr_ext_truncate_trigger('%d');"
        "ALTER TABLE %s ENABLE ALWAYS TRIGGER %s, ENABLE ALWAYS TRIGGER %s;",
        row_trigger, qualified, fnschema, id, truncate_trigger, qualified, fnschema, id, qualified, row_trigger,
        truncate_trigger);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    if (SPI_execute(sql, false, 0) < 0) elog(ERROR, "could not create the triggers of aggregate \"%s\"", name.c_str());
    SPI_finish();
    // DROP EXTENSION removes the triggers with it.
    Oid ext = get_extension_oid("aggr_ext", true);
    if (OidIsValid(ext)) {
      ObjectAddress extaddr, trigaddr;
      ObjectAddressSet(extaddr, ExtensionRelationId, ext);
      for (char *trig : {row_trigger, truncate_trigger}) {
        ObjectAddressSet(trigaddr, TriggerRelationId, get_trigger_oid(source, trig, false));
        recordDependencyOn(&trigaddr, &extaddr, DEPENDENCY_AUTO);
      }
    }
    CommandCounterIncrement();
  });
  AggregateDef def;
  if (!load_aggregate_by_id(id, def)) throw std::logic_error("aggregate vanished while being created");
  std::string build = PG_NARGS() > 5 && !PG_ARGISNULL(5) ? text_arg(fcinfo, 5, "build") : "auto";
  if (build != "auto" && build != "now" && build != "background")
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "build must be 'auto', 'now' or 'background', not '" + build + "'");
  bool background = build == "background";
  if (build == "auto") {
    double estimate = 0;
    pg_guard([&] {
      Relation rel = table_open(source, AccessShareLock);
      estimate = rel->rd_rel->reltuples >= 0 ? rel->rd_rel->reltuples : RelationGetNumberOfBlocks(rel) * 100.0;
      table_close(rel, AccessShareLock);
    });
    background = estimate >= kBackgroundBuildRows;
  }
  op_buffer().flush();  // the caller's own changes, as the caller
  if (background)
    start_job(def, "backfill", kDefaultBatchRows, true);
  else
    run_as_table_owner(def.source, [&] { build_trees(def, "aggr_create"); });
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_drop) {
  require_writable("aggr_drop()");
  AggregateDef def;
  load_aggregate_by_name(text_arg(fcinfo, 0, "aggregate name"), def, false);
  bool table_exists = false;
  pg_guard([&] {
    char *relname = get_rel_name(def.source);
    table_exists = relname != nullptr;
    if (table_exists && !pg_class_ownercheck(def.source, GetUserId()))
      aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
  });
  lock_job_steps(def.id);  // before the aggregate lock: a swap step takes them in this order
  pg_guard([&] { lock_aggregate(def.id, AccessExclusiveLock); });
  // Again under the lock: a rebuild's swap may have committed a new version
  // of the definition while we waited.
  int32 id = def.id;
  if (!load_aggregate_by_id(id, def))
    throw UserError(ERRCODE_UNDEFINED_OBJECT, "aggregate \"" + def.name + "\" was dropped concurrently");
  op_buffer().flush();
  if (table_exists) {
    pg_guard([&] {
      Relation rel = table_open(def.source, ShareRowExclusiveLock);
      char *qualified =
          quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)), RelationGetRelationName(rel));
      char *sql = psprintf("DROP TRIGGER IF EXISTS aggr_ext_%d ON %s; DROP TRIGGER IF EXISTS aggr_ext_%d_truncate ON %s;",
                           def.id, qualified, def.id, qualified);
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
      if (SPI_execute(sql, false, 0) < 0) elog(ERROR, "could not drop the triggers of aggregate \"%s\"", def.name.c_str());
      SPI_finish();
      table_close(rel, NoLock);
    });
  }
  discard_job(def);
  drop_generations_except(def, -1, -1);
  delete_aggregate(def);
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_clear) {
  require_writable("aggr_clear()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  op_buffer().flush();
  if (t.def.build_generation != 0)
    throw UserError(ERRCODE_OBJECT_IN_USE, "a backfill or rebuild of aggregate \"" + t.def.name + "\" is running",
                    "Cancel it first with SELECT aggr_backfill_cancel(" + sql_literal(t.def.name) + ").");
  bool one = PG_NARGS() > 1 && !PG_ARGISNULL(1);
  if (one) {
    std::string ns = namespace_arg(fcinfo, 1, t);
    clear_trees(t.def, t.def.generation, &ns);
  } else {
    clear_trees(t.def, t.def.generation, nullptr);
  }
  update_aggregate_state(t.def, "needs_backfill");
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_set_write_mode) {
  require_writable("aggr_set_write_mode()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  std::string mode = text_arg(fcinfo, 1, "mode");
  if (mode != "direct" && mode != "deferred")
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown write mode \"" + mode + "\"",
                    "direct: writers update the tree at commit (writers of one tree wait for each other); "
                    "deferred: writers append deltas that reads add in and a merger folds into the tree.");
  if (mode == "deferred" && t.agg->sum().kind == SumKind::Float)
    throw UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                    "aggregate \"" + t.def.name + "\" sums floating-point values: it must stay in direct mode",
                    "Pending deltas are added in by subtraction, which is not exact for floats (Infinity - Infinity).");
  if (t.def.deferred) require_read_committed("switching a deferred aggregate's write mode");
  op_buffer().flush();
  int32 id = t.def.id;
  // Writers hold the aggregate lock from flush to commit: with it, no delta
  // and no direct tree write is in flight while the mode changes.
  pg_guard([&] { lock_aggregate(id, AccessExclusiveLock); });
  while (merge_deltas_as_owner(id) > 0) {  // a direct aggregate has no pending deltas
  }
  update_aggregate_write_mode(id, mode == "deferred");
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_merge) {
  require_writable("aggr_merge()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  require_read_committed("aggr_merge");
  op_buffer().flush();
  return Int64GetDatum(merge_deltas_as_owner(t.def.id));
}

AGGR_FUNCTION(aggr_job_start) {
  require_writable("aggr_backfill()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  pg_guard([&] { check_no_row_security(t.def); });  // a forced policy would hide rows from the job's scan
  std::string kind = text_arg(fcinfo, 1, "kind");
  if (kind != "backfill" && kind != "rebuild") throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown job kind " + kind);
  if (PG_ARGISNULL(2) || PG_ARGISNULL(3)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "batch_size and background must not be NULL");
  op_buffer().flush();
  start_job(t.def, kind, PG_GETARG_INT32(2), PG_GETARG_BOOL(3));
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_job_step) {
  require_writable("aggr_job_step()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  return BoolGetDatum(job_step_as_owner(t.def.id));
}

AGGR_FUNCTION(aggr_backfill_cancel) {
  require_writable("aggr_backfill_cancel()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  cancel_job(t.def);
  PG_RETURN_VOID();
}

// (phase, cancelled, error, rows_done, rows_total, progress, background) of the
// running job, for aggr_wait (which cannot read aggr_internal as a non-superuser).
AGGR_FUNCTION(aggr_job_status) {
  Target t = open_aggregate(fcinfo, Access::Read, false);
  ensure_job_worker(t.def.id);
  JobRow job = load_job(t.def.id);
  std::string text = job_progress_text(job);
  Datum result = 0;
  pg_guard([&] {
    Datum v[7];
    bool n[7] = {!job.exists, !job.exists, job.error.empty(), !job.exists, !job.exists, false, !job.exists};
    v[0] = job.exists ? CStringGetTextDatum(job.phase.c_str()) : (Datum)0;
    v[1] = BoolGetDatum(job.cancelled);
    v[2] = job.error.empty() ? (Datum)0 : CStringGetTextDatum(job.error.c_str());
    v[3] = Int64GetDatum(job.rows_done);
    v[4] = Int64GetDatum(std::max(job.rows_total, job.rows_done));
    v[5] = CStringGetTextDatum(text.c_str());
    v[6] = BoolGetDatum(job.background);
    result = result_row(fcinfo, v, n);
  });
  return result;
}

// ---------------------------------------------------------------- operations

AGGR_FUNCTION(aggr_status) {
  Target t = open_aggregate(fcinfo, Access::Read, false);
  op_buffer().flush();
  ensure_job_worker(t.def.id);
  JobRow job = load_job(t.def.id);
  std::string job_text = job_progress_text(job);
  int32 generation = t.def.generation;
  int64 namespaces = 0, entries = 0, nodes = 0, bytes = 0, drift = 0;
  int32 depth = 0;
  Sum total;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation trees = table_open(r.trees, AccessShareLock);
    Relation nodes_rel = table_open(r.nodes, AccessShareLock);
    PushCopiedSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
    UpdateActiveSnapshotCommandId();
    Snapshot snap = GetActiveSnapshot();
    ScanKeyData key[2];
    ScanKeyInit(&key[0], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(t.def.id));
    ScanKeyInit(&key[1], 3, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(generation));
    SysScanDesc scan = systable_beginscan(trees, r.trees_aggr_ns_key, true, snap, 2, key);
    HeapTuple tup;
    while (HeapTupleIsValid(tup = systable_getnext(scan))) {
      TreeRow row = tree_row_from_tuple(trees, tup);
      ++namespaces;
      entries += static_cast<int64>(row.meta.count);
      nodes += static_cast<int64>(row.meta.nodes);
      drift += row.drift;
      depth = std::max(depth, static_cast<int32>(row.meta.height));
      total += row.meta.sum;
      ScanKeyData nk;
      ScanKeyInit(&nk, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(row.tree_id));
      SysScanDesc ns = systable_beginscan(nodes_rel, r.nodes_pkey, true, snap, 1, &nk);
      HeapTuple n;
      while (HeapTupleIsValid(n = systable_getnext(ns))) bytes += n->t_len;
      systable_endscan(ns);
    }
    systable_endscan(scan);
    PopActiveSnapshot();
    table_close(nodes_rel, AccessShareLock);
    table_close(trees, AccessShareLock);
  });
  if (t.def.deferred && generation != 0) {  // entries counts the pending deltas too
    EntryOrdering order(t.agg->layout());
    Snapshot snap = nullptr;
    pg_guard([&] { snap = GetTransactionSnapshot(); });
    for (const std::string &ns : pending_namespaces(t.def.id, generation, snap))
      entries += pending_changes(t.def, ns, order, snap).count_change();
  }
  Datum result = 0;
  pg_guard([&] {
    Datum v[18];
    bool n[18] = {};
    v[0] = CStringGetTextDatum(t.def.name.c_str());
    v[1] = ObjectIdGetDatum(t.def.source);
    v[2] = CStringGetTextDatum(t.def.state.c_str());
    v[3] = CStringGetTextDatum(t.def.key_spec.c_str());
    n[4] = t.def.sum_spec.empty();
    v[4] = n[4] ? (Datum)0 : CStringGetTextDatum(t.def.sum_spec.c_str());
    n[5] = t.def.ns_spec.empty();
    v[5] = n[5] ? (Datum)0 : CStringGetTextDatum(t.def.ns_spec.c_str());
    v[6] = Int64GetDatum(namespaces);
    v[7] = Int64GetDatum(entries);
    v[8] = Int32GetDatum(depth);
    v[9] = Int64GetDatum(nodes);
    v[10] = Int64GetDatum(bytes);
    v[11] = Int64GetDatum(drift);
    n[12] = t.agg->sum().kind == SumKind::None;
    v[12] = n[12] ? (Datum)0 : t.agg->sum().to_numeric(total);
    // The running job, if any: progress, rate and ETA of its scan.
    n[13] = n[14] = n[15] = n[16] = n[17] = !job.exists;
    if (job.exists) {
      double seconds = std::max(1e-3, (double)(job.updated - job.started) / 1e6);
      double rate = job.rows_done / seconds;
      int64 total = std::max(job.rows_total, job.rows_done);
      v[13] = CStringGetTextDatum(job_text.c_str());
      v[14] = Int64GetDatum(job.rows_done);
      v[15] = Int64GetDatum(total);
      v[16] = Float8GetDatum(rate);
      n[17] = job.phase != "scan" || rate <= 0;
      v[17] = Float8GetDatum(rate > 0 ? (total - job.rows_done) / rate : 0);
    }
    result = result_row(fcinfo, v, n);
  });
  return result;
}
