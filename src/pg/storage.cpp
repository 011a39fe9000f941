#include "storage.hpp"

#include <cstring>
#include <deque>
#include <tuple>
#include <unordered_map>

#include "../core/node_codec.hpp"

extern "C" {
#include "access/heaptoast.h"
#include "commands/sequence.h"
}

namespace aggr::pg {

int node_cache_kb = 64 * 1024;

namespace {
constexpr const char *kSchema = "aggr_internal";
constexpr uint16 kTreeLockClass = 0xA661;  // advisory lock classes no user API produces
constexpr uint16 kAggregateLockClass = 0xA662;

Oid internal_relid(Oid nsp, const char *name) {
  Oid relid = get_relname_relid(name, nsp);
  if (!OidIsValid(relid))
    ereport(ERROR,
            (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("aggr_ext internal relation %s.%s is missing", kSchema, name),
             errhint("Reinstall the extension: DROP EXTENSION aggr_ext; "
                     "CREATE EXTENSION aggr_ext;")));
  return relid;
}

// Tree row columns, 1-based.
enum TreeCol {
  kTreeId = 1,
  kAggrId,
  kGeneration,
  kNs,
  kRoot,
  kHeight,
  kEntries,
  kNodes,
  kNextNode,
  kSum,
  kDrift,
  kTreeCols = kDrift
};

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
  static Oid cached_nsp = InvalidOid;
  static Relations cached;
  Oid nsp = get_namespace_oid(kSchema, true);
  if (!OidIsValid(nsp))
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA), errmsg("aggr_ext is not installed in this database"),
                    errhint("Run CREATE EXTENSION aggr_ext;")));
  if (nsp == cached_nsp) return cached;
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
  r.deltas = internal_relid(nsp, "deltas");
  r.deltas_pkey = internal_relid(nsp, "deltas_pkey");
  cached = r;
  cached_nsp = nsp;
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
    index_insert(idx, values, isnull, &tup->t_self, rel,
                 idx->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO, false, info);
    index_close(idx, RowExclusiveLock);
  }
  list_free(indexes);
}
}  // namespace

void insert_row(Relation rel, HeapTuple tup) {
  simple_heap_insert(rel, tup);
  insert_index_entries(rel, tup);
}

// Old versions of a row updated again and again (a tree's root, its row in
// trees) are removed from its page when the next version would not fit
// there otherwise, so that it does (HOT: no index entries, and WAL of only
// the changed bytes). PostgreSQL prunes on reads that go through the heap;
// our writes find the row through caches and would otherwise leave every
// page full. Pruning only when needed lets a page gather a few versions per
// prune (each prune is a WAL record of its own).
void make_room(Relation rel, Buffer buf, Size row_bytes) {
  LockBuffer(buf, BUFFER_LOCK_SHARE);
  Size free = PageGetHeapFreeSpace(BufferGetPage(buf));
  LockBuffer(buf, BUFFER_LOCK_UNLOCK);
  if (free < MAXALIGN(row_bytes) + sizeof(ItemIdData)) heap_page_prune_opt(rel, buf);
}

void update_row(Relation rel, ItemPointer tid, HeapTuple tup) {
  Buffer buf = ReadBuffer(rel, ItemPointerGetBlockNumber(tid));
  make_room(rel, buf, tup->t_len);
  ReleaseBuffer(buf);
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
  h = hash_combine(h,
                   static_cast<uint32>(generation));  // a job's new generation never waits for live writers
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
  row.xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
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

namespace {
// The last version of each tree row this backend read or wrote.
using TreeKey = std::tuple<int32, int32, std::string>;
std::map<TreeKey, TreeRow> &tree_rows(Relation trees) {
  static std::map<TreeKey, TreeRow> rows;
  static RelFileNode file{};
  if (!RelFileNodeEquals(trees->rd_node,
                         file)) {  // another file: its TIDs name other tuples
    rows.clear();
    file = trees->rd_node;
  }
  return rows;
}
void remember_tree_row(Relation trees, const TreeRow &row) {
  auto &rows = tree_rows(trees);
  if (rows.size() >= 4096) rows.clear();
  rows[TreeKey{row.aggr_id, row.generation, row.ns}] = row;
}
}  // namespace

TreeRow load_tree_row(Relation trees, const Relations &r, int32 aggr_id, int32 generation, const std::string &ns,
                      Snapshot snap) {
  auto &rows = tree_rows(trees);
  auto it = rows.find(TreeKey{aggr_id, generation, ns});
  if (it != rows.end()) {
    const TreeRow &c = it->second;
    if (ItemPointerGetBlockNumber(&c.tid) < RelationGetNumberOfBlocks(trees) &&
        version_visible(trees, c.tid, c.xmin, snap, [&](HeapTuple t) {
          bool isnull;
          return DatumGetInt64(heap_getattr(t, kTreeId, RelationGetDescr(trees), &isnull)) == c.tree_id;
        }))
      return c;
  }
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
  if (tup) {
    row = tree_row_from_tuple(trees, tup);
    remember_tree_row(trees, row);
  }
  return row;
}

std::vector<TreeRow> list_tree_rows(Relation trees, const Relations &r, int32 aggr_id, int32 generation,
                                    Snapshot snap) {
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
  row.xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
  remember_tree_row(trees, row);
}

// ---------------------------------------------------------------- nodes

bool version_visible(Relation rel, const ItemPointerData &tid, TransactionId xmin, Snapshot snap,
                     const std::function<bool(HeapTuple)> &same_row) {
  HeapTupleData tup;
  tup.t_self = tid;
  Buffer buf;
  if (!heap_fetch(rel, snap, &tup, &buf, false)) return false;
  bool same = TransactionIdEquals(HeapTupleHeaderGetRawXmin(tup.t_data), xmin) && same_row(&tup);
  ReleaseBuffer(buf);
  return same;
}

namespace {
// Decoded nodes of this backend, kept across transactions, within
// aggr_ext.node_cache_size. Internal nodes (few, read by every descent) are
// evicted only when no leaf is left; each kind is evicted oldest first.
struct CachedNode {
  ItemPointerData tid;
  TransactionId xmin;
  std::shared_ptr<TreeNode> node;
  std::size_t bytes;
  std::uint64_t slot;  // its place in the eviction order
};

std::size_t decoded_bytes(const TreeNode &n) {
  std::size_t b = sizeof(TreeNode) + 64;
  for (const Entry &e : n.entries) b += sizeof(Entry) + (e.key.size() > 15 ? e.key.capacity() + 16 : 0);
  for (const Child &c : n.children) b += sizeof(Child) + (c.first_key.size() > 15 ? c.first_key.capacity() + 16 : 0);
  return b;
}

class NodeCache {
 public:
  // Forgets everything when the nodes relation is another file (dropped and
  // recreated extension, VACUUM FULL): TIDs there name other tuples.
  void bind(Relation rel) {
    if (rel->rd_id == relid_ && RelFileNodeEquals(rel->rd_node, file_)) return;
    entries_.clear();
    fifo_[0].clear();
    fifo_[1].clear();
    bytes_ = 0;
    relid_ = rel->rd_id;
    file_ = rel->rd_node;
  }
  const CachedNode *find(int64 tree, NodeId id) const {
    auto it = entries_.find({tree, id});
    return it == entries_.end() ? nullptr : &it->second;
  }
  void put(int64 tree, NodeId id, ItemPointerData tid, TransactionId xmin, std::shared_ptr<TreeNode> node) {
    std::size_t budget = static_cast<std::size_t>(node_cache_kb) * 1024;
    std::size_t bytes = decoded_bytes(*node);
    erase(tree, id);
    if (bytes > budget / 4) return;
    auto &fifo = fifo_[node->leaf ? 1 : 0];
    entries_.emplace(std::make_pair(tree, id), CachedNode{tid, xmin, std::move(node), bytes, ++slots_});
    bytes_ += bytes;
    fifo.push_back({tree, id, slots_});
    if (fifo.size() > 2 * entries_.size() + 1024) drop_stale_slots(fifo);
    while (bytes_ > budget && !(fifo_[0].empty() && fifo_[1].empty())) {
      auto &oldest = fifo_[1].empty() ? fifo_[0] : fifo_[1];
      evict(oldest.front());
      oldest.pop_front();
    }
  }
  void erase(int64 tree, NodeId id) {
    auto it = entries_.find({tree, id});
    if (it == entries_.end()) return;
    bytes_ -= it->second.bytes;
    entries_.erase(it);
  }

 private:
  struct KeyHash {
    std::size_t operator()(const std::pair<int64, NodeId> &k) const {
      return std::hash<int64>()(k.first * 1000003 + k.second);
    }
  };
  struct Slot {
    int64 tree;
    NodeId id;
    std::uint64_t slot;
  };
  bool live(const Slot &s) const {
    auto it = entries_.find({s.tree, s.id});
    return it != entries_.end() && it->second.slot == s.slot;
  }
  void evict(const Slot &s) {  // a slot whose entry was replaced or erased since
                               // is skipped
    if (live(s)) erase(s.tree, s.id);
  }
  // Nodes rewritten again and again leave a trail of replaced slots.
  void drop_stale_slots(std::deque<Slot> &fifo) {
    std::deque<Slot> kept;
    for (const Slot &s : fifo)
      if (live(s)) kept.push_back(s);
    fifo.swap(kept);
  }
  std::unordered_map<std::pair<int64, NodeId>, CachedNode, KeyHash> entries_;
  std::deque<Slot> fifo_[2];
  std::uint64_t slots_ = 0;
  std::size_t bytes_ = 0;
  Oid relid_ = InvalidOid;
  RelFileNode file_{};
};

NodeCache &node_cache() {
  static NodeCache cache;
  return cache;
}

// Whether a node tuple is (tree, id): the first two columns, int8 NOT NULL.
bool is_node_row(Relation rel, HeapTuple tup, int64 tree, NodeId id) {
  bool n1, n2;
  return DatumGetInt64(heap_getattr(tup, 1, RelationGetDescr(rel), &n1)) == tree &&
         DatumGetInt64(heap_getattr(tup, 2, RelationGetDescr(rel), &n2)) == id;
}
}  // namespace

namespace {
// Room a node row may take: a quarter more than the node's size limit (for
// changes in place, see encode_node_update), within a heap row. Rows over
// TOAST_TUPLE_THRESHOLD make every update log an extra lock record (heap_update
// releases the page to try TOAST), so nodes that fit under it stay under it.
std::size_t max_payload_bytes(const TreeConfig &config) {
  constexpr std::size_t kRowOverhead = MAXALIGN(SizeofHeapTupleHeader) + 2 * sizeof(int64) + VARHDRSZ + 8;
  constexpr std::size_t kUntoasted = TOAST_TUPLE_THRESHOLD - kRowOverhead;
  std::size_t room = config.max_node_bytes + config.max_node_bytes / 4;
  if (config.max_node_bytes + 64 <= kUntoasted) room = std::min(room, kUntoasted);
  return std::min<std::size_t>(room, 8000);
}
}  // namespace

PgNodeStore::PgNodeStore(Relation nodes, Oid nodes_pkey, TreeRow &tree, const TreeConfig &config, Snapshot snap,
                         bool write_through)
    : nodes_(nodes),
      pkey_(nodes_pkey),
      tree_(tree),
      kind_(config.sum_kind),
      max_payload_(max_payload_bytes(config)),
      snap_(snap),
      write_through_(write_through) {
  pg_guard([&] {
    node_cache().bind(nodes);
    if (write_through_) {
      // Not the current context: a build may create the store inside an SPI
      // call whose context is gone before the store is.
      MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
      bulk_ = GetBulkInsertState();
      MemoryContextSwitchTo(old);
    }
  });
}

// Unwinding from an error may pass here before the transaction aborts; if
// releasing the state fails, the resource owner releases its buffer pin at
// transaction end and its memory goes with the context.
PgNodeStore::~PgNodeStore() {
  if (!bulk_) return;
  BulkInsertState bulk = bulk_;
  try {
    pg_guard([&] { FreeBulkInsertState(bulk); });
  } catch (...) {
  }
}

std::string PgNodeStore::fetch_payload(NodeId id, ItemPointerData *tid, TransactionId *xmin) {
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
      *xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
      found = true;
    }
    systable_endscan(scan);
  });
  if (!found) throw CorruptNode("node " + std::to_string(id) + " of tree " + std::to_string(tree_id) + " is missing");
  return out;
}

// The cached decoded node when `snap_` sees exactly the version it came from.
PgNodeStore::NodePtr PgNodeStore::cached(NodeId id) {
  const CachedNode *c = node_cache().find(tree_.tree_id, id);
  if (!c) return nullptr;
  bool visible = false;
  Relation rel = nodes_;
  int64 tree = tree_.tree_id;
  pg_guard([&] {
    if (nblocks_ == InvalidBlockNumber) nblocks_ = RelationGetNumberOfBlocks(rel);
    visible = ItemPointerGetBlockNumber(&c->tid) < nblocks_ &&
              version_visible(rel, c->tid, c->xmin, snap_, [&](HeapTuple t) { return is_node_row(rel, t, tree, id); });
  });
  if (!visible) return nullptr;
  tids_[id] = c->tid;
  return c->node;
}

// Reads and decodes the version `snap_` sees.
PgNodeStore::NodePtr PgNodeStore::fetch_node(NodeId id) {
  ItemPointerData tid;
  TransactionId xmin;
  std::string payload = fetch_payload(id, &tid, &xmin);
  auto node = std::make_shared<TreeNode>(decode_node(id, payload, kind_));
  tids_[id] = tid;
  node_cache().put(tree_.tree_id, id, tid, xmin, node);
  return node;
}

NodeRef PgNodeStore::load(NodeId id) {
  auto it = pending_.find(id);
  if (it != pending_.end()) {
    if (it->second.removed) throw_corrupt(id, "reached again after this write removed it");
    return it->second.node;
  }
  auto seen = seen_.find(id);
  if (seen != seen_.end()) return seen->second;
  NodePtr node = cached(id);
  if (!node) node = fetch_node(id);
  // Bounded: a walk over a whole tree (aggr_verify, a long page) must not
  // keep every node it passed alive; repeated descents stay within it.
  if (seen_.size() >= 1024) seen_.clear();
  seen_.emplace(id, node);
  return node;
}

// The node is about to be rewritten: its cached copy is moved out rather
// than copied when nobody else holds it (write_node caches the new version).
TreeNode PgNodeStore::load_for_update(NodeId id) {
  seen_.erase(id);
  if (pending_.count(id)) return *load(id);
  NodePtr node = cached(id);
  if (!node) node = fetch_node(id);
  node_cache().erase(tree_.tree_id, id);
  if (node.use_count() == 1) return std::move(*node);
  return *node;
}

void PgNodeStore::save(TreeNode node, bool is_new) {
  NodeId id = node.id;
  seen_.erase(id);
  NodePtr ref = std::make_shared<TreeNode>(std::move(node));
  if (write_through_) {
    write_node(id, ref, is_new);
    return;
  }
  Pending &p = pending_[id];
  p.is_new = p.is_new || is_new;
  p.removed = false;
  p.node = std::move(ref);
}

void PgNodeStore::remove(NodeId id) {
  seen_.erase(id);
  auto it = pending_.find(id);
  if (it != pending_.end() && it->second.is_new) {
    pending_.erase(it);
    return;
  }
  Pending &p = pending_[id];
  p.removed = true;
  p.node.reset();
}

NodeId PgNodeStore::allocate() { return tree_.next_node++; }

// The payload of the version at `tid` (the one this write replaces; empty if
// it is gone), read straight from its page (update_row then makes room for
// the new version there).
std::string PgNodeStore::current_payload(const ItemPointerData &tid) {
  std::string out;
  Relation rel = nodes_;
  pg_guard([&] {
    HeapTupleData tup;
    tup.t_self = tid;
    Buffer buf;
    if (!heap_fetch(rel, SnapshotAny, &tup, &buf, false)) return;
    bool isnull;
    Datum d = heap_getattr(&tup, 3, RelationGetDescr(rel), &isnull);
    if (!isnull) {
      bytea *b = DatumGetByteaPP(d);
      out.assign(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
    }
    ReleaseBuffer(buf);
  });
  return out;
}

void PgNodeStore::write_node(NodeId id, const NodePtr &node, bool is_new) {
  ItemPointerData tid{};
  if (!is_new) {
    auto t = tids_.find(id);
    if (t == tids_.end()) {
      TransactionId xmin;
      (void)fetch_payload(id, &tid,
                          &xmin);  // removed without being read (clear)
    } else {
      tid = t->second;
    }
  }
  Relation rel = nodes_;
  std::string payload;
  if (node && is_new) payload = encode_new_node(*node, kind_, max_payload_);
  if (node && !is_new) payload = encode_node_update(current_payload(tid), *node, kind_, max_payload_);
  int64 tree_id = tree_.tree_id;
  BulkInsertState bulk = bulk_;
  ItemPointerData new_tid{};
  TransactionId new_xmin = InvalidTransactionId;
  pg_guard([&] {
    if (!node) {
      delete_row(rel, &tid);
      return;
    }
    Datum v[3];
    bool n[3] = {false, false, false};
    v[0] = Int64GetDatum(tree_id);
    v[1] = Int64GetDatum(id);
    v[2] = PointerGetDatum(make_bytea(payload.data(), payload.size()));
    HeapTuple tup = heap_form_tuple(RelationGetDescr(rel), v, n);
    if (is_new && bulk) {
      heap_insert(rel, tup, GetCurrentCommandId(true), 0, bulk);
      insert_index_entries(rel, tup);
    } else if (is_new)
      insert_row(rel, tup);
    else
      update_row(rel, &tid, tup);
    new_tid = tup->t_self;
    new_xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
    heap_freetuple(tup);
  });
  // The version just written is what this transaction reads next; a bulk
  // build writes too many nodes for the cache to be of use.
  if (!node)
    node_cache().erase(tree_id, id);
  else if (!write_through_)
    node_cache().put(tree_id, id, new_tid, new_xmin, node);
}

void PgNodeStore::write_back() {
  for (auto &[id, p] : pending_) write_node(id, p.removed ? NodePtr() : p.node, p.is_new);
  pending_.clear();
  tids_.clear();
  seen_.clear();
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
