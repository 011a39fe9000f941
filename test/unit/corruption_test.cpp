// Whole-tree corruption fuzzer. Random trees in the in-memory store are
// corrupted in many ways (byte flips, truncation, a node that is its own
// child or points at an ancestor, internal nodes without children, forged
// key lengths, wrong heights, counts and separators that lie, children at
// the wrong level, shared or missing children), then every read path and
// apply runs on them. Each call must answer or throw CorruptNode: never
// crash or read out of bounds (ASan/UBSan), and never walk without bound
// (the interrupt hook counts the nodes each call visits).
#include <gtest/gtest.h>

#include <random>

#include "../../src/core/pending.hpp"
#include "memory_store.hpp"

namespace aggr::test {
namespace {

// ------------------------------------------------------------ bounded calls

constexpr std::uint64_t kMaxVisits = 100000;  // per call; valid trees here need a few thousand at most
std::uint64_t visits = 0;
struct Unbounded : std::exception {};
struct TooManyEntries : std::exception {};
void count_visit() {
  if (++visits > kMaxVisits) throw Unbounded();
}

struct VisitCounter {  // installs the interrupt hook for one test
  VisitCounter() { interrupt_check = count_visit; }
  ~VisitCounter() { interrupt_check = nullptr; }
};

struct Tally {
  std::uint64_t answered = 0, corrupt = 0;
};

// Runs one call. CorruptNode is a fine answer; the checker may also report
// an InvariantViolation. Anything else, or an unbounded walk, fails.
template <typename F>
void bounded(Tally &tally, const char *what, F &&f, bool invariant_ok = false) {
  visits = 0;
  try {
    f();
    ++tally.answered;
    return;
  } catch (const CorruptNode &) {
  } catch (const InvariantViolation &e) {
    if (!invariant_ok) ADD_FAILURE() << what << ": InvariantViolation instead of CorruptNode: " << e.what();
  } catch (const Unbounded &) {
    ADD_FAILURE() << what << ": visited more than " << kMaxVisits << " nodes";
  } catch (const TooManyEntries &) {
    ADD_FAILURE() << what << ": a cursor went on past the bound on entries";
  } catch (const std::exception &e) {
    ADD_FAILURE() << what << ": unexpected exception: " << e.what();
  }
  ++tally.corrupt;
}

// ------------------------------------------------------------ trees

Sum value_of(std::int64_t v, SumKind kind) {
  Sum s;
  if (kind == SumKind::Exact) s.exact = v;
  if (kind == SumKind::Float) s.approx = static_cast<double>(v);
  return s;
}

struct Base {
  MemoryStore store{SumKind::None};
  TreeConfig config;
  TreeMeta meta;
};

// A valid tree: bulk built, sometimes reshaped by random applies.
Base make_base(std::mt19937_64 &rng, const BytesOrdering &order) {
  Base b;
  static const SumKind kinds[] = {SumKind::None, SumKind::Exact, SumKind::Float};
  static const std::size_t node_bytes[] = {200, 256, 400, 800};
  b.config.sum_kind = kinds[rng() % 3];
  b.config.max_node_bytes = node_bytes[rng() % 4];
  b.store = MemoryStore(b.config.sum_kind);
  std::size_t rows = rng() % 4 == 0 ? rng() % 20 : rng() % 1500;
  std::size_t pad = rng() % 3 == 0 ? rng() % 24 : 0;
  BulkBuilder builder(b.store, order, b.config, 0.5 + static_cast<double>(rng() % 50) / 100);
  for (std::size_t i = 0; i < rows; ++i)
    builder.add(Entry{make_key(static_cast<std::int64_t>(i) * 3, static_cast<std::int64_t>(i), pad),
                      value_of(static_cast<std::int64_t>(rng() % 1000), b.config.sum_kind)});
  b.meta = builder.finish();
  if (rng() % 3 == 0) {  // uneven shapes from inserts and deletes
    Tree t(b.store, order, b.config, b.meta);
    std::vector<Op> ops;
    for (std::int64_t k = 0; k < 5000; k += 1 + static_cast<std::int64_t>(rng() % 12)) {
      Op op{make_key(k, k / 3, pad), value_of(k, b.config.sum_kind),
            rng() % 2 ? Op::Action::Upsert : Op::Action::Remove, k % 3 == 0 && k / 3 < static_cast<std::int64_t>(rows)};
      ops.push_back(op);
    }
    t.apply(ops);
    b.meta = t.meta();
  }
  return b;
}

struct NodeInfo {
  NodeId id;
  std::uint32_t level;
  std::vector<NodeId> ancestors;
};

std::vector<NodeInfo> map_tree(MemoryStore &store, const TreeMeta &meta) {
  std::vector<NodeInfo> out;
  if (meta.root == 0) return out;
  std::vector<NodeInfo> todo{{meta.root, meta.height, {}}};
  while (!todo.empty()) {
    NodeInfo n = todo.back();
    todo.pop_back();
    NodeRef node = store.load(n.id);
    for (const Child &c : node->children) {
      NodeInfo child{c.id, n.level - 1, n.ancestors};
      child.ancestors.push_back(n.id);
      todo.push_back(child);
    }
    out.push_back(std::move(n));
  }
  return out;
}

// ------------------------------------------------------------ corruptions

std::string varint(unsigned __int128 v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(v) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

std::uint64_t lie(std::mt19937_64 &rng, std::uint64_t truth) {
  const std::uint64_t lies[] = {0, truth - 1, truth + 1, truth * 2 + 7, 1ULL << 62, UINT64_MAX, rng()};
  return lies[rng() % 7];
}

class Corrupter {
 public:
  Corrupter(std::mt19937_64 &rng, MemoryStore &store, TreeMeta &meta, const std::vector<NodeInfo> &nodes, SumKind kind)
      : rng_(rng), store_(store), meta_(meta), nodes_(nodes), kind_(kind) {
    for (const NodeInfo &n : nodes) (n.level > 1 ? internal_ : leaves_).push_back(&n);
  }

  // Applies one random corruption; returns its name.
  const char *once() {
    switch (rng_() % 16) {
      case 0: return flip_bytes();
      case 1: return truncate();
      case 2: return with_internal("own child", [&](TreeNode &n, const NodeInfo &) { pick(n).id = n.id; });
      case 3:
        return with_internal("child is an ancestor", [&](TreeNode &n, const NodeInfo &info) {
          pick(n).id = info.ancestors.empty() ? n.id : info.ancestors[rng_() % info.ancestors.size()];
        });
      case 4: return with_internal("no children", [&](TreeNode &n, const NodeInfo &) { n.children.clear(); });
      case 5: return forge_key_length();
      case 6: return short_key();
      case 7: {
        const std::uint32_t heights[] = {0, meta_.height - 1, meta_.height + 1, meta_.height + 2, 65, 1000, UINT32_MAX};
        meta_.height = heights[rng_() % 7];
        return "wrong height";
      }
      case 8: return with_internal("child count lies", [&](TreeNode &n, const NodeInfo &) {
          Child &c = pick(n);
          c.count = lie(rng_, c.count);
        });
      case 9: meta_.count = lie(rng_, meta_.count); return "tree count lies";
      case 10: return with_internal("child at another level", [&](TreeNode &n, const NodeInfo &) {
          pick(n).id = nodes_[rng_() % nodes_.size()].id;
        });
      case 11: return with_internal("missing child", [&](TreeNode &n, const NodeInfo &) { pick(n).id = 1000000; });
      case 12: return with_internal("child twice", [&](TreeNode &n, const NodeInfo &) {
          std::size_t i = rng_() % n.children.size();
          n.children[i].id = n.children[(i + 1) % n.children.size()].id;
        });
      case 13: return with_internal("separators lie", [&](TreeNode &n, const NodeInfo &) {
          for (Child &c : n.children)
            if (rng_() % 2) c.first_key = make_key(static_cast<std::int64_t>(rng_() % 5000), 0);
        });
      case 14: return swap_type();
      default: meta_.nodes = lie(rng_, meta_.nodes) % 100000; return "node count lies";
    }
  }

 private:
  Child &pick(TreeNode &n) { return n.children[rng_() % n.children.size()]; }
  const NodeInfo &any_node() { return nodes_[rng_() % nodes_.size()]; }
  TreeNode decoded(NodeId id) { return decode_node(id, store_.payloads().at(id), kind_); }
  void put(const TreeNode &n) { store_.put_payload(n.id, encode_node(n, kind_)); }
  std::string payload(NodeId id) { return store_.payloads().at(id); }

  template <typename F>
  const char *with_internal(const char *name, F &&f) {
    if (internal_.empty()) return flip_bytes();
    const NodeInfo &info = *internal_[rng_() % internal_.size()];
    TreeNode n;
    try {
      n = decoded(info.id);
    } catch (const CorruptNode &) {  // an earlier corruption of the same node
      return flip_bytes();
    }
    if (n.leaf || n.children.empty()) return flip_bytes();
    f(n, info);
    put(n);
    return name;
  }
  const char *flip_bytes() {
    NodeId id = any_node().id;
    std::string p = payload(id);
    for (std::uint64_t i = 0, flips = 1 + rng_() % 4; i < flips && !p.empty(); ++i)
      p[rng_() % p.size()] ^= static_cast<char>(1 + rng_() % 255);
    store_.put_payload(id, p);
    return "flipped bytes";
  }
  const char *truncate() {
    NodeId id = any_node().id;
    std::string p = payload(id);
    store_.put_payload(id, p.substr(0, p.empty() ? 0 : rng_() % p.size()));
    return "truncated";
  }
  // Rewrites the length header of a leaf's first key.
  const char *forge_key_length() {
    if (leaves_.empty()) return flip_bytes();
    NodeId id = leaves_[rng_() % leaves_.size()]->id;
    std::string p = payload(id);
    if (p.size() < 4 || p[1] != 1 || static_cast<std::uint8_t>(p[2]) >= 0x80 || static_cast<std::uint8_t>(p[3]) >= 0x80)
      return flip_bytes();  // only forge the simple layout: 1-byte entry count and key length
    std::uint64_t real = static_cast<std::uint8_t>(p[3]);
    const unsigned __int128 forged[] = {0, 1, 15, real - 1, real + 1, p.size(), 1ULL << 32, UINT64_MAX,
                                        static_cast<unsigned __int128>(UINT64_MAX) + 1};
    p = p.substr(0, 3) + varint(forged[rng_() % 9]) + p.substr(4);
    store_.put_payload(id, p);
    return "forged key length";
  }
  // A well-formed payload whose key is too short for the ordering.
  const char *short_key() {
    const NodeInfo &info = any_node();
    TreeNode n;
    try {
      n = decoded(info.id);
    } catch (const CorruptNode &) {
      return flip_bytes();
    }
    std::string key(rng_() % 16, 'k');
    if (n.leaf && !n.entries.empty()) n.entries[rng_() % n.entries.size()].key = key;
    if (!n.leaf && !n.children.empty()) pick(n).first_key = key;
    put(n);
    return "short key";
  }
  const char *swap_type() {
    NodeId id = any_node().id;
    std::string p = payload(id);
    if (p.size() > 1) p[1] ^= 3;  // leaf (1) <-> internal (2)
    store_.put_payload(id, p);
    return "node type swapped";
  }

  std::mt19937_64 &rng_;
  MemoryStore &store_;
  TreeMeta &meta_;
  const std::vector<NodeInfo> &nodes_;
  SumKind kind_;
  std::vector<const NodeInfo *> internal_, leaves_;
};

// ------------------------------------------------------------ every path

// Iterates a cursor to its end; the tree's count bounds it.
template <typename C>
void drain(C &&c, std::uint64_t bound) {
  for (std::uint64_t steps = 0; c.valid(); c.next()) {
    (void)c.entry().key.size();
    if (++steps > bound) throw TooManyEntries();
  }
}

void exercise(std::mt19937_64 &rng, const MemoryStore &corrupted, const TreeMeta &meta, const TreeConfig &config,
              const BytesOrdering &order, Tally &tally) {
  MemoryStore store = corrupted;
  Tree tree(store, order, config, meta);
  // A lying count may be huge; the trees here hold under 2,000 entries, a
  // few shared subtrees make that several times more, never this many.
  std::uint64_t bound = std::min<std::uint64_t>(meta.count, 50000) + 1;
  auto offset = [&] { return rng() % bound; };
  auto key = [&] { return static_cast<std::int64_t>(rng() % 5000) - 10; };
  for (int i = 0; i < 3; ++i) {
    KeyProbe lo(key(), rng() % 2), hi(key(), rng() % 2);
    bounded(tally, "prefix_before", [&] { tree.prefix_before(lo); });
    bounded(tally, "range", [&] { tree.range(&lo, &hi); });
    bounded(tally, "range from", [&] { tree.range(&lo, nullptr); });
    bounded(tally, "range to", [&] { tree.range(nullptr, &hi); });
  }
  std::uint64_t offsets[] = {0, meta.count - 1, offset()};
  for (std::uint64_t off : offsets) {
    bounded(tally, "at", [&] { tree.at(off); });
    bounded(tally, "cursor", [&] { drain(Cursor(store, meta, off), bound); });
  }
  bounded(tally, "scan_from", [&] {
    std::uint64_t steps = 0;
    tree.scan_from(0, [&](const Entry &) {
      if (++steps > bound) throw TooManyEntries();
      return true;
    });
  });
  bounded(tally, "check", [&] { tree.check(); }, true);

  // The deferred read path: pending changes merged into the tree's entries.
  std::vector<Delta> deltas;
  for (int i = 0; i < 6; ++i) {
    std::int64_t k = key() / 3 * 3;
    deltas.push_back(Delta{make_key(k, k / 3), value_of(k, config.sum_kind), rng() % 2 ? 1 : -1});
  }
  PendingChanges pending(deltas, order);
  bounded(tally, "merged cursor", [&] {
    drain(MergedCursor(store, tree, order, pending, offset()), bound + deltas.size());
  });

  // Writes: on a copy, through a store as lenient as PostgreSQL's.
  MemoryStore writable = corrupted;
  writable.lenient = true;
  Tree w(writable, order, config, meta);
  std::vector<Op> ops;
  for (std::int64_t k = key(); ops.size() < 40 && k < 5000; k += 1 + static_cast<std::int64_t>(rng() % 200)) {
    Op::Action action = rng() % 3 ? Op::Action::Upsert : Op::Action::Remove;
    ops.push_back(Op{make_key(k, k / 3), value_of(k, config.sum_kind), action, rng() % 2 == 0});
  }
  bool applied = false;
  bounded(tally, "apply", [&] {
    w.apply(ops);
    applied = true;
  });
  if (applied) {  // what apply left must still be walked safely
    bounded(tally, "check after apply", [&] { w.check(); }, true);
    std::uint64_t after = std::min<std::uint64_t>(w.meta().count, 50000) + 1;
    bounded(tally, "cursor after apply", [&] { drain(Cursor(writable, w.meta(), 0), after); });
  }
  MemoryStore clearable = corrupted;
  clearable.lenient = true;
  Tree c(clearable, order, config, meta);
  bounded(tally, "clear", [&] { c.clear(); });
}

TEST(Corruption, EveryPathAnswersOrThrowsCorruptNode) {
  VisitCounter counter;
  BytesOrdering order;
  Tally tally;
  std::uint64_t iterations = 0;
  for (unsigned seed = 1; seed <= 100; ++seed) {
    std::mt19937_64 rng(seed);
    Base base = make_base(rng, order);
    std::vector<NodeInfo> nodes = map_tree(base.store, base.meta);
    if (nodes.empty()) continue;
    for (int round = 0; round < 50; ++round, ++iterations) {
      MemoryStore store = base.store;
      TreeMeta meta = base.meta;
      Corrupter corrupter(rng, store, meta, nodes, base.config.sum_kind);
      std::string what;
      for (std::uint64_t i = 0, n = 1 + rng() % 3; i < n; ++i) what += std::string(corrupter.once()) + "; ";
      SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round) + ": " + what);
      exercise(rng, store, meta, base.config, order, tally);
      if (::testing::Test::HasFailure()) return;  // one clear report, not thousands
    }
  }
  // The corruptions must actually be detected, not only survived.
  EXPECT_GT(iterations, 2000u);
  EXPECT_GT(tally.corrupt, tally.answered / 4);
  std::cout << iterations << " corrupt trees, " << tally.answered << " calls answered, " << tally.corrupt
            << " found corruption\n";
}

// Named cases of the security issue, each path checked for CorruptNode.
struct Small {
  Small() {
    config.max_node_bytes = 200;
    BulkBuilder b(store, order, config);
    for (std::int64_t i = 0; i < 400; ++i) b.add(Entry{make_key(i, i), Sum{}});
    meta = b.finish();
  }
  void every_read_path_throws() {
    Tree t(store, order, config, meta);
    KeyProbe p(200, false), q(300, true);
    EXPECT_THROW(t.prefix_before(p), CorruptNode);
    EXPECT_THROW(t.range(&p, &q), CorruptNode);
    EXPECT_THROW(t.at(meta.count / 2), CorruptNode);
    EXPECT_THROW(drain(Cursor(store, meta, 0), meta.count + 1), CorruptNode);
    EXPECT_THROW(t.check(), CorruptNode);
    std::vector<Op> ops{Op{make_key(200, 1000), Sum{}, Op::Action::Upsert, false}};
    store.lenient = true;
    EXPECT_THROW(t.apply(ops), CorruptNode);
  }
  MemoryStore store{SumKind::None};
  BytesOrdering order;
  TreeConfig config;
  TreeMeta meta;
};

TEST(Corruption, InternalNodeWithoutChildren) {
  VisitCounter counter;
  Small s;
  ASSERT_GE(s.meta.height, 3u);
  TreeNode root = *s.store.load(s.meta.root);
  for (const Child &c : root.children) {  // every child of the root: each path goes through one
    TreeNode n = *s.store.load(c.id);
    n.children.clear();
    s.store.put_payload(n.id, encode_node(n, SumKind::None));
  }
  s.every_read_path_throws();
}

TEST(Corruption, ChildPointingToTheRoot) {
  VisitCounter counter;
  Small s;
  TreeNode root = *s.store.load(s.meta.root);
  for (const Child &c : root.children) {
    TreeNode n = *s.store.load(c.id);
    for (Child &cc : n.children) cc.id = s.meta.root;  // a cycle through every level-2 node
    s.store.put_payload(n.id, encode_node(n, SumKind::None));
  }
  s.every_read_path_throws();
}

TEST(Corruption, HeightBeyondAnyTree) {
  VisitCounter counter;
  Small s;
  s.meta.height = 100000;  // a cycle would otherwise recurse this deep
  s.every_read_path_throws();
}

// Keys bigger than any node allows (writers refuse them; a corrupt leaf can
// hold them): a write that splits such a leaf must not stack new roots
// forever, each splitting again into as many parts (found by the tree walk
// fuzzer: out of memory).
TEST(Corruption, EntriesTooLargeForANodeStopTheWrite) {
  VisitCounter counter;
  MemoryStore store(SumKind::None);
  BytesOrdering order;
  TreeConfig config;
  config.max_node_bytes = 256;
  TreeNode leaf;
  leaf.id = store.allocate();
  leaf.leaf = true;
  leaf.entries.push_back(Entry{make_key(1, 1, 200), Sum{}});
  store.put_payload(leaf.id, encode_node(leaf, SumKind::None));
  TreeMeta meta{leaf.id, 1, 1, Sum{}, 1};
  Tree tree(store, order, config, meta);
  std::vector<Op> ops{Op{make_key(2, 2, 200), Sum{}, Op::Action::Upsert, false},
                      Op{make_key(3, 3, 200), Sum{}, Op::Action::Upsert, false}};
  visits = 0;
  EXPECT_THROW(tree.apply(ops), CorruptNode);
}

// The binding's hook runs once per node visited; when it throws (a query
// cancel), the walk stops there.
TEST(Interrupts, EveryWalkCallsTheHookAndStopsWhenItThrows) {
  Small s;
  std::uint64_t calls = 0;
  static std::uint64_t *counter = nullptr;
  counter = &calls;
  interrupt_check = [] { ++*counter; };
  Tree t(s.store, s.order, s.config, s.meta);
  KeyProbe p(200, false);
  t.prefix_before(p);
  EXPECT_EQ(calls, s.meta.height);
  calls = 0;
  t.check();
  EXPECT_EQ(calls, s.meta.nodes);
  struct Cancel {};
  interrupt_check = [] {
    if (++*counter > 3) throw Cancel();
  };
  calls = 0;
  EXPECT_THROW(t.check(), Cancel);
  calls = 0;
  EXPECT_THROW(drain(Cursor(s.store, s.meta, 0), s.meta.count + 1), Cancel);
  interrupt_check = nullptr;
}

}  // namespace
}  // namespace aggr::test
