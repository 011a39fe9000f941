// Randomized tests of the counted B+tree against a reference model: a
// sorted map of (key, id) -> value. Invariants are checked after every batch.
#include <gtest/gtest.h>

#include <random>

#include "memory_store.hpp"

namespace aggr::test {
namespace {

using Model = std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t>;

Sum value_of(std::int64_t v, SumKind kind) {
  Sum s;
  if (kind == SumKind::Exact) s.exact = v;
  if (kind == SumKind::Float) s.approx = static_cast<double>(v);
  return s;
}

struct Fixture {
  Fixture(std::size_t node_bytes, SumKind kind) : store(kind) {
    config.sum_kind = kind;
    config.max_node_bytes = node_bytes;
  }
  Tree tree() { return Tree(store, order, config, meta); }
  MemoryStore store;
  BytesOrdering order;
  TreeConfig config;
  TreeMeta meta;
  Model model;
  std::size_t pad = 0;
};

void expect_matches_model(Fixture &f, std::mt19937_64 &rng) {
  Tree t = f.tree();
  ASSERT_NO_THROW(t.check());
  ASSERT_EQ(t.meta().count, f.model.size());
  ASSERT_EQ(f.store.size(), t.meta().nodes);
  std::int64_t total = 0;
  for (auto &kv : f.model) total += kv.second;
  if (f.config.sum_kind == SumKind::Exact) {
    ASSERT_EQ(static_cast<std::int64_t>(t.meta().sum.exact), total);
  }
  if (f.config.sum_kind == SumKind::Float) {
    ASSERT_DOUBLE_EQ(t.meta().sum.approx, static_cast<double>(total));
  }

  // Ranks and prefix sums at random probes, both sides.
  for (int i = 0; i < 20; ++i) {
    std::int64_t k = static_cast<std::int64_t>(rng() % 1200) - 100;
    for (bool after : {false, true}) {
      std::uint64_t n = 0;
      std::int64_t s = 0;
      for (auto &kv : f.model) {
        if (kv.first.first < k || (after && kv.first.first == k)) {
          ++n;
          s += kv.second;
        }
      }
      Prefix p = t.prefix_before(KeyProbe(k, after));
      ASSERT_EQ(p.count, n) << "key " << k << " after " << after;
      ASSERT_EQ(t.count_before(KeyProbe(k, after)), n) << "key " << k << " after " << after;
      if (f.config.sum_kind == SumKind::Exact) {
        ASSERT_EQ(static_cast<std::int64_t>(p.sum.exact), s);
      }
    }
  }
  // Range counts and sums between random probes.
  for (int i = 0; i < 20; ++i) {
    std::int64_t a = static_cast<std::int64_t>(rng() % 1100) - 50, b = static_cast<std::int64_t>(rng() % 1100) - 50;
    bool a_after = rng() % 2, b_after = rng() % 2;
    KeyProbe lo(a, a_after), hi(b, b_after);
    bool unbounded_lo = rng() % 5 == 0, unbounded_hi = rng() % 5 == 0;
    std::uint64_t n = 0;
    std::int64_t s = 0;
    for (auto &kv : f.model) {
      std::int64_t k = kv.first.first;
      bool after_lo = unbounded_lo || k > a || (k == a && !a_after);
      bool before_hi = unbounded_hi || k < b || (k == b && b_after);
      if (after_lo && before_hi) {
        ++n;
        s += kv.second;
      }
    }
    Prefix r = t.range(unbounded_lo ? nullptr : &lo, unbounded_hi ? nullptr : &hi);
    ASSERT_EQ(r.count, n) << a << " " << a_after << " " << b << " " << b_after;
    if (f.config.sum_kind == SumKind::Exact) {
      ASSERT_EQ(static_cast<std::int64_t>(r.sum.exact), s);
    }
    if (f.config.sum_kind == SumKind::Float) {
      ASSERT_DOUBLE_EQ(r.sum.approx, static_cast<double>(s));
    }
  }
  // Select by offset, and a scan from a random offset.
  if (!f.model.empty()) {
    std::vector<std::pair<std::int64_t, std::int64_t>> order;
    for (auto &kv : f.model) order.push_back(kv.first);
    for (int i = 0; i < 10; ++i) {
      std::uint64_t off = rng() % order.size();
      Entry e = t.at(off);
      ASSERT_EQ(e.key.substr(0, 16), make_key(order[off].first, order[off].second));
    }
    std::uint64_t start = rng() % order.size();
    std::uint64_t pos = start;
    t.scan_from(start, [&](const Entry &e) {
      EXPECT_EQ(e.key.substr(0, 16), make_key(order[pos].first, order[pos].second));
      ++pos;
      return pos < start + 50;
    });
    ASSERT_EQ(pos, std::min<std::uint64_t>(start + 50, order.size()));
  }
}

// One random batch: inserts, deletes and moves of existing ids.
void random_batch(Fixture &f, std::mt19937_64 &rng, std::size_t size, std::int64_t &next_id) {
  std::map<std::string, Op> ops;
  auto add = [&](Op op) { ops[op.key] = std::move(op); };
  for (std::size_t i = 0; i < size; ++i) {
    int what = static_cast<int>(rng() % 10);
    if (what < 5 || f.model.empty()) {
      std::int64_t k = static_cast<std::int64_t>(rng() % 1000);
      std::int64_t v = static_cast<std::int64_t>(rng() % 2001) - 1000;
      std::int64_t id = ++next_id;
      f.model[{k, id}] = v;
      add(Op{make_key(k, id, f.pad), value_of(v, f.config.sum_kind), Op::Action::Upsert, false});
    } else {
      auto it = f.model.begin();
      std::advance(it, static_cast<long>(rng() % f.model.size()));
      auto key = it->first;
      std::string enc = make_key(key.first, key.second, f.pad);
      if (ops.count(enc)) continue;  // one op per key per batch
      f.model.erase(it);
      add(Op{enc, Sum{}, Op::Action::Remove, true});
    }
  }
  std::vector<Op> sorted;
  for (auto &kv : ops) sorted.push_back(kv.second);
  Tree t = f.tree();
  ApplyStats st = t.apply(sorted);
  EXPECT_EQ(st.drift, 0u);
  f.meta = t.meta();
}

class TreeRandomized : public ::testing::TestWithParam<std::tuple<std::size_t, SumKind, std::size_t>> {};

TEST_P(TreeRandomized, MatchesReferenceModel) {
  auto [node_bytes, kind, pad] = GetParam();
  Fixture f(node_bytes, kind);
  f.pad = pad;
  std::mt19937_64 rng(node_bytes * 31 + static_cast<std::size_t>(kind) + pad);
  std::int64_t next_id = 0;
  // Batch sizes from single rows to bulk loads, then drain to empty.
  for (int round = 0; round < 60; ++round) {
    std::size_t size = round % 7 == 0 ? 400 : 1 + rng() % 40;
    random_batch(f, rng, size, next_id);
    expect_matches_model(f, rng);
  }
  while (!f.model.empty()) {
    std::vector<Op> ops;
    std::size_t n = 0;
    for (auto it = f.model.begin(); it != f.model.end() && n < 97; ++n) {
      ops.push_back(Op{make_key(it->first.first, it->first.second, f.pad), Sum{}, Op::Action::Remove, true});
      it = f.model.erase(it);
    }
    Tree t = f.tree();
    t.apply(ops);
    f.meta = t.meta();
    expect_matches_model(f, rng);
  }
  EXPECT_EQ(f.meta.root, 0);
  EXPECT_EQ(f.store.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(NodeSizes, TreeRandomized,
                         ::testing::Combine(::testing::Values(128, 256, 700, 3200),
                                            ::testing::Values(SumKind::None, SumKind::Exact, SumKind::Float),
                                            ::testing::Values(0, 12)));

TEST(Tree, DriftIsCountedNotFatal) {
  Fixture f(256, SumKind::Exact);
  Tree t = f.tree();
  ApplyStats a = t.apply({Op{make_key(1, 1), value_of(5, SumKind::Exact), Op::Action::Upsert, false}});
  EXPECT_EQ(a.drift, 0u);
  // Insert of an existing entry: replaced, counted as drift.
  ApplyStats b = t.apply({Op{make_key(1, 1), value_of(7, SumKind::Exact), Op::Action::Upsert, false}});
  EXPECT_EQ(b.drift, 1u);
  EXPECT_EQ(b.replaced, 1u);
  EXPECT_EQ(static_cast<int>(t.meta().sum.exact), 7);
  // Delete of a missing entry: nothing removed, counted as drift.
  ApplyStats c = t.apply({Op{make_key(2, 2), Sum{}, Op::Action::Remove, true}});
  EXPECT_EQ(c.drift, 1u);
  EXPECT_EQ(c.removed, 0u);
  EXPECT_EQ(t.meta().count, 1u);
  t.check();
}

TEST(Tree, BulkBuildMatchesIncrementalAndAcceptsLaterOps) {
  for (std::size_t node_bytes : {128, 700, 3200}) {
    for (std::uint64_t n : {0, 1, 2, 5, 37, 1000, 20000}) {
      Fixture f(node_bytes, SumKind::Exact);
      BulkBuilder b(f.store, f.order, f.config);
      for (std::uint64_t i = 0; i < n; ++i) {
        auto k = static_cast<std::int64_t>(i / 3), id = static_cast<std::int64_t>(i);
        f.model[{k, id}] = static_cast<std::int64_t>(i % 17);
        b.add(Entry{make_key(k, id), value_of(static_cast<std::int64_t>(i % 17), SumKind::Exact)});
      }
      f.meta = b.finish();
      std::mt19937_64 rng(n);
      expect_matches_model(f, rng);
      std::int64_t next_id = static_cast<std::int64_t>(n) + 1;
      for (int r = 0; r < 5; ++r) {
        random_batch(f, rng, 50, next_id);
        expect_matches_model(f, rng);
      }
    }
  }
}

// The last node of a level is merged with its neighbour and split again:
// by bytes, not by entry count, or a full node of long keys followed by a
// short tail of short keys makes a node over the size limit (which verify
// then reports as corruption).
TEST(Tree, BulkBuildTailRebalanceStaysWithinNodeSize) {
  for (std::size_t node_bytes : {1600, 3200, 6400}) {
    Fixture f(node_bytes, SumKind::None);
    BulkBuilder b(f.store, f.order, f.config);
    // Entries of 0.225 of a node fill the first leaf to the builder's 0.9;
    // then short ones, just under a quarter of a node in all.
    std::size_t big = node_bytes * 225 / 1000, small = 17;
    std::size_t pad = big - 2 - 16;
    std::int64_t i = 0;
    for (int k = 0; k < 4; ++k, ++i) {
      f.model[{i, i}] = 0;
      b.add(Entry{make_key(i, i, pad), Sum{}});
    }
    for (std::size_t bytes = 0; bytes + small < node_bytes / 4 - 8; bytes += small, ++i) {
      f.model[{i, i}] = 0;
      b.add(Entry{make_key(i, i), Sum{}});
    }
    f.meta = b.finish();
    std::mt19937_64 rng(1);
    expect_matches_model(f, rng);
  }
}

TEST(Tree, BulkBuildRejectsUnsortedInput) {
  Fixture f(256, SumKind::None);
  BulkBuilder b(f.store, f.order, f.config);
  b.add(Entry{make_key(5, 1), Sum{}});
  EXPECT_THROW(b.add(Entry{make_key(4, 1), Sum{}}), std::invalid_argument);
  EXPECT_THROW(b.add(Entry{make_key(5, 1), Sum{}}), std::invalid_argument);
}

TEST(Tree, SingleRowWritesTouchOnlyOnePath) {
  Fixture f(3200, SumKind::None);
  BulkBuilder b(f.store, f.order, f.config);
  for (std::int64_t i = 0; i < 100000; ++i) b.add(Entry{make_key(i, i), Sum{}});
  f.meta = b.finish();
  EXPECT_EQ(f.meta.height, 3u);
  Tree t = f.tree();
  f.store.saves = 0;
  t.apply({Op{make_key(500, 100001), Sum{}, Op::Action::Upsert, false}});
  EXPECT_LE(f.store.saves, 4u);  // one node per level, plus at most one split
}

TEST(Tree, ClearRemovesEveryNode) {
  Fixture f(128, SumKind::None);
  BulkBuilder b(f.store, f.order, f.config);
  for (std::int64_t i = 0; i < 5000; ++i) b.add(Entry{make_key(i, i), Sum{}});
  f.meta = b.finish();
  Tree t = f.tree();
  t.clear();
  EXPECT_EQ(f.store.size(), 0u);
  EXPECT_EQ(t.meta().count, 0u);
  t.check();
}

TEST(Tree, FloatSumsFollowIeeeRules) {
  Fixture f(128, SumKind::Float);
  Tree t = f.tree();
  Sum inf, nan;
  inf.approx = std::numeric_limits<double>::infinity();
  t.apply({Op{make_key(1, 1), inf, Op::Action::Upsert, false}});
  EXPECT_EQ(t.meta().sum.approx, std::numeric_limits<double>::infinity());
  // Removing the infinite value leaves an exact zero: sums are recomputed, not subtracted.
  t.apply({Op{make_key(1, 1), Sum{}, Op::Action::Remove, true}, });
  t.apply({Op{make_key(2, 2), value_of(3, SumKind::Float), Op::Action::Upsert, false}});
  EXPECT_EQ(t.meta().sum.approx, 3.0);
  t.check();
  // A range that excludes an infinite value sums exactly (no Inf - Inf).
  t.apply({Op{make_key(9, 9), inf, Op::Action::Upsert, false}});
  KeyProbe hi(5, true);
  EXPECT_EQ(t.range(nullptr, &hi).sum.approx, 3.0);
}

}  // namespace
}  // namespace aggr::test
