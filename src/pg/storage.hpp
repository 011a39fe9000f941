// Internal relations of the extension and row-level access to them. Tree
// nodes and tree metadata are ordinary heap rows (WAL, MVCC, replication).
#pragma once
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>
#include <string>

#include "../core/tree.hpp"
#include "guard.hpp"

namespace aggr::pg {

// OIDs of the internal schema's relations; remembered while the schema is
// the same (a dropped and recreated extension has a new schema).
struct Relations {
  Oid aggregates, aggregates_pkey, aggregates_name_key, aggregates_seq;
  Oid trees, trees_pkey, trees_aggr_ns_key, trees_seq;
  Oid nodes, nodes_pkey;
  Oid log, log_pkey, jobs, jobs_pkey;
  Oid deltas, deltas_pkey;
};
Relations internal_relations();  // pg-side

// pg-side: the (int128, double) sum columns of trees and log rows.
bytea *sum_to_bytea(const Sum &s);
Sum sum_from_bytea(const bytea *b);

// pg-side: whether the tuple version at `tid`, inserted by `xmin`, is the one
// `snap` sees; `same_row` checks it is still the row expected there. A
// version (tid, raw xmin) of a relation's current file never changes, so a
// copy decoded from it stays valid as long as the snapshot sees that version.
bool version_visible(Relation rel, const ItemPointerData &tid, TransactionId xmin, Snapshot snap,
                     const std::function<bool(HeapTuple)> &same_row);

// pg-side heap helpers: write a row and maintain every index of the table.
HeapTuple fetch_row(Relation rel, Oid index, ScanKey keys, int nkeys, Snapshot snap);
void insert_row(Relation rel, HeapTuple tup);
void update_row(Relation rel, ItemPointer tid, HeapTuple tup);
void delete_row(Relation rel, ItemPointer tid);

// Lock ordering: the aggregate lock (shared by writers, exclusive for
// clear/drop/backfill), then tree locks in ascending namespace order.
void lock_aggregate(int32 aggr_id, LOCKMODE mode);
void unlock_aggregate(int32 aggr_id, LOCKMODE mode);
void lock_tree(int32 aggr_id, int32 generation, const std::string &ns);

// The persisted header of one tree (one namespace of one aggregate).
struct TreeRow {
  bool exists = false;
  ItemPointerData tid{};
  TransactionId xmin = InvalidTransactionId;  // with tid: which version of the row
  int64 tree_id = 0;
  int32 aggr_id = 0;
  int32 generation = 0;
  std::string ns;
  TreeMeta meta;
  int64 next_node = 1;
  int64 drift = 0;
};

// pg-side: a tree row by (aggregate, generation, namespace) as `snap` sees it.
// The last version read or written per tree is remembered across
// transactions and reused when `snap` sees that very version.
TreeRow load_tree_row(Relation trees, const Relations &r, int32 aggr_id, int32 generation, const std::string &ns,
                      Snapshot snap);
// Every tree of one generation of an aggregate (guards its PostgreSQL calls).
std::vector<TreeRow> list_tree_rows(Relation trees, const Relations &r, int32 aggr_id, int32 generation, Snapshot snap);
TreeRow tree_row_from_tuple(Relation trees, HeapTuple tup);
// pg-side: inserts (allocating tree_id) or updates the row.
void store_tree_row(Relation trees, const Relations &r, TreeRow &row);

// Nodes of one tree. Reads go through `snap`; writes are buffered and
// applied by write_back(), so each node is written at most once per flush
// and a node saved in this flush reads back as saved. Decoded nodes are kept
// in a backend-wide cache across transactions (see node_cache in
// storage.cpp): a load reuses one when `snap` sees the very tuple version it
// was decoded from, so the answer is always the snapshot's.
extern int node_cache_kb;  // GUC aggr_ext.node_cache_size

class PgNodeStore : public NodeStore {
 public:
  PgNodeStore(Relation nodes, Oid nodes_pkey, TreeRow &tree, const TreeConfig &config, Snapshot snap,
              bool write_through);
  ~PgNodeStore() override;
  PgNodeStore(const PgNodeStore &) = delete;
  PgNodeStore &operator=(const PgNodeStore &) = delete;
  NodeRef load(NodeId id) override;
  TreeNode load_for_update(NodeId id) override;
  void save(TreeNode node, bool is_new) override;
  void remove(NodeId id) override;
  NodeId allocate() override;
  void write_back();

 private:
  using NodePtr = std::shared_ptr<TreeNode>;  // shared with the cache, handed out as NodeRef
  struct Pending {
    NodePtr node;
    bool is_new = false;
    bool removed = false;
  };
  std::string fetch_payload(NodeId id, ItemPointerData *tid, TransactionId *xmin);
  NodePtr cached(NodeId id);
  NodePtr fetch_node(NodeId id);
  void write_node(NodeId id, const NodePtr &node, bool is_new);
  std::string current_payload(const ItemPointerData &tid);

  Relation nodes_;
  Oid pkey_;
  TreeRow &tree_;
  SumKind kind_;
  std::size_t max_payload_;
  Snapshot snap_;
  bool write_through_;  // bulk build: nodes are written as saved, never reloaded
  // A bulk build's new rows go through a ring of buffers and onto the page
  // last filled (heap_insert's bulk state, as COPY does), not through the
  // whole of shared_buffers: at 1M entries the build spent a fifth of its
  // time faulting fresh shared buffer pages in.
  BulkInsertState bulk_ = nullptr;
  std::map<NodeId, Pending> pending_;
  std::map<NodeId, ItemPointerData> tids_;
  // Nodes load() found visible to snap_ (which does not change while the
  // store lives): a read that descends again (a selection across the parts
  // of a partitioned aggregate ranks several keys) checks each version once.
  // Forgotten when this store writes the node.
  std::unordered_map<NodeId, NodePtr> seen_;
  BlockNumber nblocks_ = InvalidBlockNumber;  // of nodes_, read once: vacuum cannot truncate under our lock
};

// pg-side: deletes every node and the row of a tree.
void drop_tree(Relation trees, Relation nodes, const Relations &r, const TreeRow &row);

}  // namespace aggr::pg
