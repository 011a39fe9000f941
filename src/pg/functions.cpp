// SQL-callable functions: definition, queries, operations.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <set>

#include "definition.hpp"
#include "jobs.hpp"
#include "deltas.hpp"
#include "maintenance.hpp"
#include "owner_context.hpp"
#include "reads.hpp"
#include "result_row.hpp"

extern "C" {
#include "access/tupconvert.h"
#include "utils/float.h"
#include "storage/predicate.h"
#include "utils/rls.h"
}

using namespace aggr;
using namespace aggr::pg;

namespace {

enum class Access { Read, Own };


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
  // The aggregate of a partitioned table: its parts (one per leaf
  // partition, each with its own trees), as the read's snapshot sees them.
  bool partitioned = false;
  std::vector<Target> parts;
};

// Compile::Never: the caller needs only the catalog row (a cancel, a
// status), so an aggregate whose expressions no longer compile (a function
// of its key that now raises, dropped, or whose EXECUTE was revoked) can
// still be cancelled and looked at; t.agg is then nullptr.
enum class Compile { Always, Never };

// Whether the current role may SELECT the whole table: then reading the
// aggregate needs no column list (which only a compiled aggregate has).
bool whole_table_readable(const AggregateDef &def, Oid role = InvalidOid) {
  bool readable = false;
  pg_guard([&] {
    readable = get_rel_name(def.source) != nullptr &&
               pg_class_aclcheck(def.source, OidIsValid(role) ? role : GetUserId(), ACL_SELECT) == ACLCHECK_OK;
  });
  return readable;
}

void check_ready(const AggregateDef &def) {
  if (def.state == "ready") return;
  ensure_job_worker(def.id);  // after a restart, resume the job
  JobRow job = load_job(def.id);
  std::string detail = job.exists ? "; " + job_progress_text(job) : "";
  throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  "aggregate \"" + def.name + "\" is not ready (state: " + def.state + detail + ")",
                  job.exists && !job.cancelled ? "Wait for the job: CALL aggr_wait(" + sql_literal(def.name) + ")."
                                               : "Fill it with CALL aggr_backfill(" + sql_literal(def.name) + ").");
}

// The parts of a partitioned table's aggregate, for a read by its name:
// the parent's privileges were checked (SELECT on the partitioned table
// reads every partition through it, as a query would); each part is
// compiled as its own table's owner and must be ready.
void open_parts(Target &t, bool require_ready) {
  Oid user = InvalidOid;
  pg_guard([&] { user = GetUserId(); });
  for (const AggregateDef &def : load_children(t.def.id, t.snapshot)) {
    Target part;
    part.def = def;
    part.snapshot = t.snapshot;
    if (user == table_owner(def.source))  // the owner's own read: nothing to switch (reads are hot)
      part.agg = &compiled_aggregate(part.def);
    else
      run_as_table_owner(def.source, [&] { part.agg = &compiled_aggregate(part.def); });
    part.agg->check_not_stale();
    part.agg->check_logged();
    if (require_ready) check_ready(part.def);
    t.parts.push_back(std::move(part));
  }
}

// Both compile as the table owner: compiling folds constants, which runs
// the owner's IMMUTABLE functions (and whatever they call), and must not do
// so as a superuser reading or maintaining another role's aggregate. A read
// evaluates no expression of the aggregate (only its key layout is used),
// so the owner's entry serves it; writers still evaluate as themselves, in
// the triggers. Maintenance (Access::Own) checks ownership first, then
// works inside run_as_table_owner, where compiled_aggregate hands out that
// same entry.
Target open_aggregate(FunctionCallInfo fcinfo, Access access, bool require_ready = true,
                      Compile compile = Compile::Always) {
  Target t;
  // A read answers as of its query's snapshot, definition included: a
  // REPEATABLE READ transaction keeps the generation and write mode it saw
  // across a rebuild's swap or a mode switch. Maintenance acts on the latest.
  if (access == Access::Read)
    pg_guard([&] { t.snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot(); });
  load_aggregate_by_name(text_arg(fcinfo, 0, "aggregate name"), t.def, false, t.snapshot);
  if (compile == Compile::Never && access == Access::Own) {
    check_access(t.def, nullptr, access);
  } else if (compile == Compile::Never && whole_table_readable(t.def)) {
    pg_guard([&] { check_no_row_security(t.def); });  // the rest of check_read_privileges
  } else if (access == Access::Own) {
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
    t.agg->check_logged();
    check_access(t.def, t.agg, access);
  }
  if (require_ready) check_ready(t.def);
  t.partitioned = is_partitioned_aggregate(t.def);
  if (t.partitioned && access == Access::Read && compile == Compile::Always) open_parts(t, require_ready);
  return t;
}

// The aggregates a maintenance call acts on: the aggregate itself, or, for
// the aggregate of a partitioned table, each of its parts (latest versions).
std::vector<AggregateDef> acted_on(const Target &t) {
  if (!t.partitioned) return {t.def};
  return load_children(t.def.id);
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

// Values of a scalar or ROW(...) argument (at most `max_fields` of them),
// each of whatever type the caller passed. False when SQL NULL. `what`
// and `of_what` name the argument and the columns it is matched with.
bool fields_arg(FunctionCallInfo fcinfo, int argno, const Target &t, std::size_t max_fields, const char *what,
                const char *of_what, std::vector<KeyValue> &values) {
  if (PG_NARGS() <= argno || PG_ARGISNULL(argno)) return false;
  std::size_t count = 0;
  KeyValue vals[INDEX_MAX_KEYS];
  pg_guard([&] {
    Oid type = get_fn_expr_argtype(fcinfo->flinfo, argno);
    if (!OidIsValid(type)) ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not determine type of %s", what)));
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
    // A composite type keeps the slots of its dropped attributes (ALTER
    // TYPE ... DROP ATTRIBUTE): they are no fields of the value.
    int live = 0;
    for (int i = 0; i < desc->natts; ++i) live += TupleDescAttr(desc, i)->attisdropped ? 0 : 1;
    if (live > (int)max_fields)
      ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                      errmsg("%s has %d fields but the %s of aggregate \"%s\" has %d columns", what, live, of_what,
                             t.def.name.c_str(), (int)max_fields)));
    Datum *fields = (Datum *)palloc(desc->natts * sizeof(Datum));
    bool *fnull = (bool *)palloc(desc->natts * sizeof(bool));
    heap_deform_tuple(&tuple, desc, fields, fnull);
    for (int i = 0; i < desc->natts; ++i) {
      Form_pg_attribute a = TupleDescAttr(desc, i);
      if (!a->attisdropped) vals[count++] = KeyValue{fields[i], fnull[i], a->atttypid};
    }
    ReleaseTupleDesc(desc);
  });
  values.assign(vals, vals + count);
  return true;
}

// Key values of a bound or rank argument: a scalar, or ROW(...) for a
// multi-column key (a shorter ROW is a prefix), each of whatever type the
// caller passed: KeyProbe compares them as SQL would. False when SQL NULL.
bool key_arg(FunctionCallInfo fcinfo, int argno, const Target &t, std::vector<KeyValue> &values) {
  return fields_arg(fcinfo, argno, t, t.agg->key_columns(), "key value", "key", values);
}

std::size_t pk_columns(const Target &t) { return t.agg->layout().size() - t.agg->key_columns(); }

// The primary key values of an id argument (a scalar, or ROW(...) for a
// multi-column primary key). False when SQL NULL or a field is NULL: no
// row has that id.
bool id_arg(FunctionCallInfo fcinfo, int argno, const Target &t, std::vector<KeyValue> &values) {
  std::size_t npk = pk_columns(t);
  if (!fields_arg(fcinfo, argno, t, npk, "id", "primary key", values)) return false;
  if (values.size() != npk)
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                    "id has " + std::to_string(values.size()) + " fields but the primary key of aggregate \"" +
                        t.def.name + "\" has " + std::to_string(npk) + " columns",
                    "Pass a multi-column primary key as ROW(...).");
  for (const KeyValue &v : values)
    if (v.isnull) return false;
  return true;
}

// A whole key (every key column): a scalar, ROW(...) for a multi-column
// key. SQL NULL is the NULL key of a single-column key.
void whole_key_arg(FunctionCallInfo fcinfo, int argno, const Target &t, const char *what, std::vector<KeyValue> &values) {
  std::size_t nkey = t.agg->key_columns();
  if (!key_arg(fcinfo, argno, t, values)) {
    if (nkey != 1)
      throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                      std::string(what) + " must be ROW(...) of the " + std::to_string(nkey) + " key columns, not NULL");
    values.assign(1, KeyValue{(Datum)0, true, UNKNOWNOID});
    return;
  }
  if (values.size() != nkey)
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                    std::string(what) + " has " + std::to_string(values.size()) + " fields but the key of aggregate \"" +
                        t.def.name + "\" has " + std::to_string(nkey) + " columns",
                    "Pass every key column: an entry is named by its whole key and its id.");
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
// transaction's own flushed changes). Call close() when the read succeeded.
class ReadTree {
 public:
  // The tree is read with every change this transaction flushed (the
  // query's snapshot with the command id advanced); changes of commands the
  // query's own snapshot does not see yet (an open cursor fetching after
  // later writes) are taken back out from the op buffer's journal.
  ReadTree(const Target &t, const std::string &ns) : order_(t.agg->layout()), uncaught_at_open_(std::uncaught_exceptions()) {
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
    read_latest_if_written_over_unseen(t, ns, query_cid);
    store_ = std::make_unique<PgNodeStore>(nodes_, r_.nodes_pkey, row_, t.agg->tree_config(), snap_, false);
    tree_ = std::make_unique<Tree>(*store_, order_, t.agg->tree_config(), row_.exists ? row_.meta : TreeMeta{});
    std::vector<Delta> deltas;
    if (t.def.deferred) deltas = load_deltas(t.def.id, t.def.generation, ns, snap_).deltas;
    std::vector<Delta> undo = op_buffer().undo_since(t.def.id, ns, query_cid, order_, t.def.name);
    check_undo_suffices(t, ns, query_cid);
    deltas.insert(deltas.end(), std::make_move_iterator(undo.begin()), std::make_move_iterator(undo.end()));
    pending_ = PendingChanges(std::move(deltas), order_);
  }
  // READ COMMITTED: this transaction's flush (this read's own, after waiting
  // for another writer's tree lock) wrote the tree on top of a version the
  // query's snapshot does not see. The tree row is then this transaction's,
  // but the other writer's nodes are invisible to that snapshot, so the tree
  // could not even be walked with it. Read it as of now instead, as an UPDATE
  // under READ COMMITTED reads the row version it waited for: this
  // transaction holds the tree's lock, so nobody has changed it since.
  // (Under REPEATABLE READ such a write is a serialization failure; a read as
  // of an earlier command, an open cursor, is refused by check_undo_suffices.)
  void read_latest_if_written_over_unseen(const Target &t, const std::string &ns, CommandId query_cid) {
    if (!row_.exists) return;
    TransactionId base = foreign_tree_base(t.def.id, t.def.generation, ns);
    bool unseen = false;
    pg_guard([&] {
      unseen = TransactionIdIsValid(base) && TransactionIdIsCurrentTransactionId(row_.xmin) &&
               XidInMVCCSnapshot(base, query_snap_);
    });
    if (!unseen) return;
    check_undo_suffices(t, ns, query_cid);
    pg_guard([&] {
      PopActiveSnapshot();
      PushActiveSnapshot(GetLatestSnapshot());
      UpdateActiveSnapshotCommandId();
      snap_ = query_snap_ = GetActiveSnapshot();  // whole rows too are fetched as of now
      row_ = load_tree_row(trees_, r_, t.def.id, t.def.generation, ns, snap_);
    });
  }
  // Releases the relations and the snapshot: the end of every read that
  // succeeded (its errors are raised like any other).
  void close() {
    if (!trees_ && !nodes_ && !pushed_) return;  // closed already
    Relation trees = trees_, nodes = nodes_;
    bool pushed = pushed_;
    trees_ = nodes_ = nullptr;
    pushed_ = false;
    pg_guard([&] {
      if (nodes) table_close(nodes, AccessShareLock);
      if (trees) table_close(trees, AccessShareLock);
      if (pushed) PopActiveSnapshot();
    });
  }
  // Not closed while an exception is leaving the read: the error it becomes
  // aborts the (sub)transaction, whose abort closes the relations (resource
  // owner) and pops the snapshot (AtAbort_Snapshot / AtSubAbort_Snapshot).
  // Releasing them here as well could itself raise, inside a destructor,
  // where the error could only be swallowed: nothing is called then.
  // Not closed without an exception (a caller forgot close()): released
  // here, or the portal would pop this snapshot instead of its own; these
  // calls fail only on an internal inconsistency, which then terminates
  // the backend (noexcept) instead of being swallowed.
  ~ReadTree() {
    if (std::uncaught_exceptions() == uncaught_at_open_) close();
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
  // before(probe).count, reading no sums.
  std::uint64_t count_before(const Probe &probe) const {
    return static_cast<std::uint64_t>(static_cast<int64>(tree_->count_before(probe)) +
                                      pending_.count_before(probe, nullptr));
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
  int uncaught_at_open_;  // exceptions in flight when opened: more at destruction means unwinding
  Relations r_{};
  Relation trees_ = nullptr, nodes_ = nullptr;
  Snapshot snap_ = nullptr, query_snap_ = nullptr;
  bool pushed_ = false;
  TreeRow row_;
  std::unique_ptr<PgNodeStore> store_;
  std::unique_ptr<Tree> tree_;
  PendingChanges pending_;
};

// Before (or after) exactly one entry, given encoded: where a row read
// from the table sorts.
class EncodedEntryProbe : public Probe {
 public:
  EncodedEntryProbe(const Ordering &order, std::string_view key) : order_(order), key_(key) {}
  int compare_to(std::string_view entry) const override { return order_.compare(key_, entry); }

 private:
  const Ordering &order_;
  std::string_view key_;
};

// A read of an aggregate: its one tree per namespace, or, for the
// aggregate of a partitioned table, one tree per part (leaf partition)
// read with the same snapshot and combined. Positions are positions in
// the combined order (key, then primary key: what ORDER BY gives over the
// partitioned table). Counts and sums add up; the entry at a position is
// found by a selection over the parts' trees by key (split), never by
// walking entries.
class Reader {
 public:
  Reader(const Target &t, const std::string &ns) : order_(t.agg->layout()) {
    if (!t.partitioned) {
      parts_.push_back(std::make_unique<ReadTree>(t, ns));
      return;
    }
    for (const Target &part : t.parts) parts_.push_back(std::make_unique<ReadTree>(part, ns));
  }
  void close() {
    for (auto &p : parts_) p->close();
  }
  std::size_t parts() const { return parts_.size(); }
  ReadTree &part(std::size_t i) { return *parts_[i]; }
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (const auto &p : parts_) n += p->count();
    return n;
  }
  Prefix before(const Probe &probe) const {
    Prefix total;
    for (const auto &p : parts_) add(total, p->before(probe));
    return total;
  }
  std::uint64_t count_before(const Probe &probe) const {
    std::uint64_t n = 0;
    for (const auto &p : parts_) n += p->count_before(probe);
    return n;
  }
  Prefix range(const Probe *lower, const Probe *upper) const {
    Prefix total;
    for (const auto &p : parts_) add(total, p->range(lower, upper));
    return total;
  }
  // Visits the entries at positions [from, to) in order: visit(position,
  // entry, part). Each part's cursor starts where split() puts it; only
  // the visited entries are walked.
  template <typename Visit>
  void forward(std::uint64_t from, std::uint64_t to, Visit &&visit) {
    if (to <= from) return;
    if (parts_.size() == 1) {
      std::uint64_t pos = from;
      for (MergedCursor c = parts_[0]->cursor(from); c.valid() && pos < to; c.next(), ++pos) visit(pos, c.entry(), 0);
      return;
    }
    std::vector<std::uint64_t> starts = split(from);
    std::vector<std::uint64_t> ends(parts_.size(), std::numeric_limits<std::uint64_t>::max());
    PartMerge merge(*this, starts, ends);
    for (std::uint64_t pos = from; pos < to && !merge.done(); ++pos) {
      visit(pos, merge.entry(), merge.part());
      merge.next();
    }
  }

 private:
  static void add(Prefix &total, const Prefix &p) {
    total.count += p.count;
    total.sum += p.sum;
  }
  struct Candidate {
    std::size_t part;
    std::uint64_t pos, weight;
    Entry entry;
  };
  // The state of a selection (split): per part, the positions [lo, hi)
  // that may still hold the wanted entry; a part whose range shrank to
  // aggr_ext.partition_merge_rows entries or fewer is read into memory
  // once (one descent, then a cursor walk): from then on its candidates
  // and ranks are found there by binary search, without a descent.
  struct Selection {
    std::vector<std::uint64_t> lo, hi;
    std::vector<std::vector<Entry>> loaded;  // part i's entries at [base[i], base[i] + size)
    std::vector<std::uint64_t> base;
  };
  void load_small_ranges(Selection &s) {
    const auto limit = static_cast<std::uint64_t>(partition_merge_rows);
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      std::uint64_t w = s.hi[i] - s.lo[i];
      if (w == 0 || w > limit || !s.loaded[i].empty()) continue;
      std::vector<Entry> &out = s.loaded[i];
      out.reserve(w);
      for (MergedCursor c = parts_[i]->cursor(s.lo[i]); out.size() < w; c.next()) {
        if (!c.valid()) throw CorruptNode("the tree holds fewer entries than its count");
        out.push_back(c.entry());
      }
      s.base[i] = s.lo[i];
    }
  }
  Candidate candidate_at(const Selection &s, std::size_t part, std::uint64_t pos, std::uint64_t weight) {
    if (!s.loaded[part].empty()) return Candidate{part, pos, weight, s.loaded[part][pos - s.base[part]]};
    MergedCursor c = parts_[part]->cursor(pos);
    if (!c.valid()) throw CorruptNode("the tree holds fewer entries than its count");
    return Candidate{part, pos, weight, c.entry()};
  }
  // How many entries of part i come before the candidate, within [lo, hi].
  std::uint64_t rank_in(const Selection &s, std::size_t i, const Candidate &c) {
    if (i == c.part) return c.pos;
    if (s.hi[i] == s.lo[i]) return s.lo[i];
    if (!s.loaded[i].empty()) {
      const std::vector<Entry> &e = s.loaded[i];
      auto it = std::partition_point(e.begin(), e.end(),
                                     [&](const Entry &x) { return order_.compare(x.key, c.entry.key) < 0; });
      return std::clamp<std::uint64_t>(s.base[i] + static_cast<std::uint64_t>(it - e.begin()), s.lo[i], s.hi[i]);
    }
    EncodedEntryProbe probe(order_, c.entry.key);
    return std::clamp(parts_[i]->count_before(probe), s.lo[i], s.hi[i]);
  }
  // The weighted median of the middle entries of the parts' ranges: at
  // least a quarter of the remaining entries lie on each side of it.
  Candidate median_candidate(const Selection &s, std::uint64_t weight) {
    std::vector<Candidate> cands;
    for (std::size_t i = 0; i < parts_.size(); ++i)
      if (s.hi[i] > s.lo[i]) cands.push_back(candidate_at(s, i, s.lo[i] + (s.hi[i] - s.lo[i]) / 2, s.hi[i] - s.lo[i]));
    std::sort(cands.begin(), cands.end(),
              [&](const Candidate &a, const Candidate &b) { return order_.compare(a.entry.key, b.entry.key) < 0; });
    std::size_t m = 0;
    for (std::uint64_t acc = 0; m + 1 < cands.size(); ++m)
      if ((acc += cands[m].weight) * 2 >= weight) break;
    return cands[m];
  }
  // The entry of the largest remaining range near the wanted entry's
  // proportional place in it: where it is when the parts hold alike
  // distributed keys (hash partitions), so the next rounds close in fast.
  Candidate interpolated_candidate(const Selection &s, std::uint64_t weight, std::uint64_t k, bool in_memory) {
    std::size_t m = 0;
    for (std::size_t i = 1; i < parts_.size(); ++i)
      if (s.hi[i] - s.lo[i] > s.hi[m] - s.lo[m]) m = i;
    std::uint64_t w = s.hi[m] - s.lo[m];
    auto guess = static_cast<long double>(k) * w / weight;
    // The guess is off by about the square root of its distance from the
    // nearer end of the range: moved twice that away from that end, the
    // candidate lands on the far side of the wanted entry, so the next
    // round closes the range from both sides instead of from one again.
    // Once every range is in memory, rounds are cheap: the plain guess.
    long double near = std::min(guess, static_cast<long double>(w) - guess);
    long double margin = in_memory ? 0 : 2 * std::sqrt(near) + 1;
    guess += guess * 2 < w ? margin : -margin;
    auto offset = static_cast<std::uint64_t>(std::clamp<long double>(guess, 0, static_cast<long double>(w - 1)));
    return candidate_at(s, m, s.lo[m] + offset, w);
  }

  // The parts' cursors merged in entry order: a binary heap of the parts by
  // their current entry (about 2 log(parts) comparisons a step, where a scan
  // of every cursor took one per part). Part i is read from pos[i] up to
  // end[i] (exclusive); pos() says where each part stands.
  class PartMerge {
   public:
    PartMerge(Reader &r, std::vector<std::uint64_t> pos, const std::vector<std::uint64_t> &end)
        : order_(r.order_), pos_(std::move(pos)), end_(end), cursors_(r.parts_.size()) {
      for (std::size_t i = 0; i < cursors_.size(); ++i) {
        if (pos_[i] >= end_[i]) continue;
        cursors_[i] = std::make_unique<MergedCursor>(r.parts_[i]->cursor(pos_[i]));
        if (cursors_[i]->valid()) heap_.push_back(i);
      }
      std::make_heap(heap_.begin(), heap_.end(), later());
    }
    bool done() const { return heap_.empty(); }
    std::size_t part() const { return heap_.front(); }
    const Entry &entry() const { return cursors_[heap_.front()]->entry(); }
    const std::vector<std::uint64_t> &pos() const { return pos_; }
    void next() {
      std::pop_heap(heap_.begin(), heap_.end(), later());
      std::size_t i = heap_.back();
      cursors_[i]->next();
      if (++pos_[i] < end_[i] && cursors_[i]->valid())
        std::push_heap(heap_.begin(), heap_.end(), later());
      else
        heap_.pop_back();
    }

   private:
    struct Later {  // heap order: the part with the smallest entry on top
      const PartMerge *m;
      bool operator()(std::size_t a, std::size_t b) const {
        return m->order_.compare(m->cursors_[a]->entry().key, m->cursors_[b]->entry().key) > 0;
      }
    };
    Later later() const { return Later{this}; }
    const EntryOrdering &order_;
    std::vector<std::uint64_t> pos_;
    std::vector<std::uint64_t> end_;
    std::vector<std::unique_ptr<MergedCursor>> cursors_;
    std::vector<std::size_t> heap_;
  };

  // How many entries of each part come before the entry at combined
  // position g (every part's count when g is past the end), found by key:
  // each round ranks one candidate entry in every part (one O(log n)
  // descent each, or a binary search in a part's range once that is in
  // memory) and keeps, per part, only the positions on the wanted entry's
  // side of it. Every fourth round takes the weighted median of the parts'
  // middle entries (it drops at least a quarter of what remains: at most
  // O(log N) such rounds); the others an interpolated guess, which closes
  // in within a few rounds when the parts' keys are alike distributed.
  // Ranges of partition_merge_rows entries or fewer are read into memory,
  // so the last rounds cost no descent.
  std::vector<std::uint64_t> split(std::uint64_t g) {
    std::size_t np = parts_.size();
    Selection s{std::vector<std::uint64_t>(np, 0), std::vector<std::uint64_t>(np), std::vector<std::vector<Entry>>(np),
                std::vector<std::uint64_t>(np, 0)};
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < np; ++i) total += s.hi[i] = parts_[i]->count();
    if (g >= total) return s.hi;
    std::uint64_t k = g;  // rank of the wanted entry among the remaining ones
    for (int round = 0;; ++round) {
      if (round > 4 * (256 + static_cast<int>(np)))
        throw CorruptNode("the trees of a partitioned aggregate do not order their entries");
      load_small_ranges(s);
      std::uint64_t weight = 0;
      for (std::size_t i = 0; i < np; ++i) weight += s.hi[i] - s.lo[i];
      if (weight == 0) throw CorruptNode("the trees of a partitioned aggregate do not order their entries");
      bool in_memory = true;
      for (std::size_t i = 0; i < np; ++i) in_memory = in_memory && (s.hi[i] == s.lo[i] || !s.loaded[i].empty());
      Candidate c = round % 4 != 3 ? interpolated_candidate(s, weight, k, in_memory) : median_candidate(s, weight);
      std::vector<std::uint64_t> b(np);
      std::uint64_t r = 0;
      for (std::size_t i = 0; i < np; ++i) r += (b[i] = rank_in(s, i, c)) - s.lo[i];
      if (r == k) return b;
      if (r > k) {
        s.hi = b;
      } else {
        k -= r + 1;
        s.lo = b;
        s.lo[c.part] = c.pos + 1;
      }
    }
  }

  EntryOrdering order_;
  std::vector<std::unique_ptr<ReadTree>> parts_;
};

Prefix range_of(FunctionCallInfo fcinfo, const Target &t, Reader &rt) {
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
  bool out_of_range = resolved < 0 || (!past_end_ok && static_cast<std::uint64_t>(resolved) >= count);
  if (out_of_range && count == 0)  // no offset is valid: "from 0 to -1" would say so obscurely
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                    "offset " + std::to_string(offset) + " is out of range for aggregate \"" + name + "\"",
                    "The range is empty: no entry lies within the bounds and namespace given.");
  if (out_of_range)
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE,
                    "offset " + std::to_string(offset) + " is out of range for aggregate \"" + name + "\"",
                    "It has " + std::to_string(count) + " entries; offsets run from 0 to " +
                        std::to_string(static_cast<int64>(count) - 1) + ", or from -1 backwards.");
  return static_cast<std::uint64_t>(resolved);
}

// Positions [lo, hi) of the entries of rt within bounds.
struct Span {
  std::uint64_t lo = 0, hi = 0;
  std::uint64_t size() const { return hi > lo ? hi - lo : 0; }
};

// The span within the bounds at arguments first (lower), first + 1 (upper),
// first + 2 and first + 3 (lower_inclusive, upper_inclusive), as aggr_count
// reads them; absent bounds leave that end open.
Span span_of(FunctionCallInfo fcinfo, const Target &t, Reader &rt, int first) {
  Span s;
  s.hi = rt.count();
  std::vector<KeyValue> v;
  if (key_arg(fcinfo, first, t, v)) {
    KeyProbe lower(t.agg->layout(), v, !bool_arg(fcinfo, first + 2, true));
    s.lo = rt.before(lower).count;
  }
  if (key_arg(fcinfo, first + 1, t, v)) {
    KeyProbe upper(t.agg->layout(), v, bool_arg(fcinfo, first + 3, true));
    s.hi = rt.before(upper).count;
  }
  return s;
}

// Entries at positions [from, to), visited in aggregate order or in
// reverse.
struct Window {
  std::uint64_t from = 0, to = 0;
  bool reverse = false;
};

// MergedCursor moves forward only: a reverse window is read in chunks from
// its end, each collected forward (one O(log n) seek per chunk) and visited
// backwards, so memory stays bounded whatever the limit.
constexpr std::uint64_t kReverseChunk = 1000;

template <typename Visit>
void visit_window(Reader &rt, const Window &w, Visit &&visit) {
  if (w.to <= w.from) return;
  if (!w.reverse) {
    rt.forward(w.from, w.to, visit);
    return;
  }
  struct Visited {
    Entry entry;
    std::size_t part;
  };
  std::vector<Visited> chunk;
  for (std::uint64_t end = w.to; end > w.from;) {
    std::uint64_t begin = end - std::min(kReverseChunk, end - w.from);
    chunk.clear();
    rt.forward(begin, end, [&](std::uint64_t, const Entry &e, std::size_t part) { chunk.push_back(Visited{e, part}); });
    for (std::size_t i = chunk.size(); i-- > 0;) visit(begin + i, chunk[i].entry, chunk[i].part);
    end = begin;
  }
}

// `limit` entries from the `offset`-th entry of a span, counted from its
// start, or from its end when descending (then in descending order).
// Negative offsets count from the other end, as in aggr_at.
Window offset_window(const Target &t, const Span &span, int64 offset, std::uint64_t limit, bool descending,
                     bool past_end_ok) {
  // Past the end (a page may start there) is the end: the positions beyond
  // it belong to entries outside the bounds.
  std::uint64_t k = std::min(resolve_offset(offset, span.size(), t.def.name, past_end_ok), span.size());
  Window w;
  w.reverse = descending;
  if (!descending) {
    w.from = span.lo + k;
    w.to = w.from + std::min(limit, span.size() - k);
  } else {
    w.to = span.hi - k;
    w.from = w.to - std::min(limit, span.size() - k);
  }
  return w;
}

// The key / id text of a result row is meant to be passed back (a keyset
// cursor, a bound): it must read back as the same value. Floats are written
// shortest-exact whatever the session's extra_float_digits (below 1 it
// rounds, and a cursor at 0.3 lands before an entry at 0.30000000000000004).
template <typename F>
std::string exact_text(F &&format) {
  const int saved = extra_float_digits;
  if (saved < 1) extra_float_digits = 1;
  std::string text;
  try {
    text = format();
  } catch (...) {
    extra_float_digits = saved;
    throw;
  }
  extra_float_digits = saved;
  return text;
}

// Output of (position, id, key, sum_value[, is_last]) rows.
class EntryRows {
 public:
  explicit EntryRows(FunctionCallInfo fcinfo, const Target &t) : t_(t) {
    rsinfo_ = (ReturnSetInfo *)fcinfo->resultinfo;
    pg_guard([&] { InitMaterializedSRF(fcinfo, 0); });
  }
  void put(std::uint64_t pos, const Entry &e, bool is_last = false) {
    bool key_null = t_.agg->key_columns() == 1 && e.key[0] == 0;  // single NULL key column
    std::string id = exact_text([&] { return t_.agg->id_text(e.key); });
    std::string key = key_null ? std::string() : exact_text([&] { return t_.agg->key_text(e.key); });
    const Target &t = t_;
    ReturnSetInfo *rsinfo = rsinfo_;
    pg_guard([&] {
      Datum values[5];
      bool nulls[5] = {false, false, key_null, t.agg->sum().kind == SumKind::None, false};
      values[0] = Int64GetDatum(static_cast<int64>(pos));
      values[1] = CStringGetTextDatum(id.c_str());
      values[2] = key_null ? (Datum)0 : CStringGetTextDatum(key.c_str());
      values[3] = nulls[3] ? (Datum)0 : t.agg->sum().to_numeric(e.value);
      values[4] = BoolGetDatum(is_last);  // read only by aggr_paginate's result type
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    });
  }

 private:
  const Target &t_;
  ReturnSetInfo *rsinfo_;
};

// Source rows fetched by primary key with a snapshot (the query's).
class RowFetcher {
 public:
  RowFetcher(const Target &t, Snapshot snapshot) : t_(t), snapshot_(snapshot) {
    const std::vector<AttrNumber> &pk = t.agg->pk_attnums();
    ScanKeyData *keys = keys_;
    Relation *rel = &rel_;
    pg_guard([&] {
      *rel = table_open(t.def.source, AccessShareLock);
      for (std::size_t i = 0; i < pk.size(); ++i) {
        const Column &c = t.agg->layout().column(t.agg->key_columns() + i);
        TypeCacheEntry *tc = lookup_type_cache(c.type, TYPECACHE_EQ_OPR_FINFO);
        ScanKeyInit(&keys[i], pk[i], BTEqualStrategyNumber, tc->eq_opr_finfo.fn_oid, (Datum)0);
        keys[i].sk_collation = c.collation;
      }
    });
  }
  ~RowFetcher() {
    Relation rel = rel_;
    try {
      pg_guard([&] {
        if (rel) table_close(rel, AccessShareLock);
      });
    } catch (...) {
    }
  }
  RowFetcher(const RowFetcher &) = delete;
  RowFetcher &operator=(const RowFetcher &) = delete;

  // pg-side: calls found(tuple) with the row whose primary key is `values`
  // (of the primary key columns' types); false when there is none.
  template <typename F>
  bool fetch(const Datum *values, F &&found) {
    std::size_t npk = t_.agg->pk_attnums().size();
    // systable_beginscan turns each key's heap attribute number into its
    // index column number in place: set both again for every fetch (a
    // primary key that is not on the leading columns failed on the second).
    ScanKeyData keys[INDEX_MAX_KEYS];
    for (std::size_t i = 0; i < npk; ++i) {
      keys[i] = keys_[i];
      keys[i].sk_argument = values[i];
    }
    SysScanDesc scan = systable_beginscan(rel_, t_.agg->pk_index(), true, snapshot_, static_cast<int>(npk), keys);
    HeapTuple tup = systable_getnext(scan);
    bool exists = HeapTupleIsValid(tup);
    if (exists) found(tup);
    systable_endscan(scan);
    return exists;
  }
  Relation relation() const { return rel_; }

 private:
  const Target &t_;
  Snapshot snapshot_;
  Relation rel_ = nullptr;
  ScanKeyData keys_[INDEX_MAX_KEYS];
};

// pg-side: stores a row of the source table as a result row. A row
// written before ALTER TABLE ... ADD COLUMN with a default has fewer
// attributes than the table: the missing ones take the default the table
// keeps for them (as a SELECT shows), which the result's descriptor does
// not know (it would read them as NULL).
void put_whole_row(ReturnSetInfo *rsinfo, TupleDesc table, HeapTuple tup) {
  if (HeapTupleHeaderGetNatts(tup->t_data) >= table->natts) {
    tuplestore_puttuple(rsinfo->setResult, tup);
    return;
  }
  HeapTuple expanded = heap_expand_tuple(tup, table);
  tuplestore_puttuple(rsinfo->setResult, expanded);
  heap_freetuple(expanded);
}

// Emits the source rows of a window's entries (whole rows, in window
// order), each fetched from the table whose tree holds it with that
// tree's snapshot; a partition's row is converted to the partitioned
// table's row type (its columns may be in another order).
void emit_rows(FunctionCallInfo fcinfo, const Target &t, Reader &rt, const Window &w) {
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  const std::string name_literal = sql_literal(t.def.name);  // for a hint inside pg_guard
  pg_guard([&] { InitMaterializedSRF(fcinfo, 0); });
  std::vector<std::unique_ptr<RowFetcher>> fetchers(rt.parts());
  std::vector<TupleConversionMap *> maps(rt.parts(), nullptr);
  TupleDesc result_desc = rsinfo->setDesc;
  visit_window(rt, w, [&](std::uint64_t, const Entry &e, std::size_t part) {
    const Target &pt = t.partitioned ? t.parts[part] : t;
    if (!fetchers[part]) {
      fetchers[part] = std::make_unique<RowFetcher>(pt, rt.part(part).query_snapshot());
      if (t.partitioned)
        pg_guard([&] { maps[part] = convert_tuples_by_name(RelationGetDescr(fetchers[part]->relation()), result_desc); });
    }
    RowFetcher &rows = *fetchers[part];
    TupleConversionMap *map = maps[part];
    pg_guard([&] {
      Datum values[INDEX_MAX_KEYS];
      bool nulls[INDEX_MAX_KEYS];
      pt.agg->id_values(e.key, values, nulls);
      if (!rows.fetch(values, [&](HeapTuple tup) {
            if (!map) {
              put_whole_row(rsinfo, RelationGetDescr(rows.relation()), tup);
              return;
            }
            HeapTuple converted = execute_attr_map_tuple(tup, map);
            tuplestore_puttuple(rsinfo->setResult, converted);
            heap_freetuple(converted);
          }))
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("aggregate \"%s\" has an entry for a row that is not in %s", pt.def.name.c_str(),
                               get_rel_name(pt.def.source)),
                        errhint("Check it with SELECT * FROM aggr_verify(%s).", name_literal.c_str())));
    });
  });
}


Datum key_at_end(FunctionCallInfo fcinfo, const Target &t, bool last) {
  Reader rt(t, namespace_arg(fcinfo, 1, t));
  std::uint64_t count = rt.count();
  Entry e;
  bool found = false;
  if (count > 0) {
    std::uint64_t at = last ? count - 1 : 0;
    rt.forward(at, at + 1, [&](std::uint64_t, const Entry &entry, std::size_t) {
      e = entry;
      found = true;
    });
    if (!found) throw CorruptNode("the tree holds fewer entries than its count");
  }
  rt.close();
  if (count == 0 || (t.agg->key_columns() == 1 && e.key[0] == 0)) PG_RETURN_NULL();
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
    Reader rt(t, namespace_arg(fcinfo, 1, t));
    int64 count = static_cast<int64>(range_of(fcinfo, t, rt).count);
    rt.close();
    return Int64GetDatum(count);
  });
}

AGGR_FUNCTION(aggr_sum) {
  Target t = open_aggregate(fcinfo, Access::Read);
  if (t.agg->sum().kind == SumKind::None)
    throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "aggregate \"" + t.def.name + "\" has no sum_value",
                    "Create it with aggr_create(..., sum_value => 'column').");
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 1, t));
    Sum s = range_of(fcinfo, t, rt).sum;
    rt.close();
    Datum result = 0;
    pg_guard([&] { result = t.agg->sum().to_numeric(s); });
    return result;
  });
}

AGGR_FUNCTION(aggr_rank) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 2, t));
    std::vector<KeyValue> v;
    if (!key_arg(fcinfo, 1, t, v)) {
      rt.close();
      PG_RETURN_NULL();
    }
    KeyProbe probe(t.agg->layout(), v, false);
    int64 rank = static_cast<int64>(rt.count_before(probe) + 1);
    rt.close();
    return Int64GetDatum(rank);
  });
}

// aggr_at(name, offset, namespace, lower, upper, lower_inclusive,
// upper_inclusive, descending): a 1.0 schema passes only the first three.
AGGR_FUNCTION(aggr_at) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 2, t));
    if (PG_ARGISNULL(1)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "offset must not be NULL");
    Span span = span_of(fcinfo, t, rt, 3);
    Window w = offset_window(t, span, PG_GETARG_INT64(1), 1, bool_arg(fcinfo, 7, false), false);
    EntryRows out(fcinfo, t);
    visit_window(rt, w, [&](std::uint64_t pos, const Entry &e, std::size_t) { out.put(pos, e); });
    rt.close();
    return (Datum)0;
  });
}

// A page's limit: int8 since 1.1 (int4 in a 1.0 schema not yet updated).
int64 limit_arg(FunctionCallInfo fcinfo, int argno) {
  if (PG_ARGISNULL(argno)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "limit must not be NULL");
  Oid type = InvalidOid;
  pg_guard([&] { type = get_fn_expr_argtype(fcinfo->flinfo, argno); });
  int64 limit = type == INT4OID ? PG_GETARG_INT32(argno) : PG_GETARG_INT64(argno);
  if (limit < 0) throw UserError(ERRCODE_INVALID_ROW_COUNT_IN_LIMIT_CLAUSE, "limit must not be negative");
  return limit;
}

namespace {
// The window of aggr_page / aggr_page_rows: offset and limit at arguments
// 1 and 2, bounds from `bounds` on, descending after them.
Window page_window(FunctionCallInfo fcinfo, const Target &t, Reader &rt, int bounds) {
  if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
    throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "offset and limit must not be NULL");
  int64 limit = limit_arg(fcinfo, 2);
  Span span = span_of(fcinfo, t, rt, bounds);
  return offset_window(t, span, PG_GETARG_INT64(1), static_cast<std::uint64_t>(limit), bool_arg(fcinfo, bounds + 4, false),
                       true);
}

// Whole-row results must be of the source table's row type.
void check_row_type(FunctionCallInfo fcinfo, const Target &t, int argno) {
  pg_guard([&] {
    if (pg_class_aclcheck(t.def.source, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
      aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(t.def.source));
    Oid rowtype = get_fn_expr_argtype(fcinfo->flinfo, argno);
    if (rowtype != get_rel_type_id(t.def.source))
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("row_type must be the row type of %s, not %s", get_rel_name(t.def.source), format_type_be(rowtype)),
                      errhint("Pass NULL::%s.", quote_qualified_identifier(get_namespace_name(get_rel_namespace(t.def.source)),
                                                                       get_rel_name(t.def.source)))));
  });
}
}  // namespace

// aggr_page(name, offset, limit, namespace, lower, upper, lower_inclusive,
// upper_inclusive, descending).
AGGR_FUNCTION(aggr_page) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 3, t));
    Window w = page_window(fcinfo, t, rt, 4);
    EntryRows out(fcinfo, t);
    visit_window(rt, w, [&](std::uint64_t pos, const Entry &e, std::size_t) { out.put(pos, e); });
    rt.close();
    return (Datum)0;
  });
}

// aggr_page_rows(name, offset, limit, row_type, namespace, lower, upper,
// lower_inclusive, upper_inclusive, descending).
AGGR_FUNCTION(aggr_page_rows) {
  Target t = open_aggregate(fcinfo, Access::Read);
  check_row_type(fcinfo, t, 3);
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 4, t));
    emit_rows(fcinfo, t, rt, page_window(fcinfo, t, rt, 5));
    rt.close();
    return (Datum)0;
  });
}

// ---------------------------------------------------------------- positions and pagination

namespace {
// pg-side: the primary key values of `id` converted to the primary key
// columns' types (text read as literals; value-changing casts refused).
void pk_datums(const Target &t, const std::vector<KeyValue> &id, Datum *out) {
  for (std::size_t i = 0; i < id.size(); ++i) {
    const Column &c = t.agg->layout().column(t.agg->key_columns() + i);
    out[i] = coerce_value(id[i].value, id[i].type, c.type, -1, "id");
  }
}
}  // namespace

// aggr_position(name, id): the row's 0-based position in its namespace, in
// aggregate order (key, then primary key); NULL when no such row is visible.
AGGR_FUNCTION(aggr_position) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&]() -> Datum {
    std::vector<KeyValue> id;
    if (!id_arg(fcinfo, 1, t, id)) PG_RETURN_NULL();
    CompiledAggregate::RowEntry entry;
    bool exists = false;
    // A partitioned table's row is looked up in each leaf partition's
    // primary key (the partitioned index cannot be scanned).
    std::vector<const Target *> tables;
    if (!t.partitioned) tables.push_back(&t);
    for (const Target &part : t.parts) tables.push_back(&part);
    for (const Target *table : tables) {
      if (exists) break;
      RowFetcher rows(*table, t.snapshot);
      pg_guard([&] {
        Datum values[INDEX_MAX_KEYS];
        pk_datums(*table, id, values);
        exists = rows.fetch(values, [&](HeapTuple tup) { table->agg->evaluate(tup, entry); });
      });
    }
    if (!exists) PG_RETURN_NULL();
    Reader rt(t, entry.ns);
    EntryOrdering order(t.agg->layout());
    EncodedEntryProbe probe(order, entry.key);
    int64 before = static_cast<int64>(rt.before(probe).count);
    rt.close();
    return Int64GetDatum(before);
  });
}

// aggr_position_of(name, key, id, namespace): the 0-based position of the
// entry (key, id); NULL when the aggregate has no such entry.
AGGR_FUNCTION(aggr_position_of) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&]() -> Datum {
    Reader rt(t, namespace_arg(fcinfo, 3, t));
    std::vector<KeyValue> key, id;
    whole_key_arg(fcinfo, 1, t, "key", key);
    if (!id_arg(fcinfo, 2, t, id)) PG_RETURN_NULL();
    key.insert(key.end(), id.begin(), id.end());
    KeyProbe before(t.agg->layout(), key, false), after(t.agg->layout(), key, true);
    std::uint64_t pos = rt.before(before).count;
    if (rt.before(after).count <= pos) PG_RETURN_NULL();
    rt.close();
    return Int64GetDatum(static_cast<int64>(pos));
  });
}

// aggr_random(name, namespace, lower, upper, lower_inclusive,
// upper_inclusive): one entry drawn uniformly within the bounds with SQL's
// random() (so setseed() repeats a sequence); no row when there is none.
AGGR_FUNCTION(aggr_random) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 1, t));
    Span span = span_of(fcinfo, t, rt, 2);
    EntryRows out(fcinfo, t);
    if (span.size() == 0) {
      rt.close();
      return (Datum)0;
    }
    double r = 0;
    pg_guard([&] { r = DatumGetFloat8(OidFunctionCall0(F_RANDOM)); });
    std::uint64_t k = std::min(span.size() - 1, static_cast<std::uint64_t>(r * static_cast<double>(span.size())));
    visit_window(rt, Window{span.lo + k, span.lo + k + 1, false}, [&](std::uint64_t pos, const Entry &e, std::size_t) { out.put(pos, e); });
    rt.close();
    return (Datum)0;
  });
}

namespace {
// Keyset pagination, arguments from `first` on: namespace, lower, upper,
// lower_inclusive, upper_inclusive, after_key, after_id, page_size, descending.
// The page holds up to `limit` entries within the bounds strictly after the
// cursor (after_key, after_id) in the page's direction; is_last says no
// entry within the bounds follows it.
struct KeysetPage {
  Window window;
  bool is_last = true;
};

KeysetPage keyset_page(FunctionCallInfo fcinfo, const Target &t, Reader &rt, int first) {
  Span span = span_of(fcinfo, t, rt, first + 1);
  int64 limit = limit_arg(fcinfo, first + 7);
  bool descending = bool_arg(fcinfo, first + 8, false);
  std::vector<KeyValue> cursor, id;
  bool has_id = PG_NARGS() > first + 6 && !PG_ARGISNULL(first + 6);
  if (has_id) {
    whole_key_arg(fcinfo, first + 5, t, "after_key", cursor);
    if (!id_arg(fcinfo, first + 6, t, id))
      throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "after_id must not have NULL fields");
    cursor.insert(cursor.end(), id.begin(), id.end());
  } else {
    key_arg(fcinfo, first + 5, t, cursor);  // a key alone: past every entry with that key (prefix)
  }
  if (has_id || !cursor.empty()) {
    KeyProbe probe(t.agg->layout(), cursor, !descending);
    std::uint64_t at = rt.before(probe).count;
    if (descending)
      span.hi = std::min(span.hi, at);
    else
      span.lo = std::max(span.lo, at);
  }
  KeysetPage page;
  std::uint64_t n = std::min(static_cast<std::uint64_t>(limit), span.size());
  page.is_last = n == span.size();
  page.window.reverse = descending;
  page.window.from = descending ? span.hi - n : span.lo;
  page.window.to = page.window.from + n;
  return page;
}
}  // namespace

AGGR_FUNCTION(aggr_paginate) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 1, t));
    KeysetPage page = keyset_page(fcinfo, t, rt, 1);
    EntryRows out(fcinfo, t);
    visit_window(rt, page.window, [&](std::uint64_t pos, const Entry &e, std::size_t) { out.put(pos, e, page.is_last); });
    rt.close();
    return (Datum)0;
  });
}

AGGR_FUNCTION(aggr_paginate_rows) {
  Target t = open_aggregate(fcinfo, Access::Read);
  check_row_type(fcinfo, t, 1);
  return read_trees(t, [&] {
    Reader rt(t, namespace_arg(fcinfo, 2, t));
    emit_rows(fcinfo, t, rt, keyset_page(fcinfo, t, rt, 2).window);
    rt.close();
    return (Datum)0;
  });
}

AGGR_FUNCTION(aggr_min) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] { return key_at_end(fcinfo, t, false); });
}
AGGR_FUNCTION(aggr_max) {
  Target t = open_aggregate(fcinfo, Access::Read);
  return read_trees(t, [&] { return key_at_end(fcinfo, t, true); });
}

// ---------------------------------------------------------------- the planner's reads

namespace {
bool same_definition(const AggregateDef &def, const PlannedAggregate &p) {
  return def.source == p.source && def.key_exprs == p.key_exprs && def.key_flags == p.key_flags &&
         def.sum_expr == p.sum_expr && def.ns_expr == p.ns_expr;
}

// What open_aggregate checks for a read, as a yes / no: the normal plan
// answers whenever this says no (the executor has already checked the
// query's own privileges on the table).
bool open_for_query(const PlannedAggregate &p, const RangeQuery &q, Target &t) {
  pg_guard([&] { t.snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot(); });
  if (!load_aggregate_by_name(p.name, t.def, true, t.snapshot)) return false;
  // As the executor checks the query's table: as the owner of the view it
  // is read through, else as the current user.
  if (!same_definition(t.def, p) || t.def.state != "ready" || !whole_table_readable(t.def, p.check_as)) return false;
  bool rls = false;
  pg_guard([&] { rls = check_enable_rls(t.def.source, p.check_as, true) == RLS_ENABLED; });
  if (rls) return false;
  Oid user = InvalidOid;
  pg_guard([&] { user = GetUserId(); });
  if (user == table_owner(t.def.source))
    t.agg = &compiled_aggregate(t.def);
  else
    run_as_table_owner(t.def.source, [&] { t.agg = &compiled_aggregate(t.def); });
  if (t.agg->stale() || t.agg->unlogged()) return false;
  if (q.has_ns && (!t.def.namespaced() || t.agg->ns_type() != q.ns.type)) return false;
  return true;
}

// Positions [lo, hi) in aggregate order, with the sums before them.
struct PrefixSpan {
  Prefix lo, hi;
  std::uint64_t size() const { return hi.count > lo.count ? hi.count - lo.count : 0; }
  void raise_lo(const Prefix &p) {
    if (p.count > lo.count) lo = p;
  }
  void lower_hi(const Prefix &p) {
    if (p.count < hi.count) hi = p;
  }
};

class LeadingKeyProbes {
 public:
  LeadingKeyProbes(const Target &t, ReadTree &rt) : layout_(t.agg->layout()), rt_(rt) {}
  // Entries before (after = false) or up to and including (true) those whose leading key is v.
  Prefix at(const KeyValue &v, bool after) {
    KeyProbe probe(layout_, std::vector<KeyValue>{v}, after);
    return rt_.before(probe);
  }
  Prefix at_null(bool after) { return at(KeyValue{(Datum)0, true, layout_.column(0).type}, after); }
  // Leaves out the entries whose leading key is NULL (all at one end).
  void drop_nulls(PrefixSpan &s) {
    if (layout_.column(0).nulls_first)
      s.raise_lo(at_null(true));
    else
      s.lower_hi(at_null(false));
  }
  // Narrows s to the entries whose leading key satisfies b; false when none can.
  bool apply(const QueryBound &b, PrefixSpan &s) {
    if (b.op == BoundOp::IsNull) {
      s.raise_lo(at_null(false));
      s.lower_hi(at_null(true));
      return true;
    }
    drop_nulls(s);  // every other condition is false or NULL for a NULL key
    if (b.op == BoundOp::IsNotNull) return true;
    if (b.value.isnull) return false;  // key < NULL is never true
    bool desc = layout_.column(0).desc;
    switch (b.op) {
      case BoundOp::Eq:
        s.raise_lo(at(b.value, false));
        s.lower_hi(at(b.value, true));
        break;
      case BoundOp::Lt:
        desc ? s.raise_lo(at(b.value, true)) : s.lower_hi(at(b.value, false));
        break;
      case BoundOp::Le:
        desc ? s.raise_lo(at(b.value, false)) : s.lower_hi(at(b.value, true));
        break;
      case BoundOp::Gt:
        desc ? s.lower_hi(at(b.value, false)) : s.raise_lo(at(b.value, true));
        break;
      case BoundOp::Ge:
        desc ? s.lower_hi(at(b.value, true)) : s.raise_lo(at(b.value, false));
        break;
      default:
        break;
    }
    return true;
  }

 private:
  const KeyLayout &layout_;
  ReadTree &rt_;
};

// The leading key value of the entry at `pos`, copied into the current context.
Datum leading_key_at(const Target &t, ReadTree &rt, std::uint64_t pos) {
  MergedCursor c = rt.cursor(pos);
  if (!c.valid()) throw CorruptNode("the tree holds fewer entries than its count");
  Entry e = c.entry();
  const KeyLayout &layout = t.agg->layout();
  Datum out = 0;
  pg_guard([&] {
    std::size_t p = 0;
    bool isnull = false;
    Datum d = layout.decode(e.key, p, 0, isnull);
    out = isnull ? (Datum)0 : datumCopy(d, layout.column(0).typbyval, layout.column(0).typlen);
  });
  return out;
}

// percentile_disc over s, NULL keys left out: the K-th value in the
// WITHIN GROUP order, K = ceil(fraction * N) (at least 1), computed as
// PostgreSQL's percentile_disc_final computes it.
void percentiles_of(const Target &t, ReadTree &rt, LeadingKeyProbes &probes, PrefixSpan s, const RangeQuery &q,
                    RangeAnswer &out) {
  probes.drop_nulls(s);
  std::uint64_t n = s.size();
  bool key_desc = t.agg->layout().column(0).desc;
  for (std::size_t i = 0; i < q.percentiles.size(); ++i) {
    const Percentile &p = q.percentiles[i];
    if (p.fraction_null || n == 0) continue;  // NULL
    int64 k = static_cast<int64>(std::ceil(p.fraction * static_cast<double>(static_cast<int64>(n))));
    std::uint64_t skip = static_cast<std::uint64_t>(std::max<int64>(k, 1) - 1);
    bool from_end = key_desc != p.descending;  // the WITHIN GROUP order runs against the aggregate's
    out.percentile[i] = leading_key_at(t, rt, from_end ? s.hi.count - 1 - skip : s.lo.count + skip);
    out.percentile_null[i] = false;
  }
}

// min / max of the leading key over s, NULL keys left out.
void min_max_of(const Target &t, ReadTree &rt, LeadingKeyProbes &probes, PrefixSpan s, const RangeQuery &q,
                RangeAnswer &out) {
  probes.drop_nulls(s);
  if (s.size() == 0) return;
  bool desc = t.agg->layout().column(0).desc;
  std::uint64_t first = s.lo.count, last = s.hi.count - 1;
  if (q.want_min) {
    out.min = leading_key_at(t, rt, desc ? last : first);
    out.min_null = false;
  }
  if (q.want_max) {
    out.max = leading_key_at(t, rt, desc ? first : last);
    out.max_null = false;
  }
}
}  // namespace

namespace {
// SERIALIZABLE: the normal plan's scan predicate-locks the whole table;
// so does a read in its place.
void lock_as_a_scan(const Target &t) {
  pg_guard([&] {
    if (!IsolationIsSerializable()) return;
    Relation rel = table_open(t.def.source, AccessShareLock);
    PredicateLockRelation(rel, t.snapshot);
    table_close(rel, AccessShareLock);
  });
}

// The encoded namespace of a query ("" when not namespaced); false for ns = NULL.
bool query_namespace(const Target &t, const RangeQuery &q, std::string &ns) {
  if (!q.has_ns) return true;
  if (q.ns.isnull) return false;
  pg_guard([&] { t.agg->ns_layout().encode(ns, 0, q.ns.value, false); });
  return true;
}

// Whether reading the tree answers as the plain SELECT it replaces: that
// neither waits for other transactions nor reads past its snapshot. A read
// first flushes this transaction's pending changes, which waits for another
// writer's tree lock and then reads as of that writer's commit (the READ
// COMMITTED exception of the aggr_* reads), or fails under REPEATABLE READ;
// and a read as of an earlier command (a cursor opened before this
// transaction's later writes, a data-modifying WITH of the same statement)
// must take changes back out, which can fail with 0A000. The normal plan
// answers those.
bool reads_as_a_select(const Target &t, const RangeQuery &q) {
  if (!op_buffer().empty()) return false;
  std::string ns;
  if (!query_namespace(t, q, ns)) return true;  // ns = NULL: no row, nothing read
  CommandId cid = t.snapshot->curcid;
  if (op_buffer().folded_since(t.def.id, cid, t.snapshot) || op_buffer().changed_since(t.def.id, ns, cid)) return false;
  // An earlier flush of this transaction (an aggr_* read of the same
  // statement) waited for another writer and wrote on top of its commit,
  // which the snapshot does not see: the read would answer as of now.
  TransactionId base = foreign_tree_base(t.def.id, t.def.generation, ns);
  bool unseen = false;
  pg_guard([&] { unseen = TransactionIdIsValid(base) && XidInMVCCSnapshot(base, t.snapshot); });
  return !unseen;
}
}  // namespace

bool aggr::pg::answer_rows(const PlannedAggregate &planned, const RowsQuery &q, Tuplestorestate *rows) {
  Target t;
  if (!open_for_query(planned, q.range, t) || !reads_as_a_select(t, q.range)) return false;
  lock_as_a_scan(t);
  const std::string name_literal = sql_literal(t.def.name);  // for a hint inside pg_guard
  (void)read_trees(t, [&] {
    std::string ns;
    if (!query_namespace(t, q.range, ns)) return (Datum)0;
    ReadTree rt(t, ns);
    LeadingKeyProbes probes(t, rt);
    PrefixSpan s;
    s.hi = rt.range(nullptr, nullptr);
    bool possible = true;
    for (const QueryBound &b : q.range.bounds) possible = probes.apply(b, s) && possible;
    std::uint64_t size = possible ? s.size() : 0;
    std::uint64_t skip = std::min(size, static_cast<std::uint64_t>(q.offset));
    std::uint64_t take = q.limit < 0 ? size - skip : std::min(size - skip, static_cast<std::uint64_t>(q.limit));
    Window w;
    w.reverse = q.reverse;
    w.from = q.reverse ? s.hi.count - skip - take : s.lo.count + skip;
    w.to = w.from + take;
    RowFetcher fetcher(t, rt.query_snapshot());
    Reader window_reader(t, ns);  // the planner matches plain tables only: one part, read as rt reads it
    visit_window(window_reader, w, [&](std::uint64_t, const Entry &e, std::size_t) {
      pg_guard([&] {
        Datum values[INDEX_MAX_KEYS];
        bool nulls[INDEX_MAX_KEYS];
        t.agg->id_values(e.key, values, nulls);
        if (!fetcher.fetch(values, [&](HeapTuple tup) { tuplestore_puttuple(rows, tup); }))
          ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                          errmsg("aggregate \"%s\" has an entry for a row that is not in %s", t.def.name.c_str(),
                                 get_rel_name(t.def.source)),
                          errhint("Check it with SELECT * FROM aggr_verify(%s).", name_literal.c_str())));
      });
    });
    window_reader.close();
    rt.close();
    return (Datum)0;
  });
  return true;
}

bool aggr::pg::answer_range(const PlannedAggregate &planned, const RangeQuery &q, RangeAnswer &out) {
  Target t;
  if (!open_for_query(planned, q, t) || !reads_as_a_select(t, q)) return false;
  lock_as_a_scan(t);
  out.percentile.assign(q.percentiles.size(), (Datum)0);  // NULL unless found
  out.percentile_null.assign(q.percentiles.size(), true);
  (void)read_trees(t, [&] {
    std::string ns;
    if (!query_namespace(t, q, ns)) return (Datum)0;  // ns = NULL: no row
    ReadTree rt(t, ns);
    LeadingKeyProbes probes(t, rt);
    PrefixSpan s;
    s.hi = rt.range(nullptr, nullptr);
    bool possible = true;
    for (const QueryBound &b : q.bounds) possible = probes.apply(b, s) && possible;
    if (possible) {
      out.count = s.size();
      if (q.want_sum && out.count > 0) {
        Sum sum = s.hi.sum - s.lo.sum;
        pg_guard([&] { out.sum = t.agg->sum().to_numeric(sum); });
      }
      if (q.want_min || q.want_max) min_max_of(t, rt, probes, s, q, out);
      percentiles_of(t, rt, probes, s, q, out);
    }
    rt.close();
    return (Datum)0;
  });
  return true;
}

// ---------------------------------------------------------------- definition

AGGR_FUNCTION(aggr_create) {
  require_writable("aggr_create()");
  std::string name = text_arg(fcinfo, 0, "name");
  if (PG_ARGISNULL(1)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "source must not be NULL");
  std::string key = text_arg(fcinfo, 2, "key");
  if (name.empty()) throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "aggregate name must not be empty");
  std::string build = PG_NARGS() > 5 && !PG_ARGISNULL(5) ? text_arg(fcinfo, 5, "build") : "auto";
  if (build != "auto" && build != "now" && build != "background")
    throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "build must be 'auto', 'now' or 'background', not '" + build + "'");
  const char *sum = nullptr, *ns = nullptr;
  pg_guard([&] {
    sum = PG_ARGISNULL(3) ? nullptr : TextDatumGetCString(PG_GETARG_DATUM(3));
    ns = PG_ARGISNULL(4) ? nullptr : TextDatumGetCString(PG_GETARG_DATUM(4));
  });
  int32 id = define_aggregate(name, PG_GETARG_OID(1), key.c_str(), sum, ns, 0);
  AggregateDef def;
  if (!load_aggregate_by_id(id, def)) throw std::logic_error("aggregate vanished while being created");
  op_buffer().flush();  // the caller's own changes, as the caller
  build_aggregate(def, build == "auto" ? BuildMode::Auto : build == "now" ? BuildMode::Now : BuildMode::Background);
  PG_RETURN_VOID();
}


AGGR_FUNCTION(aggr_drop) {
  require_writable("aggr_drop()");
  AggregateDef def;
  load_aggregate_by_name(text_arg(fcinfo, 0, "aggregate name"), def, false);
  refuse_part(def, "dropped");
  bool table_exists = false;
  const std::string name_literal = sql_literal(def.name);  // for a hint inside pg_guard
  pg_guard([&] {
    char *relname = get_rel_name(def.source);
    table_exists = relname != nullptr;
    if (table_exists && !pg_class_ownercheck(def.source, GetUserId()))
      aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
    // With the table gone nobody owns the aggregate any more (the sql_drop
    // event trigger normally removes it with the table; it was disabled, or
    // a restore came without the table): only who owns the database may.
    if (!table_exists && !pg_database_ownercheck(MyDatabaseId, GetUserId()))
      ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                      errmsg("must be the owner of the database to drop aggregate \"%s\", whose table no longer exists",
                             def.name.c_str()),
                      errhint("Ask the database owner or a superuser to run SELECT aggr_drop(%s).", name_literal.c_str())));
  });
  op_buffer().flush();
  for (const AggregateDef &part : load_children(def.id)) drop_aggregate(part);
  drop_aggregate(def);
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_clear) {
  require_writable("aggr_clear()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  op_buffer().flush();
  bool one = PG_NARGS() > 1 && !PG_ARGISNULL(1);
  std::string ns = one ? namespace_arg(fcinfo, 1, t) : std::string();
  std::vector<AggregateDef> defs = acted_on(t);
  for (const AggregateDef &def : defs)
    if (def.build_generation != 0)
      throw UserError(ERRCODE_OBJECT_IN_USE, "a backfill or rebuild of aggregate \"" + def.name + "\" is running",
                      "Cancel it first with SELECT aggr_backfill_cancel(" + sql_literal(t.def.name) + ").");
  for (const AggregateDef &def : defs) {
    clear_trees(def, def.generation, one ? &ns : nullptr);
    update_aggregate_state(def, "needs_backfill");
  }
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
  std::vector<AggregateDef> defs = acted_on(t);
  for (const AggregateDef &def : defs)
    if (def.deferred) require_read_committed("switching a deferred aggregate's write mode");
  op_buffer().flush();
  for (const AggregateDef &def : defs) {
    int32 id = def.id;
    // Writers hold the aggregate lock from flush to commit: with it, no delta
    // and no direct tree write is in flight while the mode changes.
    pg_guard([&] { lock_aggregate(id, AccessExclusiveLock); });
    while (merge_deltas_as_owner(id) > 0) {  // a direct aggregate has no pending deltas
    }
    update_aggregate_write_mode(id, mode == "deferred");
  }
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_merge) {
  require_writable("aggr_merge()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  require_read_committed("aggr_merge");
  op_buffer().flush();
  int64 merged = 0;
  for (const AggregateDef &def : acted_on(t)) merged += merge_deltas_as_owner(def.id);
  return Int64GetDatum(merged);
}

AGGR_FUNCTION(aggr_job_start) {
  require_writable("aggr_backfill()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  pg_guard([&] { check_no_row_security(t.def); });  // a forced policy would hide rows from the job's scan
  std::string kind = text_arg(fcinfo, 1, "kind");
  if (kind != "backfill" && kind != "rebuild") throw UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown job kind " + kind);
  if (PG_ARGISNULL(2) || PG_ARGISNULL(3)) throw UserError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "batch_size and background must not be NULL");
  op_buffer().flush();
  // A partitioned table's aggregate: one job per part (each its own
  // generation, log and progress); aggr_wait and aggr_job_step follow them.
  for (const AggregateDef &def : acted_on(t)) start_job(def, kind, PG_GETARG_INT32(2), PG_GETARG_BOOL(3));
  PG_RETURN_VOID();
}

AGGR_FUNCTION(aggr_job_step) {
  require_writable("aggr_job_step()");
  Target t = open_aggregate(fcinfo, Access::Own, false);
  // The caller's own pending changes first, as the caller, under the
  // definition they were recorded with: the step's scan sees this
  // transaction's rows, and a swap in this step would otherwise send them,
  // flushed at commit, to the new generation on top of a scan that already
  // holds their intermediate state (an entry inserted then deleted stayed).
  op_buffer().flush();
  if (!t.partitioned) return BoolGetDatum(job_step_as_owner(t.def.id));
  // One step of the first part whose job can go on: true while one may
  // remain (a finished step's part is skipped by the next call).
  for (const AggregateDef &def : acted_on(t)) {
    JobRow job = load_job(def.id);
    if (!job.exists || job.cancelled || !job.error.empty()) continue;
    (void)job_step_as_owner(def.id);
    return BoolGetDatum(true);
  }
  return BoolGetDatum(false);
}

AGGR_FUNCTION(aggr_backfill_cancel) {
  require_writable("aggr_backfill_cancel()");
  Target t = open_aggregate(fcinfo, Access::Own, false, Compile::Never);
  if (!t.partitioned) {
    cancel_job(t.def);
    PG_RETURN_VOID();
  }
  bool any = false;  // the parts' running jobs; as for one aggregate, none is an error
  for (const AggregateDef &def : acted_on(t)) {
    JobRow job = load_job(def.id);
    if (!job.exists || job.cancelled) continue;
    cancel_job(def);
    any = true;
  }
  if (!any)
    throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "no backfill or rebuild of aggregate \"" + t.def.name + "\" is running");
  PG_RETURN_VOID();
}

// (phase, cancelled, error, rows_done, rows_total, progress, background) of the
// running job, for aggr_wait (which cannot read aggr_internal as a non-superuser).
AGGR_FUNCTION(aggr_job_status) {
  Target t = open_aggregate(fcinfo, Access::Read, false, Compile::Never);
  JobRow job;
  std::string text;
  // A partitioned table's aggregate: the first part's job that is not done.
  for (const AggregateDef &def : acted_on(t)) {
    ensure_job_worker(def.id);
    job = load_job(def.id);
    text = job_progress_text(job);
    if (job.exists) {
      if (t.partitioned) text = def.name + ": " + text;
      break;
    }
  }
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

namespace {
// The sum's kind and scale as the catalog row states them (what
// CompiledAggregate::sum() holds), without compiling.
SumSpec sum_spec_of(const AggregateDef &def) {
  SumSpec spec;
  spec.kind = def.sum_kind == "float" ? SumKind::Float : def.sum_kind == "exact" ? SumKind::Exact : SumKind::None;
  spec.scale = def.sum_scale;
  return spec;
}
}  // namespace

// Compiles only what it needs: the pending deltas of a deferred aggregate
// (and, for a reader without table-level SELECT, the column check). A stale
// aggregate reports state 'stale'.
AGGR_FUNCTION(aggr_status) {
  Target t = open_aggregate(fcinfo, Access::Read, false, Compile::Never);
  bool stale = t.agg ? t.agg->stale() : definition_stale(t.def);
  std::string state = stale ? "stale" : t.def.state;
  SumSpec sum = sum_spec_of(t.def);
  op_buffer().flush();
  // A partitioned table's aggregate reports its parts together: the first
  // part that is not ready (or stale) gives the state, the first job the
  // job, and the figures add up (namespaces: trees).
  std::vector<AggregateDef> defs = acted_on(t);
  JobRow job;
  std::string job_text;
  for (const AggregateDef &def : defs) {
    if (t.partitioned && state == "ready")
      state = definition_stale(def) ? "stale" : def.state;
    ensure_job_worker(def.id);
    if (job.exists) continue;
    job = load_job(def.id);
    job_text = job_progress_text(job);
    if (job.exists && t.partitioned) job_text = def.name + ": " + job_text;
  }
  int64 namespaces = 0, entries = 0, nodes = 0, bytes = 0, drift = 0;
  int32 depth = 0;
  Sum total;
  for (const AggregateDef &def : defs) {
    const int32 aggr_id = def.id, generation = def.generation;
    pg_guard([&] {
      Relations r = internal_relations();
      Relation trees = table_open(r.trees, AccessShareLock);
      Relation nodes_rel = table_open(r.nodes, AccessShareLock);
      PushCopiedSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
      UpdateActiveSnapshotCommandId();
      Snapshot snap = GetActiveSnapshot();
      ScanKeyData key[2];
      ScanKeyInit(&key[0], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggr_id));
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
    if (def.deferred && generation != 0 && state != "stale") {  // entries counts the pending deltas too
      CompiledAggregate *agg = t.agg;
      if (!agg && !t.partitioned) agg = &compiled_aggregate(def);  // as the reader, as a read would
      if (t.partitioned) run_as_table_owner(def.source, [&] { agg = &compiled_aggregate(def); });  // as reads of parts do
      EntryOrdering order(agg->layout());
      Snapshot snap = nullptr;
      pg_guard([&] { snap = GetTransactionSnapshot(); });
      for (const std::string &ns : pending_namespaces(def.id, generation, snap))
        entries += pending_changes(def, ns, order, snap).count_change();
    }
  }
  Datum result = 0;
  pg_guard([&] {
    Datum v[18];
    bool n[18] = {};
    v[0] = CStringGetTextDatum(t.def.name.c_str());
    v[1] = ObjectIdGetDatum(t.def.source);
    v[2] = CStringGetTextDatum(state.c_str());
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
    n[12] = sum.kind == SumKind::None;
    v[12] = n[12] ? (Datum)0 : sum.to_numeric(total);
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
