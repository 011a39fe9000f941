// Pending changes (the deferred write path) against a reference model: a
// tree holding a base set, signed deltas of random later changes, and the
// merged answers (counts, sums, prefixes, ranges, every offset) compared
// with the model of the final set; then the deltas folded in as ops.
#include <gtest/gtest.h>

#include <random>

#include "../../src/core/pending.hpp"
#include "memory_store.hpp"

namespace aggr::test {
namespace {

using Model = std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t>;

Sum exact(std::int64_t v) {
  Sum s;
  s.exact = v;
  return s;
}

struct Scenario {
  Model base, now;
  std::vector<Delta> deltas;
};

// A base set, then random inserts / deletes / value and key changes of rows,
// each recorded as the deltas a trigger would append.
Scenario make_scenario(std::mt19937_64 &rng, std::size_t base_rows, std::size_t changes) {
  Scenario s;
  std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> rows;  // id -> (key, value)
  std::int64_t next_id = 1;
  auto key_of = [&] { return static_cast<std::int64_t>(rng() % 200); };  // many equal keys
  for (std::size_t i = 0; i < base_rows; ++i) rows[next_id++] = {key_of(), static_cast<std::int64_t>(rng() % 1000)};
  for (auto &[id, kv] : rows) s.base[{kv.first, id}] = kv.second;
  for (std::size_t i = 0; i < changes; ++i) {
    unsigned what = rng() % 3;
    if (what == 0 || rows.empty()) {
      std::int64_t id = next_id++;
      rows[id] = {key_of(), static_cast<std::int64_t>(rng() % 1000)};
      s.deltas.push_back({make_key(rows[id].first, id), exact(rows[id].second), +1});
    } else {
      auto it = rows.begin();
      std::advance(it, static_cast<long>(rng() % rows.size()));
      std::int64_t id = it->first;
      s.deltas.push_back({make_key(it->second.first, id), exact(it->second.second), -1});
      if (what == 1) {
        rows.erase(it);
      } else {  // update: maybe a new key, a new value
        if (rng() % 2) it->second.first = key_of();
        it->second.second = static_cast<std::int64_t>(rng() % 1000);
        s.deltas.push_back({make_key(it->second.first, id), exact(it->second.second), +1});
      }
    }
  }
  for (auto &[id, kv] : rows) s.now[{kv.first, id}] = kv.second;
  return s;
}

class PendingRandomized : public ::testing::TestWithParam<std::tuple<std::size_t, std::size_t>> {};

TEST_P(PendingRandomized, MergedViewMatchesModel) {
  auto [base_rows, changes] = GetParam();
  for (unsigned seed = 1; seed <= 12; ++seed) {
    std::mt19937_64 rng(seed * 7919 + base_rows + changes);
    Scenario s = make_scenario(rng, base_rows, changes);
    MemoryStore store(SumKind::Exact);
    BytesOrdering order;
    TreeConfig config;
    config.sum_kind = SumKind::Exact;
    config.max_node_bytes = 256;  // deep trees from few entries
    BulkBuilder builder(store, order, config);
    for (auto &[k, v] : s.base) builder.add(Entry{make_key(k.first, k.second), exact(v)});
    Tree tree(store, order, config, builder.finish());
    PendingChanges pending(s.deltas, order);

    ASSERT_EQ(merged_count(tree.meta(), pending), s.now.size()) << "seed " << seed;
    std::vector<std::pair<std::string, std::int64_t>> expect;
    for (auto &[k, v] : s.now) expect.emplace_back(make_key(k.first, k.second), v);
    // Every offset (every 7th of big sets), and walks from some to the end.
    std::vector<std::uint64_t> offsets;
    for (std::uint64_t off = 0; off < expect.size(); off += expect.size() > 600 ? 7 : 1) offsets.push_back(off);
    offsets.push_back(expect.size());
    for (std::uint64_t off : offsets) {
      MergedCursor c(store, tree, order, pending, off);
      if (off == expect.size()) {
        ASSERT_FALSE(c.valid());
        continue;
      }
      ASSERT_TRUE(c.valid()) << "seed " << seed << " offset " << off;
      ASSERT_EQ(c.entry().key, expect[off].first) << "seed " << seed << " offset " << off;
      ASSERT_EQ(c.entry().value.exact, expect[off].second);
      if (off % 17 == 0) {
        std::uint64_t i = off;
        for (; c.valid(); c.next(), ++i) {
          ASSERT_LT(i, expect.size());
          ASSERT_EQ(c.entry().key, expect[i].first);
        }
        ASSERT_EQ(i, expect.size());
      }
    }
    // Prefixes and ranges by key.
    for (std::int64_t k = -1; k <= 201; k += 3) {
      KeyProbe before(k, false), after(k + 40, true);
      Sum sum = tree.prefix_before(before).sum;
      std::int64_t n = static_cast<std::int64_t>(tree.prefix_before(before).count) + pending.count_before(before, &sum);
      std::int64_t want_n = 0, want_sum = 0;
      for (auto &[key, v] : s.now)
        if (key.first < k) ++want_n, want_sum += v;
      ASSERT_EQ(n, want_n) << "prefix " << k;
      ASSERT_EQ(static_cast<std::int64_t>(sum.exact), want_sum);
      Prefix r = tree.range(&before, &after);
      Sum rsum = r.sum;
      std::int64_t rn = static_cast<std::int64_t>(r.count) + pending.count_between(&before, &after, &rsum);
      std::int64_t want_rn = 0, want_rsum = 0;
      for (auto &[key, v] : s.now)
        if (key.first >= k && key.first <= k + 40) ++want_rn, want_rsum += v;
      ASSERT_EQ(rn, want_rn) << "range " << k;
      ASSERT_EQ(static_cast<std::int64_t>(rsum.exact), want_rsum);
    }
    // Folding the changes in gives the model, with no drift.
    ApplyStats stats = tree.apply(pending.ops());
    ASSERT_EQ(stats.drift, 0u);
    ASSERT_NO_THROW(tree.check());
    ASSERT_EQ(tree.meta().count, s.now.size());
    std::uint64_t i = 0;
    for (Cursor c(store, tree.meta(), 0); c.valid(); c.next(), ++i) ASSERT_EQ(c.entry().key, expect[i].first);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, PendingRandomized,
                         ::testing::Values(std::make_tuple(0, 30), std::make_tuple(40, 0), std::make_tuple(300, 5),
                                           std::make_tuple(300, 120), std::make_tuple(2000, 700),
                                           std::make_tuple(50, 400)));

}  // namespace
}  // namespace aggr::test
