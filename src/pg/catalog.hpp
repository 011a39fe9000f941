// Aggregate definitions: the catalog row, its parsing from the user's
// key / sum_value / namespace text, and the compiled form used to turn a
// source row into (namespace, entry key, sum).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "citus.hpp"
#include "keys.hpp"
#include "storage.hpp"

namespace aggr::pg {

extern int new_node_bytes;  // GUC aggr_ext.node_bytes: node size of aggregates created from now on


struct AggregateDef {
  int32 id = 0;
  std::string name;
  Oid source = InvalidOid;
  std::string key_spec, sum_spec, ns_spec;
  std::string key_exprs, key_flags, sum_expr, ns_expr;
  std::string sum_kind;
  int32 sum_scale = 0;
  std::string state;
  int32 node_bytes = 3200;
  int32 generation = 0;        // trees that reads use; 0 until first built
  int32 build_generation = 0;  // trees being filled by a job; 0 when none
  std::string columns_sig;
  std::string origin;
  bool deferred = false;  // write_mode 'deferred': writers append deltas (aggr_internal.deltas)
  int32 parent = 0;       // a leaf partition's part of the aggregate `parent` on its partitioned table
  ItemPointerData tid{};
  TransactionId xmin = InvalidTransactionId;  // with tid: which version of the catalog row this is
  bool namespaced() const { return !ns_expr.empty(); }
};

// pg-side lookups; missing_ok=false raises "aggregate ... does not exist".
// By name: the version `snap` sees (nullptr: the latest committed).
bool load_aggregate_by_name(const std::string &name, AggregateDef &out, bool missing_ok, Snapshot snap = nullptr);
bool load_aggregate_by_id(int32 id, AggregateDef &out, Snapshot snap = nullptr);
// The aggregates of table `source` that `snap` sees (nullptr: the latest).
std::vector<AggregateDef> load_aggregates_of(Oid source, Snapshot snap = nullptr);
// Whether aggr_internal.aggregates has the parent column (1.1; a 1.0 schema
// not updated yet has none, and no partition aggregates).
bool catalog_has_parent_column();
// The parts (one per leaf partition) of a partitioned table's aggregate,
// as `snap` sees them (nullptr: the latest), in id order.
std::vector<AggregateDef> load_children(int32 parent, Snapshot snap = nullptr);
// pg-side: the ids of the aggregates whose (id, source table) `keep` accepts,
// in id (creation) order; the latest committed catalog, read directly (the
// caller need not be able to read it). `keep` runs inside the catalog scan:
// plain PostgreSQL lookups only.
std::vector<int32> aggregate_ids_where(const std::function<bool(int32 id, Oid source)> &keep);
// Aggregates defined on partitioned tables, in id (creation) order.
std::vector<int32> load_parent_ids();
void update_aggregate_state(const AggregateDef &def, const char *state);
void update_aggregate_write_mode(int32 aggr_id, bool deferred);
// Sets state, live generation and build generation in one update.
void update_aggregate_generations(int32 aggr_id, const char *state, int32 generation, int32 build_generation);

// A definition ready to evaluate rows and compare entries.
class CompiledAggregate {
 public:
  explicit CompiledAggregate(const AggregateDef &def);  // guarded
  ~CompiledAggregate();
  const AggregateDef &def() const { return def_; }
  // A column it reads changed type or was dropped since it was created.
  bool stale() const { return stale_; }
  // Throws the error that explains an aggregate that no longer follows its
  // table: stale, or the table became a Citus table after aggr_create.
  void check_not_stale() const;
  // pg-side: looks at the Citus catalog again (see citus_kind_).
  void recheck_citus();
  // The source table was made UNLOGGED after aggr_create (ALTER TABLE ...
  // SET UNLOGGED): crash recovery would empty it without triggers.
  bool unlogged() const { return unlogged_; }
  // Throws the error that refuses reads of an aggregate over an unlogged table.
  void check_logged() const;
  const KeyLayout &layout() const { return layout_; }
  const KeyLayout &ns_layout() const { return ns_layout_; }
  const SumSpec &sum() const { return sum_; }
  std::size_t key_columns() const { return nkey_; }
  Oid ns_type() const { return ns_type_; }
  TreeConfig tree_config() const;

  struct RowEntry {
    std::string ns, key;
    Sum value;
  };
  // Rejects entries too large for a node (as btree rejects oversize rows).
  void check_entry_size(const std::string &key) const;
  // pg-side: evaluates the aggregate over one source tuple.
  void evaluate(HeapTuple tuple, RowEntry &out);
  // pg-side: encodes one row of the ordered scan query (ns?, keys..., pks..., sum?).
  void encode_scan_row(TupleTableSlot *slot, RowEntry &out);
  void encode_scan_row(HeapTuple tuple, TupleDesc desc, RowEntry &out);
  // pg-side: raises an error when the scan query's columns are not of the
  // types this compiled definition encodes (the table changed earlier in
  // this transaction: compiled definitions are kept until it ends).
  void check_scan_types(TupleDesc desc) const;
  // SQL that lists (ns, keys, pks, sum) of every row, in aggregate order
  // when `ordered`.
  std::string scan_query(bool ordered) const;
  // Text of the key / primary key part of an entry (column output functions).
  std::string key_text(std::string_view entry) const;
  std::string id_text(std::string_view entry) const;
  // pg-side: splits the primary key values out of an entry.
  void id_values(std::string_view entry, Datum *values, bool *nulls) const;
  const std::vector<AttrNumber> &pk_attnums() const { return pk_attnums_; }
  // Columns of the source table the aggregate reveals (key, sum, namespace, primary key).
  const std::vector<AttrNumber> &referenced_columns() const { return referenced_; }
  Oid pk_index() const { return pk_index_; }
  // The planned expressions over the source row (Vars of range table entry 1).
  List *key_exprs() const { return key_exprs_; }
  Expr *sum_expr() const { return sum_expr_; }
  Expr *ns_expr() const { return ns_expr_; }

 private:
  void raise_null_namespace() const;  // pg-side
  template <typename Column>
  void encode_scan_columns(RowEntry &out, Column &&column);
  [[noreturn]] void raise_citus_table() const;
  std::string columns_text(std::string_view entry, std::size_t from, std::size_t to) const;
  AggregateDef def_;
  MemoryContext cxt_ = nullptr;
  KeyLayout layout_, ns_layout_;
  SumSpec sum_;
  Oid sum_type_ = InvalidOid, ns_type_ = InvalidOid;
  std::size_t nkey_ = 0;
  bool stale_ = false;
  bool unlogged_ = false;
  // How Citus manages the source table, looked up when compiled: a table
  // distributed after aggr_create (create_distributed_table, ...) has its
  // rows in shards the triggers never see. Citus invalidates the table's
  // relcache when its pg_dist_partition row changes, which recompiles (or,
  // within a transaction, rechecks) this: reads pay no lookup.
  CitusTable citus_kind_ = CitusTable::None;
  std::vector<AttrNumber> pk_attnums_, referenced_;
  Oid pk_index_ = InvalidOid;
  List *key_exprs_ = nullptr;  // planned Expr list
  Expr *sum_expr_ = nullptr, *ns_expr_ = nullptr;
  List *key_states_ = nullptr;
  ExprState *sum_state_ = nullptr, *ns_state_ = nullptr;
  ExprContext *econtext_ = nullptr;
  TupleTableSlot *slot_ = nullptr;
};

// Whether a column the aggregate reads changed type or was dropped, found
// without compiling it (nothing of the definition is evaluated: the stored
// expressions are only read for the columns they name). False when that
// cannot be known without re-analysis (a definition restored from another
// database) or when the table is gone. Guarded.
bool definition_stale(const AggregateDef &def);

// Compiled aggregates, kept across transactions. Within a transaction an
// entry never changes (callers hold references); a later transaction
// recompiles when the catalog row is another version or an invalidation
// (source table, functions, types) arrived. Returns nullptr when the
// aggregate is gone.
CompiledAggregate *compiled_aggregate(int32 aggr_id);
CompiledAggregate &compiled_aggregate(const AggregateDef &def);
// At transaction end: after an abort every entry is dropped.
void compiled_aggregates_at_xact_end(bool committed);
// _PG_init: relcache / syscache invalidation callbacks.
void register_catalog_invalidation();

// pg-side: refuses to reveal the table's contents to the current user when a
// SELECT of the same data would not: row-level security that applies to it
// now (42501), or no SELECT on the table nor on every column the aggregate
// reveals. Checked on every read, not only at create: policies change.
void check_read_privileges(const AggregateDef &def, const CompiledAggregate &agg);
// pg-side: only the row-level security part (for the owner's maintenance
// scans: with FORCE ROW LEVEL SECURITY they would see part of the table).
void check_no_row_security(const AggregateDef &def);

// What aggr_create stores, derived from the user's text. pg-side.
struct ParsedDefinition {
  List *key_exprs = nullptr;
  std::string key_flags;
  Node *sum_expr = nullptr;
  std::string sum_kind = "none";
  int32 sum_scale = 0;
  Node *ns_expr = nullptr;
};
ParsedDefinition parse_definition(Relation rel, const char *key, const char *sum_value, const char *ns);
// pg-side: the texts aggr_create stores for key, sum_value and namespace,
// which a restore analyzes again by name (whoever's search_path is then
// current, or the owner context's pg_catalog, pg_temp). A text that relies
// on the creator's search_path (an object outside pg_catalog named without
// its schema) is replaced by its analyzed expression deparsed with every
// such object schema-qualified; any other is kept as the user wrote it.
// Each pointer is replaced in place (palloc'd text).
void self_contained_specs(Relation rel, const ParsedDefinition &p, const char **key, const char **sum, const char **ns);
// "system identifier:database oid": where stored expressions are valid.
std::string current_origin();
// pg-side: identifies the types of the columns an aggregate reads.
std::string columns_signature(Relation rel, List *key_exprs, Node *sum_expr, Node *ns_expr);
int32 insert_aggregate(const std::string &name, Oid source, const char *key, const char *sum, const char *ns,
                       const ParsedDefinition &parsed, int32 parent = 0);
void delete_aggregate(const AggregateDef &def);

}  // namespace aggr::pg
