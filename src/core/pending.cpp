#include "pending.hpp"

#include <algorithm>

namespace aggr {

namespace {
// Before (or at) exactly one entry key.
class EntryProbe : public Probe {
 public:
  EntryProbe(const Ordering &order, std::string_view key) : order_(order), key_(key) {}
  int compare_to(std::string_view entry_key) const override { return order_.compare(key_, entry_key); }

 private:
  const Ordering &order_;
  std::string_view key_;
};

bool inserted(const PendingChanges::Change &c) { return !c.existed && c.exists; }
bool deleted(const PendingChanges::Change &c) { return c.existed && !c.exists; }

// Signed count and sum of one change.
std::int64_t effect(const PendingChanges::Change &c, Sum *sum) {  // sum may be null: counts only
  if (sum && c.exists) *sum += c.new_value;
  if (sum && c.existed) *sum -= c.old_value;
  return (c.exists ? 1 : 0) - (c.existed ? 1 : 0);
}
}  // namespace

PendingChanges::PendingChanges(std::vector<Delta> deltas, const Ordering &order) {
  std::stable_sort(deltas.begin(), deltas.end(),
                   [&](const Delta &a, const Delta &b) { return order.compare(a.key, b.key) < 0; });
  std::size_t i = 0;
  while (i < deltas.size()) {
    std::size_t j = i + 1;
    while (j < deltas.size() && order.compare(deltas[i].key, deltas[j].key) == 0) ++j;
    // The first change says whether the entry was in the tree, the last
    // whether it is there now (changes of one entry are ordered by commit).
    const Delta &first = deltas[i], &last = deltas[j - 1];
    Change c;
    c.existed = first.sign < 0;
    c.exists = last.sign > 0;
    if (c.existed || c.exists) {
      c.key = last.key;
      if (c.existed) c.old_value = first.value;
      if (c.exists) c.new_value = last.value;
      count_change_ += effect(c, &sum_change_);
      changes_.push_back(std::move(c));
    }
    i = j;
  }
}

std::int64_t PendingChanges::count_before(const Probe &probe, Sum *sum) const {
  std::int64_t n = 0;
  for (const Change &c : changes_) {
    if (probe.compare_to(c.key) <= 0) break;
    n += effect(c, sum);
  }
  return n;
}

std::int64_t PendingChanges::count_between(const Probe *lower, const Probe *upper, Sum *sum) const {
  std::int64_t n = 0;
  for (const Change &c : changes_) {
    if (upper && upper->compare_to(c.key) <= 0) break;
    if (!lower || lower->compare_to(c.key) < 0) n += effect(c, sum);
  }
  return n;
}

std::vector<Op> PendingChanges::ops() const {
  std::vector<Op> out;
  out.reserve(changes_.size());
  for (const Change &c : changes_) {
    Op op;
    op.key = c.key;
    op.value = c.new_value;
    op.action = c.exists ? Op::Action::Upsert : Op::Action::Remove;
    op.expect_present = c.existed;
    out.push_back(std::move(op));
  }
  return out;
}

namespace {
using Start = MergedCursor::Start;

// Where merged offset `offset` falls: the tree offset of the first tree
// entry at or after it, and the first change that can still be emitted.
Start find_start(const Tree &tree, const Ordering &order, const std::vector<PendingChanges::Change> &changes,
                 std::uint64_t offset) {
  // Inserted entries before the offset: an inserted entry's merged position
  // is the tree entries before it, less deleted ones, plus earlier inserts.
  std::uint64_t inserted_before = 0, deleted_so_far = 0;
  std::size_t first_change = 0;
  std::vector<std::uint64_t> deleted_offsets;
  for (std::size_t i = 0; i < changes.size(); ++i) {
    const PendingChanges::Change &c = changes[i];
    if (deleted(c)) {
      deleted_offsets.push_back(tree.prefix_before(EntryProbe(order, c.key)).count);
      ++deleted_so_far;
    } else if (inserted(c)) {
      std::uint64_t position = tree.prefix_before(EntryProbe(order, c.key)).count - deleted_so_far + inserted_before;
      if (position >= offset) break;
      ++inserted_before;
      first_change = i + 1;
    }
  }
  // The (offset - inserted_before)-th tree entry that is not deleted.
  std::uint64_t t = offset - inserted_before;
  std::sort(deleted_offsets.begin(), deleted_offsets.end());
  for (std::uint64_t r : deleted_offsets) {
    if (r > t) break;
    ++t;
  }
  return {t, first_change};
}
}  // namespace

MergedCursor::MergedCursor(NodeStore &store, const Tree &tree, const Ordering &order, const PendingChanges &pending,
                           std::uint64_t offset)
    : MergedCursor(store, tree.meta(), order, pending,
                   pending.empty() ? Start{offset, 0} : find_start(tree, order, pending.changes(), offset)) {}

MergedCursor::MergedCursor(NodeStore &store, const TreeMeta &meta, const Ordering &order, const PendingChanges &pending,
                           Start start)
    : order_(order), changes_(pending.changes()), tree_(store, meta, start.tree_offset), change_(start.change) {
  settle();
}

void MergedCursor::settle() {
  for (;;) {
    bool have_tree = tree_.valid(), have_change = change_ < changes_.size();
    if (!have_tree && !have_change) {
      valid_ = false;
      return;
    }
    const PendingChanges::Change *c = have_change ? &changes_[change_] : nullptr;
    int cmp = !have_change ? 1 : !have_tree ? -1 : order_.compare(c->key, tree_.entry().key);
    if (cmp > 0) {  // the tree entry comes first, unchanged
      current_ = tree_.entry();
      from_tree_ = true, from_change_ = false;
    } else if (cmp < 0) {  // a change before the tree entry: only an inserted entry shows
      if (!inserted(*c)) {  // its tree entry is missing (drift): nothing to show or hide
        ++change_;
        continue;
      }
      current_ = Entry{c->key, c->new_value};
      from_tree_ = false, from_change_ = true;
    } else if (c->exists) {  // the tree entry with its new value
      current_ = Entry{c->key, c->new_value};
      from_tree_ = from_change_ = true;
    } else {  // the tree entry is deleted
      tree_.next();
      ++change_;
      continue;
    }
    valid_ = true;
    return;
  }
}

void MergedCursor::next() {
  if (from_tree_) tree_.next();
  if (from_change_) ++change_;
  settle();
}

}  // namespace aggr

// The core is server-independent: fail the build if a server header crept in.
#ifdef POSTGRES_H
#error "src/core must not include PostgreSQL headers"
#endif
