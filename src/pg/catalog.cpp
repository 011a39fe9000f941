#include "catalog.hpp"

#include <algorithm>
#include <cstring>

extern "C" {
#include "catalog/heap.h"
#include "utils/rls.h"
}

namespace aggr::pg {

// GUC aggr_ext.node_bytes: the node size an aggregate created from now on
// gets; 0 (the default) chooses by its key, see node_bytes_for. Each
// aggregate keeps its own.
int new_node_bytes = 0;

namespace {
// 1600 keeps a node row, with its room for changes in place, under
// PostgreSQL's 2 kB TOAST threshold (a bigger row costs an extra WAL record
// per update, see storage.cpp) and allows 336-byte keys.
constexpr int32 kWideKeyNodeBytes = 1600;
// Keys of fixed-width columns get half that: a page then holds twice the
// versions of a node row. The nodes every write changes (the upper levels of
// a small tree) need a version per concurrent writer on their page, since a
// writer queued on the tree's lock holds back pruning; with 1600-byte nodes
// a page held four, so under eight writers those rows moved to new pages on
// almost every fourth write, and the nodes table of a 1M-entry tree grew
// from 31 to 155 MB in 30 s (800: 41 to 43 MB, and 18% more writes per
// second; test/bench/wal.sh with NODE_BYTES).
constexpr int32 kFixedKeyNodeBytes = 800;

// The node size for an aggregate keyed by `key_exprs` over `source`
// (its primary key columns follow the key in every entry).
int32 node_bytes_for(Oid source, List *key_exprs) {
  if (new_node_bytes != 0) return new_node_bytes;
  std::size_t widest = 0;  // the largest encoded entry key: a flag byte and the value per column
  auto fixed = [&](Oid type) {
    int16 len = get_typlen(type);
    widest += 1 + static_cast<std::size_t>(std::max<int16>(len, 0));
    return len > 0;
  };
  ListCell *lc;
  foreach (lc, key_exprs)
    if (!fixed(exprType((Node *)lfirst(lc)))) return kWideKeyNodeBytes;
  Relation rel = relation_open(source, AccessShareLock);
  Oid pk = RelationGetPrimaryKeyIndex(rel);
  bool all_fixed = OidIsValid(pk);
  if (all_fixed) {
    Relation idx = index_open(pk, AccessShareLock);
    for (int k = 0; k < idx->rd_index->indnkeyatts && all_fixed; ++k)
      all_fixed = fixed(TupleDescAttr(RelationGetDescr(rel), idx->rd_index->indkey.values[k] - 1)->atttypid);
    index_close(idx, AccessShareLock);
  }
  relation_close(rel, AccessShareLock);
  TreeConfig small;
  small.max_node_bytes = kFixedKeyNodeBytes;
  return all_fixed && widest <= small.max_entry_bytes() ? kFixedKeyNodeBytes : kWideKeyNodeBytes;
}
}  // namespace


namespace {
enum AggCol {
  kId = 1, kName, kSource, kKeySpec, kSumSpec, kNsSpec, kKeyExprs, kKeyFlags, kSumExpr, kSumKind, kSumScale,
  kNsExpr, kState, kNodeBytes, kCreated, kGeneration, kBuildGeneration, kColumnsSig, kOrigin, kWriteMode, kParent,
  kAggCols = kParent
};
constexpr int32 kDefaultNodeBytes = 3200;

std::string text_or_empty(Datum d, bool isnull) { return isnull ? std::string() : std::string(TextDatumGetCString(d)); }

AggregateDef def_from_tuple(Relation rel, HeapTuple tup) {
  Datum v[kAggCols];
  bool n[kAggCols];
  heap_deform_tuple(tup, RelationGetDescr(rel), v, n);
  AggregateDef d;
  d.id = DatumGetInt32(v[kId - 1]);
  d.name = text_or_empty(v[kName - 1], n[kName - 1]);
  d.source = DatumGetObjectId(v[kSource - 1]);
  d.key_spec = text_or_empty(v[kKeySpec - 1], n[kKeySpec - 1]);
  d.sum_spec = text_or_empty(v[kSumSpec - 1], n[kSumSpec - 1]);
  d.ns_spec = text_or_empty(v[kNsSpec - 1], n[kNsSpec - 1]);
  d.key_exprs = text_or_empty(v[kKeyExprs - 1], n[kKeyExprs - 1]);
  d.key_flags = text_or_empty(v[kKeyFlags - 1], n[kKeyFlags - 1]);
  d.sum_expr = text_or_empty(v[kSumExpr - 1], n[kSumExpr - 1]);
  d.sum_kind = text_or_empty(v[kSumKind - 1], n[kSumKind - 1]);
  d.sum_scale = DatumGetInt32(v[kSumScale - 1]);
  d.ns_expr = text_or_empty(v[kNsExpr - 1], n[kNsExpr - 1]);
  d.state = text_or_empty(v[kState - 1], n[kState - 1]);
  d.node_bytes = DatumGetInt32(v[kNodeBytes - 1]);
  d.generation = DatumGetInt32(v[kGeneration - 1]);
  d.build_generation = n[kBuildGeneration - 1] ? 0 : DatumGetInt32(v[kBuildGeneration - 1]);
  d.columns_sig = text_or_empty(v[kColumnsSig - 1], n[kColumnsSig - 1]);
  d.origin = text_or_empty(v[kOrigin - 1], n[kOrigin - 1]);
  d.deferred = text_or_empty(v[kWriteMode - 1], n[kWriteMode - 1]) == "deferred";
  // A 1.0 schema not updated yet has no parent column: no partition aggregates.
  bool has_parent = RelationGetDescr(rel)->natts >= kParent;
  d.parent = has_parent && !n[kParent - 1] ? DatumGetInt32(v[kParent - 1]) : 0;
  d.tid = tup->t_self;
  d.xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
  return d;
}

bool load_aggregate(Oid index, ScanKeyData *key, AggregateDef &out, Snapshot snap = nullptr) {
  bool found = false;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, AccessShareLock);
    HeapTuple tup = fetch_row(rel, index == InvalidOid ? r.aggregates_name_key : r.aggregates_pkey, key, 1,
                              snap ? snap : GetLatestSnapshot());
    if (tup) {
      out = def_from_tuple(rel, tup);
      found = true;
    }
    table_close(rel, AccessShareLock);
  });
  return found;
}
}  // namespace

namespace {
// Whether `def` is the version of its catalog row `snap` sees (nullptr: the
// latest). Much cheaper than a lookup by name: one heap fetch.
bool def_is_current(const AggregateDef &def, Snapshot snap = nullptr) {
  bool current = false;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, AccessShareLock);
    current = ItemPointerGetBlockNumber(&def.tid) < RelationGetNumberOfBlocks(rel) &&
              version_visible(rel, def.tid, def.xmin, snap ? snap : GetLatestSnapshot(), [&](HeapTuple t) {
                bool isnull;
                return DatumGetInt32(heap_getattr(t, kId, RelationGetDescr(rel), &isnull)) == def.id;
              });
    table_close(rel, AccessShareLock);
  });
  return current;
}

std::map<std::string, AggregateDef> &defs_by_name() {
  static std::map<std::string, AggregateDef> defs;
  return defs;
}
}  // namespace

bool load_aggregate_by_name(const std::string &name, AggregateDef &out, bool missing_ok, Snapshot snap) {
  auto cached = defs_by_name().find(name);
  if (cached != defs_by_name().end() && def_is_current(cached->second, snap)) {
    out = cached->second;
    return true;
  }
  ScanKeyData key;
  text *t = nullptr;
  pg_guard([&] {
    t = cstring_to_text_with_len(name.data(), static_cast<int>(name.size()));
    ScanKeyInit(&key, kName, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(t));
    key.sk_collation = C_COLLATION_OID;
  });
  bool found = load_aggregate(InvalidOid, &key, out, snap);
  if (!found && !missing_ok)
    throw UserError(ERRCODE_UNDEFINED_OBJECT, "aggregate \"" + name + "\" does not exist",
                    "SELECT name FROM aggr_aggregates lists the aggregates of this database.");
  if (found)
    defs_by_name()[name] = out;
  else
    defs_by_name().erase(name);
  return found;
}

bool load_aggregate_by_id(int32 id, AggregateDef &out, Snapshot snap) {
  ScanKeyData key;
  pg_guard([&] { ScanKeyInit(&key, kId, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(id)); });
  return load_aggregate(1, &key, out, snap);
}

std::vector<AggregateDef> load_aggregates_of(Oid source, Snapshot snap) {
  // Few rows and no index on source: a scan, done only for queries shaped
  // like one an aggregate could answer.
  AggregateDef defs[64];
  int n = 0;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, kSource, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(source));
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, snap ? snap : GetLatestSnapshot(), 1, &key);
    HeapTuple tup;
    while (n < 64 && HeapTupleIsValid(tup = systable_getnext(scan))) defs[n++] = def_from_tuple(rel, tup);
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
  });
  return std::vector<AggregateDef>(defs, defs + n);
}

bool catalog_has_parent_column() {
  bool has = false;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, AccessShareLock);
    has = RelationGetDescr(rel)->natts >= kParent;
    table_close(rel, AccessShareLock);
  });
  return has;
}

std::vector<AggregateDef> load_children(int32 parent, Snapshot snap) {
  std::vector<AggregateDef> out;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, AccessShareLock);
    if (RelationGetDescr(rel)->natts >= kParent) {
      ScanKeyData key;
      ScanKeyInit(&key, kParent, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(parent));
      SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, snap ? snap : GetLatestSnapshot(), 1, &key);
      HeapTuple tup;
      while (HeapTupleIsValid(tup = systable_getnext(scan))) out.push_back(def_from_tuple(rel, tup));
      systable_endscan(scan);
    }
    table_close(rel, AccessShareLock);
  });
  // In aggregate id order: a stable order of the parts of combined reads.
  std::sort(out.begin(), out.end(), [](const AggregateDef &a, const AggregateDef &b) { return a.id < b.id; });
  return out;
}

std::vector<int32> aggregate_ids_where(const std::function<bool(int32 id, Oid source)> &keep) {
  std::vector<int32> ids;
  List *found = NIL;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, AccessShareLock);
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, GetLatestSnapshot(), 0, NULL);
    HeapTuple tup;
    while (HeapTupleIsValid(tup = systable_getnext(scan))) {
      bool isnull;
      int32 id = DatumGetInt32(heap_getattr(tup, kId, RelationGetDescr(rel), &isnull));
      Oid source = DatumGetObjectId(heap_getattr(tup, kSource, RelationGetDescr(rel), &isnull));
      if (keep(id, source)) found = lappend_int(found, id);
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
  });
  ListCell *lc;
  foreach (lc, found) ids.push_back(lfirst_int(lc));
  std::sort(ids.begin(), ids.end());  // in creation order, whatever the heap order: errors name the same one
  return ids;
}

std::vector<int32> load_parent_ids() {
  return aggregate_ids_where([](int32, Oid source) { return get_rel_relkind(source) == RELKIND_PARTITIONED_TABLE; });
}

namespace {
// Replaces the given columns of an aggregate's catalog row.
void update_aggregate_columns(int32 id, const Datum *values, const bool *nulls, const bool *replace) {
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, RowExclusiveLock);
    ScanKeyData key;
    ScanKeyInit(&key, kId, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(id));
    HeapTuple tup = fetch_row(rel, r.aggregates_pkey, &key, 1, GetLatestSnapshot());
    if (tup) {
      HeapTuple updated = heap_modify_tuple(tup, RelationGetDescr(rel), const_cast<Datum *>(values),
                                            const_cast<bool *>(nulls), const_cast<bool *>(replace));
      update_row(rel, &tup->t_self, updated);
    }
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
}
}  // namespace

void update_aggregate_state(const AggregateDef &def, const char *state) {
  Datum v[kAggCols] = {};
  bool n[kAggCols] = {}, repl[kAggCols] = {};
  pg_guard([&] { v[kState - 1] = CStringGetTextDatum(state); });
  repl[kState - 1] = true;
  update_aggregate_columns(def.id, v, n, repl);
}

void update_aggregate_write_mode(int32 aggr_id, bool deferred) {
  Datum v[kAggCols] = {};
  bool n[kAggCols] = {}, repl[kAggCols] = {};
  pg_guard([&] { v[kWriteMode - 1] = CStringGetTextDatum(deferred ? "deferred" : "direct"); });
  repl[kWriteMode - 1] = true;
  update_aggregate_columns(aggr_id, v, n, repl);
}

void update_aggregate_generations(int32 aggr_id, const char *state, int32 generation, int32 build_generation) {
  Datum v[kAggCols] = {};
  bool n[kAggCols] = {}, repl[kAggCols] = {};
  pg_guard([&] { v[kState - 1] = CStringGetTextDatum(state); });
  v[kGeneration - 1] = Int32GetDatum(generation);
  v[kBuildGeneration - 1] = Int32GetDatum(build_generation);
  n[kBuildGeneration - 1] = build_generation == 0;
  repl[kState - 1] = repl[kGeneration - 1] = repl[kBuildGeneration - 1] = true;
  update_aggregate_columns(aggr_id, v, n, repl);
}

int32 insert_aggregate(const std::string &name, Oid source, const char *key, const char *sum, const char *ns,
                       const ParsedDefinition &p, int32 parent) {
  int32 id = 0;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, RowExclusiveLock);
    Datum v[kAggCols];
    bool n[kAggCols] = {};
    id = static_cast<int32>(nextval_internal(r.aggregates_seq, false));
    v[kId - 1] = Int32GetDatum(id);
    v[kName - 1] = CStringGetTextDatum(name.c_str());
    v[kSource - 1] = ObjectIdGetDatum(source);
    v[kKeySpec - 1] = CStringGetTextDatum(key);
    n[kSumSpec - 1] = sum == nullptr;
    v[kSumSpec - 1] = sum ? CStringGetTextDatum(sum) : (Datum)0;
    n[kNsSpec - 1] = ns == nullptr;
    v[kNsSpec - 1] = ns ? CStringGetTextDatum(ns) : (Datum)0;
    v[kKeyExprs - 1] = CStringGetTextDatum(nodeToString(p.key_exprs));
    v[kKeyFlags - 1] = CStringGetTextDatum(p.key_flags.c_str());
    n[kSumExpr - 1] = p.sum_expr == nullptr;
    v[kSumExpr - 1] = p.sum_expr ? CStringGetTextDatum(nodeToString(p.sum_expr)) : (Datum)0;
    v[kSumKind - 1] = CStringGetTextDatum(p.sum_kind.c_str());
    v[kSumScale - 1] = Int32GetDatum(p.sum_scale);
    n[kNsExpr - 1] = p.ns_expr == nullptr;
    v[kNsExpr - 1] = p.ns_expr ? CStringGetTextDatum(nodeToString(p.ns_expr)) : (Datum)0;
    v[kState - 1] = CStringGetTextDatum("building");
    v[kNodeBytes - 1] = Int32GetDatum(node_bytes_for(source, p.key_exprs));
    v[kCreated - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
    v[kGeneration - 1] = Int32GetDatum(0);
    n[kBuildGeneration - 1] = true;
    Relation src = relation_open(source, AccessShareLock);
    v[kColumnsSig - 1] = CStringGetTextDatum(columns_signature(src, p.key_exprs, p.sum_expr, p.ns_expr).c_str());
    relation_close(src, AccessShareLock);
    v[kOrigin - 1] = CStringGetTextDatum(current_origin().c_str());
    v[kWriteMode - 1] = CStringGetTextDatum("direct");
    v[kParent - 1] = Int32GetDatum(parent);
    n[kParent - 1] = parent == 0;
    if (parent != 0 && RelationGetDescr(rel)->natts < kParent) elog(ERROR, "aggr_internal.aggregates has no parent column");
    HeapTuple tup = heap_form_tuple(RelationGetDescr(rel), v, n);
    insert_row(rel, tup);
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
  return id;
}

void delete_aggregate(const AggregateDef &def) {
  ItemPointerData tid = def.tid;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, RowExclusiveLock);
    delete_row(rel, &tid);
    table_close(rel, RowExclusiveLock);
    CommandCounterIncrement();
  });
}

void check_no_row_security(const AggregateDef &def) {
  if (check_enable_rls(def.source, InvalidOid, false) != RLS_ENABLED) return;
  const char *relname = get_rel_name(def.source);
  ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                  errmsg("aggregate \"%s\" cannot be read: row-level security applies to table \"%s\" for this role",
                         def.name.c_str(), relname ? relname : "?"),
                  errdetail("The aggregate counts every row of the table, also rows the policies hide from this role."),
                  errhint("Read the table with SELECT, or read the aggregate as a role the policies do not apply to "
                          "(the owner without FORCE ROW LEVEL SECURITY, or a role with BYPASSRLS).")));
}

void check_read_privileges(const AggregateDef &def, const CompiledAggregate &agg) {
  const char *relname = get_rel_name(def.source);
  if (!relname)
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                    errmsg("source table of aggregate \"%s\" no longer exists", def.name.c_str())));
  if (pg_class_aclcheck(def.source, GetUserId(), ACL_SELECT) != ACLCHECK_OK) {
    // Without table-level SELECT, every column the aggregate reveals must be readable.
    for (AttrNumber att : agg.referenced_columns())
      if (pg_attribute_aclcheck(def.source, att, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, relname);
  }
  check_no_row_security(def);
}

std::string current_origin() {
  return std::to_string(GetSystemIdentifier()) + ":" + std::to_string(MyDatabaseId);
}

std::string columns_signature(Relation rel, List *key_exprs, Node *sum_expr, Node *ns_expr) {
  Bitmapset *cols = NULL;
  pull_varattnos((Node *)key_exprs, 1, &cols);
  if (sum_expr) pull_varattnos(sum_expr, 1, &cols);
  if (ns_expr) pull_varattnos(ns_expr, 1, &cols);
  Oid pk = RelationGetPrimaryKeyIndex(rel);
  if (OidIsValid(pk)) {
    Relation idx = index_open(pk, AccessShareLock);
    for (int k = 0; k < idx->rd_index->indnkeyatts; ++k)
      cols = bms_add_member(cols, idx->rd_index->indkey.values[k] - FirstLowInvalidHeapAttributeNumber);
    index_close(idx, AccessShareLock);
  } else {
    cols = bms_add_member(cols, 0);  // no primary key: never matches a definition that had one
  }
  std::string sig;
  int member = -1;
  TupleDesc desc = RelationGetDescr(rel);
  while ((member = bms_next_member(cols, member)) >= 0) {
    int att = member + FirstLowInvalidHeapAttributeNumber;
    if (att <= 0 || att > desc->natts) {
      sig += std::to_string(att) + ":?;";
      continue;
    }
    Form_pg_attribute a = TupleDescAttr(desc, att - 1);
    sig += std::to_string(att) + ":" + (a->attisdropped ? std::string("dropped")
                                                         : std::to_string(a->atttypid) + "/" + std::to_string(a->atttypmod) +
                                                               "/" + std::to_string(a->attcollation)) + ";";
  }
  return sig;
}

// ---------------------------------------------------------------- parsing

namespace {
ParseState *parse_state_for(Relation rel, const char *text) {
  ParseState *pstate = make_parsestate(NULL);
  pstate->p_sourcetext = text;
  ParseNamespaceItem *item = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, NULL, false, true);
  addNSItemToQuery(pstate, item, true, true, true);
  return pstate;
}

SelectStmt *parse_select(const char *sql, const char *what) {
  List *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
  if (list_length(raw) != 1 || !IsA(castNode(RawStmt, linitial(raw))->stmt, SelectStmt))
    ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("invalid %s", what),
                    errhint("A key is an ORDER BY list such as 'score DESC, name'; sum_value and namespace are single expressions over the row.")));
  SelectStmt *s = (SelectStmt *)castNode(RawStmt, linitial(raw))->stmt;
  if (s->op != SETOP_NONE || s->whereClause || s->groupClause || s->havingClause || s->windowClause ||
      s->limitCount || s->limitOffset || s->lockingClause || s->withClause || s->distinctClause ||
      list_length(s->fromClause) != 1)
    ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("invalid %s", what),
                    errhint("A key is an ORDER BY list such as 'score DESC, name'; sum_value and namespace are single expressions over the row.")));
  return s;
}

// Refuses expressions whose entries could not be kept exact: an anonymous
// record or pseudo-type (a record's type id is valid only in the session
// that built it), a whole-row reference, a system column (VACUUM FULL and
// dump/restore change ctid, xmin, tableoid, ...).
void check_storable_expression(Relation rel, Node *expr, const char *what) {
  Oid type = exprType(expr);
  if (type == RECORDOID || get_typtype(type) == TYPTYPE_PSEUDO)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("the %s of an aggregate cannot be of type %s", what, format_type_be(type)),
                    errdetail("The type of an anonymous record is known only to the session that built it."),
                    strcmp(what, "key") == 0 ? errhint("List the columns as separate key columns, such as key => 'a, b DESC'.")
                                             : errhint("Use a single column or an expression of a scalar type.")));
  Bitmapset *cols = NULL;
  pull_varattnos(expr, 1, &cols);
  int member = -1;
  while ((member = bms_next_member(cols, member)) >= 0) {
    AttrNumber att = static_cast<AttrNumber>(member + FirstLowInvalidHeapAttributeNumber);
    if (att == InvalidAttrNumber)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("the %s of an aggregate cannot reference the whole row of \"%s\"", what,
                             RelationGetRelationName(rel)),
                      errhint("Name the columns it needs.")));
    if (att < 0)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("the %s of an aggregate cannot use system column \"%s\"", what,
                             NameStr(SystemAttributeDefinition(att)->attname)),
                      errdetail("System columns change when rows are moved (VACUUM FULL, CLUSTER, dump and restore)."),
                      errhint("Use ordinary columns of the table.")));
  }
}

Node *transform_row_expression(Relation rel, Node *raw, const char *text, const char *what) {
  ParseState *pstate = parse_state_for(rel, text);
  Node *expr = transformExpr(pstate, raw, EXPR_KIND_INDEX_EXPRESSION);
  assign_expr_collations(pstate, expr);
  check_storable_expression(rel, expr, what);
  if (contain_mutable_functions((Node *)expression_planner((Expr *)expr)))
    ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
                    errmsg("functions in the %s of an aggregate must be marked IMMUTABLE", what),
                    errhint("The aggregate must give the same answer for a row every time it is evaluated.")));
  return expr;
}

Node *parse_single_expression(Relation rel, const char *text, const char *what) {
  char *sql = psprintf("SELECT %s FROM aggr_source", text);
  SelectStmt *s = parse_select(sql, what);
  if (list_length(s->targetList) != 1 || s->sortClause)
    ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("%s must be a single expression", what)));
  ResTarget *rt = castNode(ResTarget, linitial(s->targetList));
  return transform_row_expression(rel, rt->val, text, what);
}

void check_namespace_type(Node *expr) {
  Oid type = exprType(expr);
  TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_BTREE_OPFAMILY);
  bool ok = false;
  if (OidIsValid(tc->btree_opf)) {
    Oid proc = get_opfamily_proc(tc->btree_opf, tc->btree_opintype, tc->btree_opintype, BTEQUALIMAGE_PROC);
    ok = OidIsValid(proc) &&
         DatumGetBool(OidFunctionCall1Coll(proc, exprCollation(expr), ObjectIdGetDatum(tc->btree_opintype)));
  }
  if (!ok)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("a namespace of type %s is not supported", format_type_be(type)),
                    errdetail("Equal values of this type (or collation) can differ in binary form."),
                    errhint("Use an integer, text (deterministic collation), uuid or date namespace, or cast to one.")));
}

void classify_sum(Node *expr, ParsedDefinition &p) {
  // A domain sums as its base type (its typmod, such as numeric(12,2), is the domain's).
  int32 typmod = exprTypmod(expr);
  Oid type = getBaseTypeAndTypmod(exprType(expr), &typmod);
  switch (type) {
    case INT2OID:
    case INT4OID:
    case INT8OID: p.sum_kind = "exact"; p.sum_scale = 0; return;
    case FLOAT4OID:
    case FLOAT8OID: p.sum_kind = "float"; return;
    case NUMERICOID: {
      if (typmod < (int32)VARHDRSZ)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("sum_value of unconstrained type numeric is not supported"),
                        errhint("Cast it to a numeric with a declared scale, such as (price)::numeric(12,2), or to float8.")));
      int scale = (((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;
      if (scale > 18)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("sum_value scale %d is above the supported 18", scale)));
      p.sum_kind = "exact";
      p.sum_scale = scale < 0 ? 0 : scale;
      return;
    }
    default:
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("sum_value must be of a numeric type, not %s", format_type_be(exprType(expr))),
                      errhint("Use an expression of type smallint, integer, bigint, numeric(p,s), real or double precision.")));
  }
}
}  // namespace

ParsedDefinition parse_definition(Relation rel, const char *key, const char *sum_value, const char *ns) {
  ParsedDefinition p;
  char *sql = psprintf("SELECT FROM aggr_source ORDER BY %s", key);
  SelectStmt *s = parse_select(sql, "key");
  if (s->targetList != NIL || s->sortClause == NIL)
    ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR), errmsg("invalid key")));
  ListCell *lc;
  foreach (lc, s->sortClause) {
    SortBy *sb = lfirst_node(SortBy, lc);
    if (sb->sortby_dir == SORTBY_USING)
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("ORDER BY ... USING is not supported in a key"),
                      errhint("Use ASC or DESC.")));
    Node *expr = transform_row_expression(rel, sb->node, key, "key");
    bool desc = sb->sortby_dir == SORTBY_DESC;
    bool nulls_first = sb->sortby_nulls == SORTBY_NULLS_FIRST || (sb->sortby_nulls == SORTBY_NULLS_DEFAULT && desc);
    TypeCacheEntry *tc = lookup_type_cache(exprType(expr), TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
    if (!OidIsValid(tc->lt_opr) || !OidIsValid(tc->gt_opr))
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                      errmsg("key type %s has no default btree operator class", format_type_be(exprType(expr)))));
    p.key_exprs = lappend(p.key_exprs, expr);
    p.key_flags.push_back(desc ? 'D' : 'A');
    p.key_flags.push_back(nulls_first ? 'F' : 'L');
  }
  if (sum_value) {
    p.sum_expr = parse_single_expression(rel, sum_value, "sum_value");
    classify_sum(p.sum_expr, p);
  }
  if (ns) {
    p.ns_expr = parse_single_expression(rel, ns, "namespace");
    check_namespace_type(p.ns_expr);
  }
  return p;
}

namespace {
// `exprs` (over `rel`'s row) deparsed as ruleutils deparses a view, comma
// separated; with `flags` (key_flags), each followed by its ordering.
char *deparse_spec(Relation rel, List *exprs, const char *flags) {
  List *context = deparse_context_for(RelationGetRelationName(rel), RelationGetRelid(rel));
  StringInfoData text;
  initStringInfo(&text);
  ListCell *lc;
  int i = 0;
  foreach (lc, exprs) {
    if (i > 0) appendStringInfoString(&text, ", ");
    appendStringInfoString(&text, deparse_expression((Node *)lfirst(lc), context, false, false));
    if (flags) {
      bool desc = flags[2 * i] == 'D', nulls_first = flags[2 * i + 1] == 'F';
      if (desc) appendStringInfoString(&text, " DESC");
      if (nulls_first != desc) appendStringInfoString(&text, nulls_first ? " NULLS FIRST" : " NULLS LAST");
    }
    ++i;
  }
  return text.data;
}
}  // namespace

void self_contained_specs(Relation rel, const ParsedDefinition &p, const char **key, const char **sum, const char **ns) {
  constexpr int kSpecs = 3;
  const char **spec[kSpecs] = {key, sum, ns};
  List *exprs[kSpecs] = {p.key_exprs, p.sum_expr ? list_make1(p.sum_expr) : NIL, p.ns_expr ? list_make1(p.ns_expr) : NIL};
  const char *flags[kSpecs] = {p.key_flags.c_str(), nullptr, nullptr};
  char *as_seen[kSpecs], *qualified[kSpecs];
  for (int i = 0; i < kSpecs; ++i) as_seen[i] = exprs[i] ? deparse_spec(rel, exprs[i], flags[i]) : nullptr;
  // ruleutils qualifies every object not visible in the search_path: with
  // the owner context's, everything outside pg_catalog.
  int level = NewGUCNestLevel();
  (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  for (int i = 0; i < kSpecs; ++i) qualified[i] = exprs[i] ? deparse_spec(rel, exprs[i], flags[i]) : nullptr;
  AtEOXact_GUC(false, level);
  for (int i = 0; i < kSpecs; ++i)
    if (exprs[i] && strcmp(as_seen[i], qualified[i]) != 0) *spec[i] = qualified[i];
}

// ---------------------------------------------------------------- compiled form

CompiledAggregate::CompiledAggregate(const AggregateDef &def) : def_(def) {
  const std::string name_literal = sql_literal(def.name);  // built here: no C++ temporary where ereport may longjmp
  pg_guard([&] {
    // Built under the caller's context and moved under TopMemoryContext only
    // when complete (as relcache does): an error half way frees it.
    cxt_ = AllocSetContextCreate(CurrentMemoryContext, "aggr_ext aggregate", ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(cxt_);
    Relation rel = try_relation_open(def_.source, AccessShareLock);
    if (!rel)
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                      errmsg("source table of aggregate \"%s\" no longer exists", def_.name.c_str()),
                      errhint("Remove the aggregate with SELECT aggr_drop(%s).", name_literal.c_str())));
    List *exprs = (List *)stringToNode(def_.key_exprs.c_str());
    Node *sum = def_.sum_expr.empty() ? nullptr : (Node *)stringToNode(def_.sum_expr.c_str());
    Node *nsx = def_.ns_expr.empty() ? nullptr : (Node *)stringToNode(def_.ns_expr.c_str());
    if (def_.origin != current_origin()) {
      // Restored from a dump: stored expressions hold the old database's
      // OIDs. Analyze the definition again, by name, in this database.
      ParsedDefinition p = parse_definition(rel, def_.key_spec.c_str(), def_.sum_spec.empty() ? nullptr : def_.sum_spec.c_str(),
                                            def_.ns_spec.empty() ? nullptr : def_.ns_spec.c_str());
      exprs = p.key_exprs;
      sum = p.sum_expr;
      nsx = p.ns_expr;
      def_.key_exprs = nodeToString(exprs);
      def_.sum_expr = sum ? nodeToString(sum) : "";
      def_.ns_expr = nsx ? nodeToString(nsx) : "";
    }
    recheck_citus();
    // aggr_create refuses unlogged tables, but ALTER TABLE ... SET UNLOGGED
    // fires no trigger: reads refuse it (check_logged), writes go on.
    unlogged_ = rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED;
    // ALTER TABLE may have changed or dropped a column the aggregate reads
    // (a rewrite fires no row trigger): its entries then cannot be trusted.
    if (columns_signature(rel, exprs, sum, nsx) != def_.columns_sig) {
      stale_ = true;
      relation_close(rel, AccessShareLock);
      MemoryContextSwitchTo(old);
      MemoryContextSetParent(cxt_, TopMemoryContext);
      return;
    }
    ListCell *lc;
    std::size_t i = 0;
    foreach (lc, exprs) {
      Expr *e = expression_planner((Expr *)lfirst(lc));
      key_exprs_ = lappend(key_exprs_, e);
      key_states_ = lappend(key_states_, ExecInitExpr(e, NULL));
      layout_.add_column(exprType((Node *)e), exprTypmod((Node *)e), exprCollation((Node *)e), def_.key_flags[2 * i] == 'D',
                         def_.key_flags[2 * i + 1] == 'F');
      ++i;
    }
    nkey_ = i;
    pk_index_ = RelationGetPrimaryKeyIndex(rel);
    if (!OidIsValid(pk_index_))
      ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                      errmsg("source table of aggregate \"%s\" has no primary key", def_.name.c_str())));
    Relation idx = index_open(pk_index_, AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    for (int k = 0; k < idx->rd_index->indnkeyatts; ++k) {
      AttrNumber att = idx->rd_index->indkey.values[k];
      Form_pg_attribute a = TupleDescAttr(desc, att - 1);
      pk_attnums_.push_back(att);
      layout_.add_column(a->atttypid, a->atttypmod, a->attcollation, false, false);
    }
    index_close(idx, AccessShareLock);
    if (sum) {
      sum_expr_ = expression_planner((Expr *)sum);
      sum_state_ = ExecInitExpr(sum_expr_, NULL);
      sum_type_ = getBaseType(exprType((Node *)sum_expr_));  // a domain's datum is its base type's
      sum_.kind = def_.sum_kind == "float" ? SumKind::Float : SumKind::Exact;
      sum_.scale = def_.sum_scale;
    }
    if (nsx) {
      ns_expr_ = expression_planner((Expr *)nsx);
      ns_state_ = ExecInitExpr(ns_expr_, NULL);
      ns_type_ = exprType((Node *)ns_expr_);
      ns_layout_.add_column(ns_type_, exprTypmod((Node *)ns_expr_), exprCollation((Node *)ns_expr_), false, false);
    }
    Bitmapset *cols = NULL;
    pull_varattnos((Node *)key_exprs_, 1, &cols);
    if (sum_expr_) pull_varattnos((Node *)sum_expr_, 1, &cols);
    if (ns_expr_) pull_varattnos((Node *)ns_expr_, 1, &cols);
    for (AttrNumber att : pk_attnums_) cols = bms_add_member(cols, att - FirstLowInvalidHeapAttributeNumber);
    int member = -1;
    while ((member = bms_next_member(cols, member)) >= 0)
      referenced_.push_back(static_cast<AttrNumber>(member + FirstLowInvalidHeapAttributeNumber));
    slot_ = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc), &TTSOpsHeapTuple);
    econtext_ = CreateStandaloneExprContext();
    relation_close(rel, AccessShareLock);
    MemoryContextSwitchTo(old);
    MemoryContextSetParent(cxt_, TopMemoryContext);
  });
}

// Everything the compiled form holds (expression states, their standalone
// ExprContext, the slot and its tuple descriptor copy) was allocated in
// cxt_, and none of it is tracked by a resource owner: deleting the context
// is the whole release, on the normal path (a recompile replaces the entry)
// and after an abort (the cache is cleared from the abort callback, where
// the expression state may be half-used) alike. FreeExprContext(..., false)
// and ExecDropSingleTupleTableSlot, called here before, only freed memory
// of this context (no shutdown callback runs when not committing).
// MemoryContextDelete raises no error short of corrupted memory; should it,
// the exception leaving this noexcept destructor terminates the backend,
// rather than the error being swallowed and the backend going on.
CompiledAggregate::~CompiledAggregate() {
  MemoryContext cxt = cxt_;
  if (cxt) pg_guard([&] { MemoryContextDelete(cxt); });
}

TreeConfig CompiledAggregate::tree_config() const {
  TreeConfig c;
  c.sum_kind = sum_.kind;
  c.max_node_bytes = static_cast<std::size_t>(def_.node_bytes);
  return c;
}

void CompiledAggregate::check_not_stale() const {
  if (citus_kind_ != CitusTable::None) raise_citus_table();
  if (stale_)
    throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "aggregate \"" + def_.name + "\" is stale: a column it reads changed type or was dropped",
                    "Drop and re-create it: SELECT aggr_drop(" + sql_literal(def_.name) + "), then aggr_create(...).");
}

void CompiledAggregate::recheck_citus() {
  char trigger[NAMEDATALEN];
  snprintf(trigger, sizeof(trigger), "aggr_ext_%d", def_.id);
  citus_kind_ = citus_source_kind(def_.source, trigger);
}

void CompiledAggregate::raise_citus_table() const {
  std::string table;
  pg_guard([&] {
    const char *n = get_rel_name(def_.source);
    if (n) table = n;
  });
  const bool shard = citus_kind_ == CitusTable::Shard;
  throw UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "table \"" + table + "\" of aggregate \"" + def_.name + "\" became a Citus " +
                      (shard ? std::string("shard") : citus_table_text(citus_kind_) + std::string(" table")) +
                      " after the aggregate was created",
                  "Drop the aggregate: SELECT aggr_drop(" + sql_literal(def_.name) +
                      "). Drop aggregates before distributing their table (they cannot follow a Citus table), and "
                      "create them again after undistribute_table.",
                  shard ? "Citus moved the table into a shard (citus_add_local_table_to_metadata) and renamed the "
                          "aggregate's triggers on it."
                        : "Citus writes its rows to shards, which the aggregate's triggers never see: the aggregate no "
                          "longer follows the table.");
}

void CompiledAggregate::check_logged() const {
  if (!unlogged_) return;
  std::string table, quoted;
  pg_guard([&] {
    const char *n = get_rel_name(def_.source);
    if (!n) return;
    table = n;
    quoted = quote_identifier(n);
  });
  throw UserError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  "table \"" + table + "\" of aggregate \"" + def_.name +
                      "\" is unlogged: after a crash it is emptied without firing triggers, and the aggregate would keep its rows",
                  "ALTER TABLE " + quoted + " SET LOGGED, then rebuild the aggregate: SELECT aggr_rebuild(" +
                      sql_literal(def_.name) + ").");
}

bool definition_stale(const AggregateDef &def) {
  if (def.origin != current_origin()) return false;  // stored OIDs belong to another database
  bool stale = false;
  pg_guard([&] {
    Relation rel = try_relation_open(def.source, AccessShareLock);
    if (!rel) return;
    List *exprs = (List *)stringToNode(def.key_exprs.c_str());
    Node *sum = def.sum_expr.empty() ? nullptr : (Node *)stringToNode(def.sum_expr.c_str());
    Node *nsx = def.ns_expr.empty() ? nullptr : (Node *)stringToNode(def.ns_expr.c_str());
    stale = columns_signature(rel, exprs, sum, nsx) != def.columns_sig;
    relation_close(rel, AccessShareLock);
  });
  return stale;
}

void CompiledAggregate::raise_null_namespace() const {
  ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION),
                  errmsg("namespace of aggregate \"%s\" is NULL for a row of %s", def_.name.c_str(), get_rel_name(def_.source)),
                  errhint("Aggregate namespaces must not be NULL; add NOT NULL to the column or COALESCE the expression.")));
}

void CompiledAggregate::check_entry_size(const std::string &key) const {
  std::size_t limit = tree_config().max_entry_bytes();
  if (key.size() > limit)
    throw UserError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    "key of aggregate \"" + def_.name + "\" is too large (" + std::to_string(key.size()) +
                        " bytes, at most " + std::to_string(limit) + ")",
                    "Index a prefix or a hash of long values, or create the aggregate with a larger "
                    "aggr_ext.node_bytes (keys may use a quarter of a node minus 64 bytes).");
}

void CompiledAggregate::evaluate(HeapTuple tuple, RowEntry &out) {
  out.ns.clear();
  out.key.clear();
  out.value = Sum{};
  ExecStoreHeapTuple(tuple, slot_, false);
  econtext_->ecxt_scantuple = slot_;
  MemoryContext old = MemoryContextSwitchTo(econtext_->ecxt_per_tuple_memory);
  bool isnull;
  if (ns_state_) {
    Datum d = ExecEvalExpr(ns_state_, econtext_, &isnull);
    if (isnull)
      raise_null_namespace();
    ns_layout_.encode(out.ns, 0, d, false);
  }
  ListCell *lc;
  std::size_t i = 0;
  foreach (lc, key_states_) {
    Datum d = ExecEvalExpr((ExprState *)lfirst(lc), econtext_, &isnull);
    layout_.encode(out.key, i++, d, isnull);
  }
  for (AttrNumber att : pk_attnums_) {
    Datum d = slot_getattr(slot_, att, &isnull);
    layout_.encode(out.key, i++, d, isnull);
  }
  if (sum_state_) {
    Datum d = ExecEvalExpr(sum_state_, econtext_, &isnull);
    out.value = sum_.from_datum(d, isnull, sum_type_);
  }
  MemoryContextSwitchTo(old);
  ResetExprContext(econtext_);
  ExecClearTuple(slot_);
}

// The scan query's columns in order (ns?, keys..., pks..., sum?), read by
// `column(number, &isnull)`.
template <typename Column>
void CompiledAggregate::encode_scan_columns(RowEntry &out, Column &&column) {
  out.ns.clear();
  out.key.clear();
  out.value = Sum{};
  int col = 1;
  bool isnull;
  if (ns_state_) {
    Datum d = column(col++, &isnull);
    if (isnull) raise_null_namespace();
    ns_layout_.encode(out.ns, 0, d, false);
  }
  for (std::size_t i = 0; i < layout_.size(); ++i) {
    Datum d = column(col++, &isnull);
    layout_.encode(out.key, i, d, isnull);
  }
  if (sum_state_) {
    Datum d = column(col, &isnull);
    out.value = sum_.from_datum(d, isnull, sum_type_);
  }
}

void CompiledAggregate::check_scan_types(TupleDesc desc) const {
  std::vector<Oid> want;
  if (ns_state_) want.push_back(ns_type_);
  for (std::size_t i = 0; i < layout_.size(); ++i) want.push_back(layout_.column(i).type);
  bool same = desc->natts == static_cast<int>(want.size()) + (sum_state_ ? 1 : 0);
  for (std::size_t i = 0; same && i < want.size(); ++i) same = TupleDescAttr(desc, static_cast<int>(i))->atttypid == want[i];
  if (same && sum_state_) same = getBaseType(TupleDescAttr(desc, desc->natts - 1)->atttypid) == sum_type_;
  if (!same)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("the table of aggregate \"%s\" changed in this transaction", def_.name.c_str()),
                    errdetail("A column the aggregate reads changed type since the transaction first used the aggregate."),
                    errhint("Commit, then run it again (a stale aggregate is rebuilt with aggr_rebuild).")));
}

void CompiledAggregate::encode_scan_row(TupleTableSlot *slot, RowEntry &out) {
  encode_scan_columns(out, [slot](int col, bool *isnull) { return slot_getattr(slot, col, isnull); });
}

void CompiledAggregate::encode_scan_row(HeapTuple tuple, TupleDesc desc, RowEntry &out) {
  encode_scan_columns(out, [tuple, desc](int col, bool *isnull) { return SPI_getbinval(tuple, desc, col, isnull); });
}

std::string CompiledAggregate::scan_query(bool ordered) const {
  std::string sql;
  pg_guard([&] {
    List *ctx = deparse_context_for(get_rel_name(def_.source), def_.source);
    StringInfoData select, order;
    initStringInfo(&select);
    initStringInfo(&order);
    int col = 0;
    // A collatable key column is sorted by its expression with an explicit
    // COLLATE: a COLLATE in the key spec is planned into an implicit
    // relabel that deparsing drops, so an output column number would sort
    // in the column's (or the database's) collation instead.
    auto add = [&](const char *expr, const char *dir, Oid collation = InvalidOid) {
      appendStringInfo(&select, "%s%s", col ? ", " : "", expr);
      ++col;
      if (!dir) return;
      if (OidIsValid(collation))
        appendStringInfo(&order, "%s(%s) COLLATE %s %s", order.len ? ", " : "", expr, generate_collation_name(collation), dir);
      else
        appendStringInfo(&order, "%s%d %s", order.len ? ", " : "", col, dir);
    };
    if (ns_expr_) add(deparse_expression((Node *)ns_expr_, ctx, false, false), "");
    ListCell *lc;
    std::size_t i = 0;
    foreach (lc, key_exprs_) {
      const char *dir = def_.key_flags[2 * i] == 'D' ? (def_.key_flags[2 * i + 1] == 'F' ? "DESC NULLS FIRST" : "DESC NULLS LAST")
                                                     : (def_.key_flags[2 * i + 1] == 'F' ? "ASC NULLS FIRST" : "ASC NULLS LAST");
      add(deparse_expression((Node *)lfirst(lc), ctx, false, false), dir, layout_.column(i).collation);
      ++i;
    }
    Relation rel = relation_open(def_.source, AccessShareLock);
    for (AttrNumber att : pk_attnums_)
      add(quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(rel), att - 1)->attname)), "ASC");
    if (sum_expr_) add(deparse_expression((Node *)sum_expr_, ctx, false, false), nullptr);
    char *relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)), RelationGetRelationName(rel));
    relation_close(rel, AccessShareLock);
    sql = psprintf("SELECT %s FROM ONLY %s %s%s%s", select.data, relname, quote_identifier(get_rel_name(def_.source)),
                   ordered ? " ORDER BY " : "", ordered ? order.data : "");
  });
  return sql;
}

namespace {
// Quotes one element the way record_out does.
void append_record_field(std::string &out, const char *value) {
  bool quote = *value == '\0';
  for (const char *p = value; *p && !quote; ++p)
    quote = *p == '"' || *p == '\\' || *p == '(' || *p == ')' || *p == ',' || isspace(static_cast<unsigned char>(*p));
  if (!quote) {
    out += value;
    return;
  }
  out.push_back('"');
  for (const char *p = value; *p; ++p) {
    if (*p == '"' || *p == '\\') out.push_back(*p);
    out.push_back(*p);
  }
  out.push_back('"');
}
}  // namespace

std::string CompiledAggregate::columns_text(std::string_view entry, std::size_t from, std::size_t to) const {
  std::string out;
  pg_guard([&] {
    std::size_t pos = 0;
    bool isnull;
    for (std::size_t i = 0; i < from; ++i) (void)layout_.decode(entry, pos, i, isnull);
    bool single = to - from == 1;
    if (!single) out.push_back('(');
    for (std::size_t i = from; i < to; ++i) {
      Datum d = layout_.decode(entry, pos, i, isnull);
      if (i > from) out.push_back(',');
      if (isnull) continue;
      Oid output;
      bool varlena;
      getTypeOutputInfo(layout_.column(i).type, &output, &varlena);
      char *text = OidOutputFunctionCall(output, d);
      if (single)
        out += text;
      else
        append_record_field(out, text);
    }
    if (!single) out.push_back(')');
  });
  return out;
}

std::string CompiledAggregate::key_text(std::string_view entry) const { return columns_text(entry, 0, nkey_); }
std::string CompiledAggregate::id_text(std::string_view entry) const { return columns_text(entry, nkey_, layout_.size()); }

void CompiledAggregate::id_values(std::string_view entry, Datum *values, bool *nulls) const {
  std::size_t pos = 0;
  bool isnull;
  for (std::size_t i = 0; i < nkey_; ++i) (void)layout_.decode(entry, pos, i, isnull);
  for (std::size_t i = nkey_; i < layout_.size(); ++i) values[i - nkey_] = layout_.decode(entry, pos, i, nulls[i - nkey_]);
}

// ---------------------------------------------------------------- cache

namespace {
struct CacheEntry {
  std::unique_ptr<CompiledAggregate> compiled;
  std::uint64_t used_in = 0;  // transaction serial that last handed it out
  bool invalid = false;       // an invalidation arrived since it was compiled
  bool citus_current = true;  // no invalidation since its Citus kind was looked up
};
std::uint64_t xact_serial = 1;

// Keyed by aggregate and by the user that compiled it. ExecInitExpr checks
// EXECUTE on every function of an expression for the current user, once, at
// compile time; constant folding (expression_planner) even runs IMMUTABLE
// user functions then. A state compiled by one user is therefore never
// handed to another: the owner context of the merger, jobs and maintenance
// (owner_context.hpp) compiles its own entry as the table owner, and a
// reader or writer its own as itself, so each evaluates only what it may
// execute, and nothing of the owner's runs as whoever compiled first. Both
// entries stay valid together within a transaction (callers hold
// references), and invalidations (REVOKE changes pg_proc) reach both.
using CacheKey = std::pair<int32, Oid>;
std::map<CacheKey, CacheEntry> &cache() {
  static std::map<CacheKey, CacheEntry> c;
  return c;
}

CacheKey cache_key(int32 aggr_id) {
  Oid user = InvalidOid;
  pg_guard([&] { user = GetUserId(); });
  return CacheKey(aggr_id, user);
}

bool same_version(const AggregateDef &a, const AggregateDef &b) {
  return ItemPointerEquals(const_cast<ItemPointer>(&a.tid), const_cast<ItemPointer>(&b.tid)) &&
         TransactionIdEquals(a.xmin, b.xmin);
}

// Invalidation callbacks run outside any C++ frame of ours: they only mark.
void invalidate_source(Datum, Oid relid) {
  for (auto &[id, e] : cache())
    if (relid == InvalidOid || e.compiled->def().source == relid) e.invalid = true, e.citus_current = false;
}
void invalidate_all(Datum, int, uint32) {
  for (auto &[id, e] : cache()) e.invalid = true;
}

// An entry handed out again within its transaction. It is never replaced
// there (callers hold references), but after an invalidation of its table
// the Citus catalog is looked at again: a create_distributed_table earlier
// in this transaction has moved the table's rows into shards.
CompiledAggregate &held_entry(CacheEntry &e) {
  if (!e.citus_current) {
    CompiledAggregate *c = e.compiled.get();
    pg_guard([&] { c->recheck_citus(); });
    e.citus_current = true;
  }
  return *e.compiled;
}
}  // namespace

void register_catalog_invalidation() {
  CacheRegisterRelcacheCallback(invalidate_source, (Datum)0);
  CacheRegisterSyscacheCallback(PROCOID, invalidate_all, (Datum)0);
  CacheRegisterSyscacheCallback(TYPEOID, invalidate_all, (Datum)0);
}

CompiledAggregate *compiled_aggregate(int32 aggr_id) {
  auto it = cache().find(cache_key(aggr_id));
  if (it != cache().end()) {
    CacheEntry &e = it->second;
    if (e.used_in == xact_serial) return &held_entry(e);
    if (!e.invalid && def_is_current(e.compiled->def())) {
      e.used_in = xact_serial;
      return e.compiled.get();
    }
  }
  AggregateDef def;
  if (!load_aggregate_by_id(aggr_id, def)) return nullptr;
  return &compiled_aggregate(def);
}

CompiledAggregate &compiled_aggregate(const AggregateDef &def) {
  CacheKey key = cache_key(def.id);
  auto it = cache().find(key);
  if (it != cache().end()) {
    CacheEntry &e = it->second;
    // Never replaced within a transaction: callers hold references.
    if (e.used_in == xact_serial || (!e.invalid && same_version(e.compiled->def(), def))) {
      e.used_in = xact_serial;
      return held_entry(e);
    }
  }
  auto compiled = std::make_unique<CompiledAggregate>(def);
  CacheEntry &e = cache()[key];
  e.compiled = std::move(compiled);
  e.used_in = xact_serial;
  e.invalid = false;
  e.citus_current = true;
  return *e.compiled;
}

void compiled_aggregates_at_xact_end(bool committed) {
  ++xact_serial;
  if (!committed) cache().clear();  // an error may have left expression state half-used
}

}  // namespace aggr::pg
