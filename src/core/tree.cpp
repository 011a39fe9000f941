#include "tree.hpp"

#include <algorithm>

#include "node_codec.hpp"

namespace aggr {

Sum node_sum(const TreeNode &node) {
  Sum s;
  if (node.leaf)
    for (const Entry &e : node.entries) s += e.value;
  else
    for (const Child &c : node.children) s += c.sum;
  return s;
}

std::uint64_t node_count(const TreeNode &node) {
  if (node.leaf) return node.entries.size();
  std::uint64_t n = 0;
  for (const Child &c : node.children) n += c.count;
  return n;
}

// ---------------------------------------------------------------- validation
//
// Nodes come from storage and are untrusted. Every walk counts levels down
// from the recorded height and checks, per node visited, what it is about
// to rely on: a leaf exactly at level 1, at least one item, and (below)
// counts that do not index past a node. Sharing and cycles between nodes
// are then bounded too: no walk goes deeper than the height, and walks that
// could revisit shared subtrees are bounded by counts the tree records.

namespace {
void check_meta(const TreeMeta &meta) {
  if (meta.root != 0 && (meta.height == 0 || meta.height > kMaxTreeHeight))
    throw_corrupt(meta.root, "the tree's recorded height is out of range");
}

void check_shape(const TreeNode &n, NodeId id, std::uint32_t level) {
  if (n.leaf && level != 1) throw_corrupt(id, "leaf above the leaf level");
  if (!n.leaf && level <= 1) throw_corrupt(id, "internal node at the leaf level");
  if (n.leaf ? n.entries.empty() : n.children.empty())
    throw_corrupt(id, n.leaf ? "empty leaf" : "internal node without children");
}

// A node a walk reaches at `level` (1 = leaves).
NodeRef load_at(NodeStore &store, NodeId id, std::uint32_t level) {
  check_interrupts();
  NodeRef n = store.load(id);
  check_shape(*n, id, level);
  return n;
}
}  // namespace

TreeNode Tree::load_for_update_at(NodeId id, std::uint32_t level) {
  check_interrupts();
  TreeNode n = store_.load_for_update(id);
  check_shape(n, id, level);
  return n;
}

// ---------------------------------------------------------------- queries

// Entries before `probe`: their count, and their sum when kWithSums (a rank
// or a selection step skips adding the sums).
template <bool kWithSums>
Prefix Tree::before(const Probe &probe) const {
  Prefix p;
  if (meta_.root == 0) return p;
  check_meta(meta_);
  NodeId id = meta_.root;
  for (std::uint32_t level = meta_.height;; --level) {  // ends at level 1: check_shape wants a leaf there
    NodeRef ref = load_at(store_, id, level);
    const TreeNode &n = *ref;
    if (n.leaf) {
      auto end = std::partition_point(n.entries.begin(), n.entries.end(),
                                      [&](const Entry &e) { return probe.compare_to(e.key) > 0; });
      if constexpr (kWithSums)
        for (auto it = n.entries.begin(); it != end; ++it) p.sum += it->value;
      p.count += static_cast<std::uint64_t>(end - n.entries.begin());
      return p;
    }
    // The child to descend into is the last one whose first key is before the probe.
    auto after = std::partition_point(n.children.begin() + 1, n.children.end(),
                                      [&](const Child &c) { return probe.compare_to(c.first_key) > 0; });
    for (auto it = n.children.begin(); it + 1 != after; ++it) {
      p.count += it->count;
      if constexpr (kWithSums) p.sum += it->sum;
    }
    id = (after - 1)->id;
  }
}

Prefix Tree::prefix_before(const Probe &probe) const { return before<true>(probe); }

std::uint64_t Tree::count_before(const Probe &probe) const { return before<false>(probe).count; }

Prefix Tree::range(const Probe *lower, const Probe *upper) const {
  Prefix acc;
  if (meta_.root == 0) return acc;
  if (!lower && !upper) return Prefix{meta_.count, meta_.sum};
  check_meta(meta_);
  // A valid tree has at most two partly covered nodes per level (one at
  // each end of the range); lying separators could make it many more.
  std::uint32_t budget = 2 * meta_.height;
  range_subtree(meta_.root, meta_.height, lower, upper, lower == nullptr, upper == nullptr, acc, budget);
  return acc;
}

// lower_done / upper_done: every entry of this subtree is known to be after
// the lower probe / before the upper probe.
void Tree::range_subtree(NodeId id, std::uint32_t level, const Probe *lower, const Probe *upper, bool lower_done,
                         bool upper_done, Prefix &acc, std::uint32_t &budget) const {
  if (budget == 0) throw_corrupt(id, "separators out of order: the range walk visits too many nodes");
  --budget;
  NodeRef ref = load_at(store_, id, level);
  const TreeNode &n = *ref;
  if (n.leaf) {
    for (const Entry &e : n.entries) {
      if (!upper_done && upper->compare_to(e.key) <= 0) break;
      if (lower_done || lower->compare_to(e.key) < 0) {
        ++acc.count;
        acc.sum += e.value;
      }
    }
    return;
  }
  for (std::size_t i = 0; i < n.children.size(); ++i) {
    const Child &c = n.children[i];
    if (!upper_done && upper->compare_to(c.first_key) <= 0) break;  // this and later children are past the range
    const std::string *next_first = i + 1 < n.children.size() ? &n.children[i + 1].first_key : nullptr;
    if (!lower_done && next_first && lower->compare_to(*next_first) >= 0) continue;  // wholly before the range
    bool child_lower = lower_done || lower->compare_to(c.first_key) < 0;
    bool child_upper = upper_done || (next_first && upper->compare_to(*next_first) >= 0);
    if (child_lower && child_upper) {
      acc.count += c.count;
      acc.sum += c.sum;
    } else {
      range_subtree(c.id, level - 1, lower, upper, child_lower, child_upper, acc, budget);
    }
  }
}

Entry Tree::at(std::uint64_t offset) const {
  Entry found;
  scan_from(offset, [&](const Entry &e) {
    found = e;
    return false;
  });
  return found;
}

void Tree::scan_from(std::uint64_t offset, const std::function<bool(const Entry &)> &visit) const {
  for (Cursor c(store_, meta_, offset); c.valid(); c.next())
    if (!visit(c.entry())) return;
}

Cursor::Cursor(NodeStore &store, const TreeMeta &meta, std::uint64_t offset)
    : store_(store), root_(meta.root), height_(meta.height) {
  if (meta.root == 0 || offset >= meta.count) return;
  check_meta(meta);
  remaining_ = meta.count - offset - 1;
  NodeId id = meta.root;
  for (std::uint32_t level = meta.height;; --level) {  // descend to the leaf holding `offset`
    NodeRef n = load_at(store_, id, level);
    if (n->leaf) {
      if (offset >= n->entries.size()) throw_corrupt(id, "child counts point past the end of this leaf");
      path_.push_back({std::move(n), static_cast<std::size_t>(offset)});
      return;
    }
    std::size_t i = 0;
    while (i + 1 < n->children.size() && offset >= n->children[i].count) offset -= n->children[i++].count;
    id = n->children[i].id;
    path_.push_back({std::move(n), i});
  }
}

void Cursor::next() {
  if (++path_.back().index >= path_.back().node->entries.size()) {
    path_.pop_back();
    // Climb to the next unvisited child, then down its leftmost edge.
    while (!path_.empty() && ++path_.back().index >= path_.back().node->children.size()) path_.pop_back();
    if (path_.empty()) {
      if (remaining_ != 0) throw_corrupt(root_, "the tree holds fewer entries than its count");
      return;
    }
    descend_leftmost(path_.back().node->children[path_.back().index].id);
  }
  // The count bounds the walk even when subtrees are shared or cyclic.
  if (remaining_ == 0) throw_corrupt(path_.back().node->id, "the tree holds more entries than its count");
  --remaining_;
}

void Cursor::descend_leftmost(NodeId id) {
  for (;;) {  // path_ is shorter than height_: check_shape wants a leaf at level 1
    NodeRef n = load_at(store_, id, height_ - static_cast<std::uint32_t>(path_.size()));
    bool leaf = n->leaf;
    if (!leaf) id = n->children.front().id;
    path_.push_back({std::move(n), 0});
    if (leaf) return;
  }
}

// ---------------------------------------------------------------- apply

Tree::Piece Tree::summarize(const TreeNode &node) const {
  Piece p;
  p.child.id = node.id;
  p.child.count = node_count(node);
  p.child.sum = node_sum(node);
  p.child.first_key = node.leaf ? node.entries.front().key : node.children.front().first_key;
  p.bytes = encoded_size(node, config_.sum_kind);
  return p;
}

ApplyStats Tree::apply(const std::vector<Op> &ops) {
  ApplyStats stats;
  if (ops.empty()) return stats;
  std::vector<Piece> pieces;
  if (meta_.root == 0) {
    TreeNode leaf;
    leaf.id = store_.allocate();
    ++meta_.nodes;
    merge_leaf(leaf, ops.data(), ops.data() + ops.size(), stats);
    meta_.height = 1;
    pieces = write_split(std::move(leaf), true);
  } else {
    check_meta(meta_);
    pieces = apply_node(meta_.root, meta_.height, ops.data(), ops.data() + ops.size(), stats);
  }
  grow_and_collapse(std::move(pieces));
  return stats;
}

std::vector<Tree::Piece> Tree::apply_node(NodeId id, std::uint32_t level, const Op *first, const Op *last,
                                          ApplyStats &stats) {
  TreeNode node = load_for_update_at(id, level);
  if (node.leaf)
    merge_leaf(node, first, last, stats);
  else
    apply_children(node, level, first, last, stats);
  return write_split(std::move(node), false);
}

void Tree::merge_leaf(TreeNode &node, const Op *first, const Op *last, ApplyStats &stats) const {
  std::vector<Entry> out;
  out.reserve(node.entries.size() + static_cast<std::size_t>(last - first));
  auto it = node.entries.begin();
  for (const Op *op = first; op != last; ++op) {
    while (it != node.entries.end() && order_.compare(it->key, op->key) < 0) out.push_back(std::move(*it++));
    bool present = it != node.entries.end() && order_.compare(it->key, op->key) == 0;
    if (present != op->expect_present) ++stats.drift;
    if (present) ++it;
    if (op->action == Op::Action::Upsert) {
      ++(present ? stats.replaced : stats.inserted);
      out.push_back(Entry{op->key, op->value});
    } else if (present) {
      ++stats.removed;
    }
  }
  while (it != node.entries.end()) out.push_back(std::move(*it++));
  node.entries = std::move(out);
}

void Tree::apply_children(TreeNode &node, std::uint32_t level, const Op *first, const Op *last, ApplyStats &stats) {
  std::vector<Child> children;
  std::vector<std::size_t> bytes;  // SIZE_MAX: untouched, assumed well filled
  const Op *p = first;
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    const Op *end = last;
    if (i + 1 < node.children.size()) {
      const std::string &next_first = node.children[i + 1].first_key;
      end = std::partition_point(p, last, [&](const Op &op) { return order_.compare(op.key, next_first) < 0; });
    }
    if (p == end) {
      children.push_back(std::move(node.children[i]));
      bytes.push_back(SIZE_MAX);
      continue;
    }
    for (Piece &piece : apply_node(node.children[i].id, level - 1, p, end, stats)) {
      children.push_back(std::move(piece.child));
      bytes.push_back(piece.bytes);
    }
    p = end;
  }
  node.children = std::move(children);
  fix_underfull(node, level - 1, bytes);
}

// Merges each underfull child with a sibling; the pair is re-split if the
// union is too big. Each child is looked at once, so this terminates.
void Tree::fix_underfull(TreeNode &node, std::uint32_t child_level, std::vector<std::size_t> &bytes) {
  std::size_t j = 0;
  while (j < node.children.size()) {
    if (node.children.size() < 2 || bytes[j] == SIZE_MAX || bytes[j] >= config_.min_node_bytes()) {
      ++j;
      continue;
    }
    std::size_t left = j + 1 < node.children.size() ? j : j - 1;
    NodeId left_id = node.children[left].id, right_id = node.children[left + 1].id;
    if (left_id == right_id) throw_corrupt(node.id, "the same child appears twice");
    TreeNode merged = load_for_update_at(left_id, child_level);
    TreeNode right = load_for_update_at(right_id, child_level);
    for (Entry &e : right.entries) merged.entries.push_back(std::move(e));
    for (Child &c : right.children) merged.children.push_back(std::move(c));
    store_.remove(right.id);
    --meta_.nodes;
    std::vector<Piece> pieces = write_split(std::move(merged), false);
    node.children.erase(node.children.begin() + static_cast<long>(left),
                        node.children.begin() + static_cast<long>(left) + 2);
    bytes.erase(bytes.begin() + static_cast<long>(left), bytes.begin() + static_cast<long>(left) + 2);
    for (std::size_t k = 0; k < pieces.size(); ++k) {
      node.children.insert(node.children.begin() + static_cast<long>(left + k), std::move(pieces[k].child));
      bytes.insert(bytes.begin() + static_cast<long>(left + k), pieces[k].bytes);
    }
    j = left + pieces.size();
  }
}

// Saves the node, split into evenly sized parts when it is too big. The
// first part keeps the node's id. Returns the summaries, in order.
std::vector<Tree::Piece> Tree::write_split(TreeNode &&node, bool is_new) {
  std::size_t items = node.leaf ? node.entries.size() : node.children.size();
  if (items == 0) {
    if (!is_new) store_.remove(node.id);
    --meta_.nodes;
    return {};
  }
  std::size_t total = encoded_size(node, config_.sum_kind);
  if (total <= config_.max_node_bytes) {
    Piece whole = summarize(node);
    store_.save(std::move(node), is_new);
    return {whole};
  }
  std::vector<std::size_t> sizes(items);
  for (std::size_t i = 0; i < items; ++i)
    sizes[i] = node.leaf ? encoded_entry_size(node.entries[i], config_.sum_kind)
                         : encoded_child_size(node.children[i], config_.sum_kind);
  std::size_t target = config_.max_node_bytes * 7 / 10;
  std::size_t parts = (total + target - 1) / target;
  std::vector<Piece> out;
  std::size_t begin = 0, acc = 0;
  for (std::size_t part = 0; part < parts && begin < items; ++part) {
    std::size_t goal = total * (part + 1) / parts;  // cumulative byte boundary
    std::size_t end = begin;
    do acc += sizes[end++];
    while (end < items && (part + 1 == parts || acc + sizes[end] / 2 < goal));
    TreeNode piece;
    piece.leaf = node.leaf;
    bool keeps_id = part == 0;
    piece.id = keeps_id ? node.id : store_.allocate();
    if (!keeps_id) ++meta_.nodes;
    if (node.leaf)
      piece.entries.assign(std::make_move_iterator(node.entries.begin() + static_cast<long>(begin)),
                           std::make_move_iterator(node.entries.begin() + static_cast<long>(end)));
    else
      piece.children.assign(std::make_move_iterator(node.children.begin() + static_cast<long>(begin)),
                            std::make_move_iterator(node.children.begin() + static_cast<long>(end)));
    out.push_back(summarize(piece));
    store_.save(std::move(piece), keeps_id ? is_new : true);
    begin = end;
  }
  return out;
}

void Tree::grow_and_collapse(std::vector<Piece> pieces) {
  while (pieces.size() > 1) {
    std::size_t children = pieces.size();
    TreeNode root;
    root.leaf = false;
    root.id = store_.allocate();
    ++meta_.nodes;
    for (Piece &p : pieces) root.children.push_back(std::move(p.child));
    ++meta_.height;
    pieces = write_split(std::move(root), true);
    // Each new level has fewer nodes, unless keys are bigger than a node
    // allows (writers refuse those; a corrupt tree can hold them): then every
    // new root would split again into as many parts, without end.
    if (pieces.size() >= children) throw CorruptNode("tree: keys too large for a node (corrupt first keys)");
  }
  if (pieces.empty()) {
    meta_ = TreeMeta{0, 0, 0, Sum{}, meta_.nodes};
    return;
  }
  meta_.root = pieces.front().child.id;
  meta_.count = pieces.front().child.count;
  meta_.sum = pieces.front().child.sum;
  while (meta_.height > 1) {  // an internal root with one child is dropped
    NodeRef r = load_at(store_, meta_.root, meta_.height);
    if (r->leaf || r->children.size() > 1) break;
    store_.remove(r->id);
    --meta_.nodes;
    meta_.root = r->children.front().id;
    --meta_.height;
  }
}

void Tree::clear() {
  if (meta_.root != 0) {
    check_meta(meta_);
    std::uint64_t budget = meta_.nodes;  // shared subtrees must not make it remove more
    clear_subtree(meta_.root, meta_.height, budget);
  }
  meta_ = TreeMeta{};
}

void Tree::clear_subtree(NodeId id, std::uint32_t level, std::uint64_t &budget) {
  if (budget == 0) throw_corrupt(id, "the tree has more nodes than it records");
  --budget;
  if (level > 1) {
    NodeRef n = load_at(store_, id, level);
    for (const Child &c : n->children) clear_subtree(c.id, level - 1, budget);
  }
  store_.remove(id);
}

// ---------------------------------------------------------------- checker

namespace {
[[noreturn]] void violation(const std::string &what, NodeId id) {
  throw InvariantViolation(what + " (node " + std::to_string(id) + ")");
}
}  // namespace

void Tree::check() const {
  if (meta_.root == 0) {
    if (meta_.count != 0 || meta_.height != 0) violation("empty tree with nonzero count or height", 0);
    return;
  }
  check_meta(meta_);
  Child top;
  std::uint64_t nodes = 0;
  std::string last;
  check_subtree(meta_.root, meta_.height, nullptr, top, last, nodes);
  if (top.count != meta_.count) violation("tree count differs from root", meta_.root);
  if (!top.sum.same_as(meta_.sum)) violation("tree sum differs from root", meta_.root);
  if (nodes != meta_.nodes) violation("node count differs from tree metadata", meta_.root);
}

void Tree::check_subtree(NodeId id, std::uint32_t level, const std::string *lower, Child &out, std::string &last,
                         std::uint64_t &nodes) const {
  // Shared subtrees would be walked again and again: stop at the recorded count.
  if (++nodes > meta_.nodes) violation("more nodes than the tree records", id);
  NodeRef ref = load_at(store_, id, level);
  const TreeNode &n = *ref;
  if (encoded_size(n, config_.sum_kind) > config_.max_node_bytes) violation("node over size limit", id);
  out.id = id;
  if (n.leaf) {
    for (std::size_t i = 0; i < n.entries.size(); ++i) {
      const std::string *prev = i == 0 ? lower : &n.entries[i - 1].key;
      if (prev && order_.compare(*prev, n.entries[i].key) >= 0) violation("entries out of order", id);
    }
    out.first_key = n.entries.front().key;
    last = n.entries.back().key;
    out.count = n.entries.size();
    out.sum = node_sum(n);
    return;
  }
  if (id == meta_.root && n.children.size() < 2) violation("internal root with one child", id);
  std::string bound_key;
  const std::string *bound = lower;
  Child acc;
  for (const Child &c : n.children) {
    Child actual;
    check_subtree(c.id, level - 1, bound, actual, last, nodes);
    if (actual.count != c.count) violation("stored child count is wrong", id);
    if (!actual.sum.same_as(c.sum)) violation("stored child sum is wrong", id);
    if (actual.first_key != c.first_key) violation("stored separator is wrong", id);
    acc.count += c.count;
    acc.sum += c.sum;
    bound_key = last;  // the next subtree must start after this one's last entry
    bound = &bound_key;
  }
  out.first_key = n.children.front().first_key;
  out.count = acc.count;
  out.sum = acc.sum;
}

// ---------------------------------------------------------------- bulk build

BulkBuilder::BulkBuilder(NodeStore &store, const Ordering &order, TreeConfig config, double fill)
    : store_(store), order_(order), config_(config),
      target_bytes_(static_cast<std::size_t>(static_cast<double>(config.max_node_bytes) * fill)) {}

void BulkBuilder::add(Entry entry) {
  if (count_ > 0 && order_.compare(last_key_, entry.key) >= 0)
    throw std::invalid_argument("bulk build input is not in strictly ascending order");
  last_key_ = entry.key;
  ++count_;
  sum_ += entry.value;
  push(0, Child{}, &entry);
}

void BulkBuilder::push(std::size_t level, Child child, Entry *entry) {
  if (levels_.size() <= level) {
    levels_.emplace_back();
    levels_.back().cur.leaf = level == 0;
    levels_.back().prev.leaf = level == 0;
  }
  Level &l = levels_[level];
  std::size_t item = entry ? encoded_entry_size(*entry, config_.sum_kind) : encoded_child_size(child, config_.sum_kind);
  bool cur_empty = l.cur.entries.empty() && l.cur.children.empty();
  if (!cur_empty && l.cur_bytes + item > target_bytes_) {
    if (l.has_prev) emit(level, l.prev);
    l.prev = std::move(l.cur);
    l.has_prev = true;
    l.cur = TreeNode{};
    l.cur.leaf = level == 0;
    l.cur_bytes = 0;
  }
  l.cur_bytes += item;
  if (entry)
    l.cur.entries.push_back(std::move(*entry));
  else
    l.cur.children.push_back(std::move(child));
}

void BulkBuilder::emit(std::size_t level, TreeNode &node) {
  node.id = store_.allocate();
  ++nodes_;
  Child c;
  c.id = node.id;
  c.count = node_count(node);
  c.sum = node_sum(node);
  c.first_key = node.leaf ? node.entries.front().key : node.children.front().first_key;
  store_.save(std::move(node), true);  // the caller replaces the node
  push(level + 1, std::move(c), nullptr);
}

// Where to cut a node of two or more items into two halves of about equal
// bytes. Halving the item count instead can leave a full node of long keys
// plus most of a tail of short ones on one side: a node over the size limit.
std::size_t BulkBuilder::byte_midpoint(const TreeNode &node) const {
  std::size_t items = node.leaf ? node.entries.size() : node.children.size();
  auto item_bytes = [&](std::size_t i) {
    return node.leaf ? encoded_entry_size(node.entries[i], config_.sum_kind)
                     : encoded_child_size(node.children[i], config_.sum_kind);
  };
  std::size_t total = 0;
  for (std::size_t i = 0; i < items; ++i) total += item_bytes(i);
  std::size_t acc = 0, half = 0;
  while (half + 1 < items && 2 * (acc + item_bytes(half)) <= total) acc += item_bytes(half++);
  return std::max<std::size_t>(half, 1);
}

// The last node of a level may be nearly empty: share with its left sibling.
void BulkBuilder::rebalance_tail(std::size_t level) {
  Level &l = levels_[level];
  if (!l.has_prev || encoded_size(l.cur, config_.sum_kind) >= config_.min_node_bytes()) return;
  TreeNode merged = std::move(l.prev);
  for (Entry &e : l.cur.entries) merged.entries.push_back(std::move(e));
  for (Child &c : l.cur.children) merged.children.push_back(std::move(c));
  std::size_t half = byte_midpoint(merged);
  l.prev = TreeNode{};
  l.prev.leaf = merged.leaf;
  l.cur = TreeNode{};
  l.cur.leaf = merged.leaf;
  if (merged.leaf) {
    l.prev.entries.assign(std::make_move_iterator(merged.entries.begin()),
                          std::make_move_iterator(merged.entries.begin() + static_cast<long>(half)));
    l.cur.entries.assign(std::make_move_iterator(merged.entries.begin() + static_cast<long>(half)),
                         std::make_move_iterator(merged.entries.end()));
  } else {
    l.prev.children.assign(std::make_move_iterator(merged.children.begin()),
                           std::make_move_iterator(merged.children.begin() + static_cast<long>(half)));
    l.cur.children.assign(std::make_move_iterator(merged.children.begin() + static_cast<long>(half)),
                          std::make_move_iterator(merged.children.end()));
  }
}

TreeMeta BulkBuilder::finish() {
  TreeMeta meta;
  if (count_ == 0) return meta;
  for (std::size_t level = 0;; ++level) {
    rebalance_tail(level);
    Level &l = levels_[level];
    bool is_top = !l.has_prev && levels_.size() == level + 1;
    if (is_top) {
      l.cur.id = store_.allocate();
      ++nodes_;
      store_.save(l.cur, true);
      meta.root = l.cur.id;
      meta.height = static_cast<std::uint32_t>(level + 1);
      break;
    }
    if (l.has_prev) emit(level, levels_[level].prev);
    emit(level, levels_[level].cur);  // emit may grow levels_: re-index
  }
  meta.count = count_;
  meta.sum = sum_;
  meta.nodes = nodes_;
  levels_.clear();
  return meta;
}

}  // namespace aggr

// The core is server-independent: fail the build if a server header crept in.
#ifdef POSTGRES_H
#error "src/core must not include PostgreSQL headers"
#endif
