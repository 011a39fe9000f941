#include "storage.hpp"

#include <cstring>

#include "../core/node_codec.hpp"

extern "C" {
#include "commands/sequence.h"
}

namespace aggr::pg {

namespace {
constexpr const char *kSchema = "aggr_internal";
constexpr uint16 kTreeLockClass = 0xA661;  // advisory lock classes no user API produces
constexpr uint16 kAggregateLockClass = 0xA662;

Oid internal_relid(Oid nsp, const char *name) {
  Oid relid = get_relname_relid(name, nsp);
  if (!OidIsValid(relid))
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("aggr_ext internal relation %s.%s is missing", kSchema, name),
                    errhint("Reinstall the extension: DROP EXTENSION aggr_ext; CREATE EXTENSION aggr_ext;")));
  return relid;
}

// Tree row columns, 1-based.
enum TreeCol { kTreeId = 1, kAggrId, kGeneration, kNs, kRoot, kHeight, kEntries, kNodes, kNextNode, kSum, kDrift, kTreeCols = kDrift };

bytea *make_bytea(const char *data, std::size_t len) {
  bytea *b = static_cast<bytea *>(palloc(len + VARHDRSZ));
  SET_VARSIZE(b, len + VARHDRSZ);
  memcpy(VARDATA(b), data, len);
  return b;
}
}  // namespace

bytea *sum_to_bytea(const Sum &s) {
  char raw[sizeof(aggr::int128) + sizeof(double)];
  memcpy(raw, &s.exact, sizeof(aggr::int128));
  memcpy(raw + sizeof(aggr::int128), &s.approx, sizeof(double));
  return make_bytea(raw, sizeof raw);
}

Sum sum_from_bytea(const bytea *b) {
  Sum s;
  if (VARSIZE_ANY_EXHDR(b) == sizeof(aggr::int128) + sizeof(double)) {
    memcpy(&s.exact, VARDATA_ANY(b), sizeof(aggr::int128));
    memcpy(&s.approx, VARDATA_ANY(b) + sizeof(aggr::int128), sizeof(double));
  }
  return s;
}

Relations internal_relations() {
  Oid nsp = get_namespace_oid(kSchema, true);
  if (!OidIsValid(nsp))
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA), errmsg("aggr_ext is not installed in this database"),
                    errhint("Run CREATE EXTENSION aggr_ext;")));
  Relations r;
  r.aggregates = internal_relid(nsp, "aggregates");
  r.aggregates_pkey = internal_relid(nsp, "aggregates_pkey");
  r.aggregates_name_key = internal_relid(nsp, "aggregates_name_key");
  r.aggregates_seq = internal_relid(nsp, "aggregates_aggr_id_seq");
  r.trees = internal_relid(nsp, "trees");
  r.trees_pkey = internal_relid(nsp, "trees_pkey");
  r.trees_aggr_ns_key = internal_relid(nsp, "trees_aggr_id_generation_ns_key");
  r.trees_seq = internal_relid(nsp, "trees_tree_id_seq");
  r.nodes = internal_relid(nsp, "nodes");
  r.nodes_pkey = internal_relid(nsp, "nodes_pkey");
  r.log = internal_relid(nsp, "log");
  r.log_pkey = internal_relid(nsp, "log_pkey");
  r.jobs = internal_relid(nsp, "jobs");
  r.jobs_pkey = internal_relid(nsp, "jobs_pkey");
  return r;
}

HeapTuple fetch_row(Relation rel, Oid index, ScanKey keys, int nkeys, Snapshot snap) {
  SysScanDesc scan = systable_beginscan(rel, index, true, snap, nkeys, keys);
  HeapTuple tup = systable_getnext(scan);
  HeapTuple copy = HeapTupleIsValid(tup) ? heap_copytuple(tup) : NULL;
  systable_endscan(scan);
  return copy;
}

namespace {
void insert_index_entries(Relation rel, HeapTuple tup) {
  List *indexes = RelationGetIndexList(rel);
  ListCell *lc;
  foreach (lc, indexes) {
    Relation idx = index_open(lfirst_oid(lc), RowExclusiveLock);
    IndexInfo *info = BuildIndexInfo(idx);
    Datum values[INDEX_MAX_KEYS];
    bool isnull[INDEX_MAX_KEYS];
    for (int i = 0; i < info->ii_NumIndexAttrs; ++i)
      values[i] = heap_getattr(tup, info->ii_IndexAttrNumbers[i], RelationGetDescr(rel), &isnull[i]);
    index_insert(idx, values, isnull, &tup->t_self, rel, idx->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
                 false, info);
    index_close(idx, RowExclusiveLock);
  }
  list_free(indexes);
}
}  // namespace

void insert_row(Relation rel, HeapTuple tup) {
  simple_heap_insert(rel, tup);
  insert_index_entries(rel, tup);
}

void update_row(Relation rel, ItemPointer tid, HeapTuple tup) {
  simple_heap_update(rel, tid, tup);
  if (!HeapTupleIsHeapOnly(tup)) insert_index_entries(rel, tup);
}

void delete_row(Relation rel, ItemPointer tid) { simple_heap_delete(rel, tid); }

void lock_aggregate(int32 aggr_id, LOCKMODE mode) {
  LOCKTAG tag;
  SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(aggr_id), 0, kAggregateLockClass);
  (void)LockAcquire(&tag, mode, false, false);
}

void unlock_aggregate(int32 aggr_id, LOCKMODE mode) {
  LOCKTAG tag;
  SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(aggr_id), 0, kAggregateLockClass);
  LockRelease(&tag, mode, false);
}

void lock_tree(int32 aggr_id, int32 generation, const std::string &ns) {
  LOCKTAG tag;
  uint32 h = DatumGetUInt32(hash_any(reinterpret_cast<const unsigned char *>(ns.data()), static_cast<int>(ns.size())));
  h = hash_combine(h, static_cast<uint32>(generation));  // a job's new generation never waits for live writers
  SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(aggr_id), h, kTreeLockClass);
  (void)LockAcquire(&tag, ExclusiveLock, false, false);
}

TreeRow tree_row_from_tuple(Relation trees, HeapTuple tup) {
  Datum v[kTreeCols];
  bool n[kTreeCols];
  heap_deform_tuple(tup, RelationGetDescr(trees), v, n);
  TreeRow row;
  row.exists = true;
  row.tid = tup->t_self;
  row.tree_id = DatumGetInt64(v[kTreeId - 1]);
  row.aggr_id = DatumGetInt32(v[kAggrId - 1]);
  row.generation = DatumGetInt32(v[kGeneration - 1]);
  bytea *ns = DatumGetByteaPP(v[kNs - 1]);
  row.ns.assign(VARDATA_ANY(ns), VARSIZE_ANY_EXHDR(ns));
  row.meta.root = DatumGetInt64(v[kRoot - 1]);
  row.meta.height = static_cast<std::uint32_t>(DatumGetInt32(v[kHeight - 1]));
  row.meta.count = static_cast<std::uint64_t>(DatumGetInt64(v[kEntries - 1]));
  row.meta.nodes = static_cast<std::uint64_t>(DatumGetInt64(v[kNodes - 1]));
  row.next_node = DatumGetInt64(v[kNextNode - 1]);
  row.meta.sum = sum_from_bytea(DatumGetByteaPP(v[kSum - 1]));
  row.drift = DatumGetInt64(v[kDrift - 1]);
  return row;
}

TreeRow load_tree_row(Relation trees, const Relations &r, int32 aggr_id, int32 generation, const std::string &ns,
                      Snapshot snap) {
  ScanKeyData keys[3];
  bytea *nsb = make_bytea(ns.data(), ns.size());
  ScanKeyInit(&keys[0], kAggrId, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggr_id));
  ScanKeyInit(&keys[1], kGeneration, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(generation));
  ScanKeyInit(&keys[2], kNs, BTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(nsb));
  HeapTuple tup = fetch_row(trees, r.trees_aggr_ns_key, keys, 3, snap);
  TreeRow row;
  row.aggr_id = aggr_id;
  row.generation = generation;
  row.ns = ns;
  if (tup) row = tree_row_from_tuple(trees, tup);
  return row;
}

std::vector<TreeRow> list_tree_rows(Relation trees, const Relations &r, int32 aggr_id, int32 generation, Snapshot snap) {
  List *tuples = NIL;
  pg_guard([&] {
    ScanKeyData keys[2];
    ScanKeyInit(&keys[0], kAggrId, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggr_id));
    ScanKeyInit(&keys[1], kGeneration, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(generation));
    SysScanDesc scan = systable_beginscan(trees, r.trees_aggr_ns_key, true, snap, 2, keys);
    HeapTuple tup;
    while (HeapTupleIsValid(tup = systable_getnext(scan))) tuples = lappend(tuples, heap_copytuple(tup));
    systable_endscan(scan);
  });
  std::vector<TreeRow> rows;
  ListCell *lc;
  foreach (lc, tuples) {
    TreeRow row;
    pg_guard([&] { row = tree_row_from_tuple(trees, (HeapTuple)lfirst(lc)); });
    rows.push_back(std::move(row));
  }
  return rows;
}

void store_tree_row(Relation trees, const Relations &r, TreeRow &row) {
  Datum v[kTreeCols];
  bool n[kTreeCols] = {};
  if (!row.exists && row.tree_id == 0) row.tree_id = nextval_internal(r.trees_seq, false);
  v[kTreeId - 1] = Int64GetDatum(row.tree_id);
  v[kAggrId - 1] = Int32GetDatum(row.aggr_id);
  v[kGeneration - 1] = Int32GetDatum(row.generation);
  v[kNs - 1] = PointerGetDatum(make_bytea(row.ns.data(), row.ns.size()));
  v[kRoot - 1] = Int64GetDatum(row.meta.root);
  v[kHeight - 1] = Int32GetDatum(static_cast<int32>(row.meta.height));
  v[kEntries - 1] = Int64GetDatum(static_cast<int64>(row.meta.count));
  v[kNodes - 1] = Int64GetDatum(static_cast<int64>(row.meta.nodes));
  v[kNextNode - 1] = Int64GetDatum(row.next_node);
  v[kSum - 1] = PointerGetDatum(sum_to_bytea(row.meta.sum));
  v[kDrift - 1] = Int64GetDatum(row.drift);
  HeapTuple tup = heap_form_tuple(RelationGetDescr(trees), v, n);
  if (row.exists) {
    update_row(trees, &row.tid, tup);
  } else {
    insert_row(trees, tup);
    row.exists = true;
  }
  row.tid = tup->t_self;
}

// ---------------------------------------------------------------- nodes

PgNodeStore::PgNodeStore(Relation nodes, Oid nodes_pkey, TreeRow &tree, SumKind kind, Snapshot snap, bool write_through)
    : nodes_(nodes), pkey_(nodes_pkey), tree_(tree), kind_(kind), snap_(snap), write_through_(write_through) {}

std::string PgNodeStore::fetch_payload(NodeId id, ItemPointerData *tid) {
  std::string out;
  bool found = false;
  Relation rel = nodes_;
  Oid pkey = pkey_;
  Snapshot snap = snap_;
  int64 tree_id = tree_.tree_id;
  pg_guard([&] {
    ScanKeyData keys[2];
    ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(tree_id));
    ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
    SysScanDesc scan = systable_beginscan(rel, pkey, true, snap, 2, keys);
    HeapTuple tup = systable_getnext(scan);
    if (HeapTupleIsValid(tup)) {
      bool isnull;
      Datum d = heap_getattr(tup, 3, RelationGetDescr(rel), &isnull);
      bytea *b = DatumGetByteaPP(d);
      out.assign(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
      *tid = tup->t_self;
      found = true;
    }
    systable_endscan(scan);
  });
  if (!found) throw CorruptNode("node " + std::to_string(id) + " of tree " + std::to_string(tree_id) + " is missing");
  return out;
}

TreeNode PgNodeStore::load(NodeId id) {
  auto it = pending_.find(id);
  if (it != pending_.end()) {
    if (it->second.removed) throw InvariantViolation("load of a removed node");
    return decode_node(id, it->second.payload, kind_);
  }
  ItemPointerData tid;
  std::string payload = fetch_payload(id, &tid);
  tids_[id] = tid;
  return decode_node(id, payload, kind_);
}

void PgNodeStore::save(const TreeNode &node, bool is_new) {
  std::string payload = encode_node(node, kind_);
  if (write_through_) {
    write_node(node.id, &payload, is_new);
    return;
  }
  Pending &p = pending_[node.id];
  p.is_new = p.is_new || is_new;
  p.removed = false;
  p.payload = std::move(payload);
}

void PgNodeStore::remove(NodeId id) {
  auto it = pending_.find(id);
  if (it != pending_.end() && it->second.is_new) {
    pending_.erase(it);
    return;
  }
  Pending &p = pending_[id];
  p.removed = true;
  p.payload.clear();
}

NodeId PgNodeStore::allocate() { return tree_.next_node++; }

void PgNodeStore::write_node(NodeId id, const std::string *payload, bool is_new) {
  ItemPointerData tid{};
  if (!is_new) {
    auto t = tids_.find(id);
    if (t == tids_.end())
      (void)fetch_payload(id, &tid);  // removed without being read (clear)
    else
      tid = t->second;
  }
  Relation rel = nodes_;
  int64 tree_id = tree_.tree_id;
  pg_guard([&] {
    if (!payload) {
      delete_row(rel, &tid);
      return;
    }
    Datum v[3];
    bool n[3] = {false, false, false};
    v[0] = Int64GetDatum(tree_id);
    v[1] = Int64GetDatum(id);
    v[2] = PointerGetDatum(make_bytea(payload->data(), payload->size()));
    HeapTuple tup = heap_form_tuple(RelationGetDescr(rel), v, n);
    if (is_new)
      insert_row(rel, tup);
    else
      update_row(rel, &tid, tup);
    heap_freetuple(tup);
  });
}

void PgNodeStore::write_back() {
  for (auto &[id, p] : pending_) {
    if (p.removed)
      write_node(id, nullptr, false);
    else
      write_node(id, &p.payload, p.is_new);
  }
  pending_.clear();
  tids_.clear();
}

void drop_tree(Relation trees, Relation nodes, const Relations &r, const TreeRow &row) {
  ScanKeyData key;
  ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(row.tree_id));
  SysScanDesc scan = systable_beginscan(nodes, r.nodes_pkey, true, GetLatestSnapshot(), 1, &key);
  HeapTuple tup;
  while (HeapTupleIsValid(tup = systable_getnext(scan))) simple_heap_delete(nodes, &tup->t_self);
  systable_endscan(scan);
  ItemPointerData tid = row.tid;
  simple_heap_delete(trees, &tid);
}

}  // namespace aggr::pg
