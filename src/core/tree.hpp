// The counted B+tree: order-statistic queries, batched apply, bulk build
// and the invariant checker, over a NodeStore and an Ordering.
#pragma once
#include <deque>
#include <functional>

#include "types.hpp"

namespace aggr {

// Count and sum of a prefix of the tree.
struct Prefix {
  std::uint64_t count = 0;
  Sum sum;
};

// Idempotent maintenance operation on one entry. `expect_present` says
// what the row trigger believed the tree held before; a mismatch is drift.
struct Op {
  enum class Action : std::uint8_t { Upsert, Remove };
  std::string key;
  Sum value;
  Action action = Action::Upsert;
  bool expect_present = false;
};

struct ApplyStats {
  std::uint64_t inserted = 0;
  std::uint64_t replaced = 0;
  std::uint64_t removed = 0;
  std::uint64_t drift = 0;  // ops that found the tree out of step
};

class Tree {
 public:
  Tree(NodeStore &store, const Ordering &order, TreeConfig config, TreeMeta meta)
      : store_(store), order_(order), config_(config), meta_(meta) {}

  const TreeMeta &meta() const { return meta_; }
  const TreeConfig &config() const { return config_; }

  // Entries strictly before the probe (probe.compare_to(entry) > 0).
  Prefix prefix_before(const Probe &probe) const;
  // prefix_before(probe).count without the sums: a rank, or a selection
  // across parts, reads no entry values.
  std::uint64_t count_before(const Probe &probe) const;
  // Entries strictly between two probes; a null probe is unbounded. Sums
  // add whole subtrees inside the range (no subtraction: exact for floats).
  Prefix range(const Probe *lower, const Probe *upper) const;
  // Entry at 0-based offset; offset must be < count.
  Entry at(std::uint64_t offset) const;
  // Calls visit(entry) for entries from offset on, until it returns false.
  void scan_from(std::uint64_t offset, const std::function<bool(const Entry &)> &visit) const;

  // Applies ops sorted strictly ascending by key (one op per key).
  ApplyStats apply(const std::vector<Op> &ops);
  // Removes every node; the tree becomes empty.
  void clear();
  // Walks the whole tree; throws InvariantViolation with a reason, or
  // CorruptNode for a structure no walk can rely on.
  void check() const;

 private:
  template <bool kWithSums>
  Prefix before(const Probe &probe) const;
  struct Piece {  // a subtree summary returned upwards by apply
    Child child;
    std::size_t bytes = 0;
  };
  // `level` counts down from meta_.height to 1 (leaves) on every walk.
  TreeNode load_for_update_at(NodeId id, std::uint32_t level);
  std::vector<Piece> apply_node(NodeId id, std::uint32_t level, const Op *first, const Op *last, ApplyStats &stats);
  void merge_leaf(TreeNode &node, const Op *first, const Op *last, ApplyStats &stats) const;
  void apply_children(TreeNode &node, std::uint32_t level, const Op *first, const Op *last, ApplyStats &stats);
  void fix_underfull(TreeNode &node, std::uint32_t child_level, std::vector<std::size_t> &bytes);
  std::vector<Piece> write_split(TreeNode &&node, bool is_new);
  Piece summarize(const TreeNode &node) const;
  void grow_and_collapse(std::vector<Piece> pieces);
  void clear_subtree(NodeId id, std::uint32_t level, std::uint64_t &budget);
  void range_subtree(NodeId id, std::uint32_t level, const Probe *lower, const Probe *upper, bool lower_done,
                     bool upper_done, Prefix &acc, std::uint32_t &budget) const;
  void check_subtree(NodeId id, std::uint32_t level, const std::string *lower, Child &out, std::string &last,
                     std::uint64_t &nodes) const;

  NodeStore &store_;
  const Ordering &order_;
  TreeConfig config_;
  TreeMeta meta_;
};

// Forward iteration in entry order from an offset; holds one node per level.
// Throws CorruptNode when the tree holds more or fewer entries than meta.count.
class Cursor {
 public:
  Cursor(NodeStore &store, const TreeMeta &meta, std::uint64_t offset);
  bool valid() const { return !path_.empty(); }
  const Entry &entry() const { return path_.back().node->entries[path_.back().index]; }
  void next();

 private:
  struct Frame {
    NodeRef node;
    std::size_t index;
  };
  void descend_leftmost(NodeId id);
  NodeStore &store_;
  NodeId root_;
  std::uint32_t height_;
  std::uint64_t remaining_ = 0;  // entries the count says follow the current one
  std::vector<Frame> path_;
};

// Builds a tree bottom-up from entries added in strictly ascending order,
// leaves filled to `fill` of capacity. Memory is one pending node per level.
class BulkBuilder {
 public:
  BulkBuilder(NodeStore &store, const Ordering &order, TreeConfig config, double fill = 0.9);
  void add(Entry entry);  // throws std::invalid_argument if out of order
  TreeMeta finish();

 private:
  struct Level {
    TreeNode prev, cur;
    bool has_prev = false;
    std::size_t cur_bytes = 0;
  };
  void push(std::size_t level, Child child, Entry *entry);
  void emit(std::size_t level, TreeNode &node);
  void rebalance_tail(std::size_t level);
  std::size_t byte_midpoint(const TreeNode &node) const;

  NodeStore &store_;
  const Ordering &order_;
  TreeConfig config_;
  std::size_t target_bytes_;
  std::deque<Level> levels_;  // deque: references stay valid as levels grow
  std::string last_key_;
  std::uint64_t count_ = 0;
  std::uint64_t nodes_ = 0;
  Sum sum_;
};

Sum node_sum(const TreeNode &node);
std::uint64_t node_count(const TreeNode &node);

}  // namespace aggr
