// Committed changes not yet folded into a tree (the deferred write path).
// Writers append signed deltas (+1 an entry appeared, -1 it went away); a
// merger folds them into the tree and deletes them in one transaction, so a
// snapshot sees every change exactly once: in the tree or as a delta. Reads
// answer from the tree plus the deltas their snapshot sees.
#pragma once
#include <vector>

#include "tree.hpp"

namespace aggr {

// One appended change, in append (sequence) order.
struct Delta {
  std::string key;  // encoded entry key
  Sum value;
  int sign = 1;  // +1 the entry now exists with `value`; -1 the entry with `value` is gone
};

// The deltas of one tree, netted per entry.
class PendingChanges {
 public:
  PendingChanges() = default;
  // `deltas` in sequence order.
  PendingChanges(std::vector<Delta> deltas, const Ordering &order);

  bool empty() const { return changes_.empty(); }
  // Net count (may be negative) and sum of all changes.
  std::int64_t count_change() const { return count_change_; }
  const Sum &sum_change() const { return sum_change_; }
  // Adjustments of Tree::prefix_before and Tree::range. Signed count; a null
  // sum: the count only.
  std::int64_t count_before(const Probe &probe, Sum *sum) const;
  std::int64_t count_between(const Probe *lower, const Probe *upper, Sum *sum) const;
  // The ops that fold these changes into the tree.
  std::vector<Op> ops() const;

  struct Change {
    std::string key;
    bool existed = false, exists = false;  // in the tree before / after the changes
    Sum old_value, new_value;
  };
  const std::vector<Change> &changes() const { return changes_; }

 private:
  std::vector<Change> changes_;  // ascending by key; never both !existed and !exists
  std::int64_t count_change_ = 0;
  Sum sum_change_;
};

// Entries of tree + pending changes in order, from a 0-based offset.
class MergedCursor {
 public:
  MergedCursor(NodeStore &store, const Tree &tree, const Ordering &order, const PendingChanges &pending,
               std::uint64_t offset);
  bool valid() const { return valid_; }
  const Entry &entry() const { return current_; }
  void next();

  struct Start {
    std::uint64_t tree_offset;  // first tree entry at or after the offset
    std::size_t change;         // first change that can still show
  };

 private:
  MergedCursor(NodeStore &store, const TreeMeta &meta, const Ordering &order, const PendingChanges &pending, Start start);
  void settle();  // positions on the next entry to emit
  const Ordering &order_;
  const std::vector<PendingChanges::Change> &changes_;
  Cursor tree_;
  std::size_t change_ = 0;  // next change not yet passed
  bool valid_ = false;
  bool from_tree_ = false, from_change_ = false;  // what next() moves past
  Entry current_;
};

// Entries in tree + pending changes.
inline std::uint64_t merged_count(const TreeMeta &meta, const PendingChanges &pending) {
  return static_cast<std::uint64_t>(static_cast<std::int64_t>(meta.count) + pending.count_change());
}

}  // namespace aggr
