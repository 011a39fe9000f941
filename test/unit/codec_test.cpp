// The node decoder must reject any malformed payload without reading out of
// bounds (run under AddressSanitizer).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>

#include "../../src/core/node_codec.hpp"

namespace aggr {
namespace {

TreeNode sample_leaf() {
  TreeNode n;
  n.id = 7;
  n.leaf = true;
  for (int i = 0; i < 20; ++i) {
    Sum s;
    s.exact = static_cast<int128>(i) * 1000000000000LL * (i % 2 ? -1 : 1);
    s.approx = i * 0.5;
    n.entries.push_back(Entry{std::string(static_cast<std::size_t>(i), static_cast<char>('a' + i)), s});
  }
  return n;
}

TreeNode sample_internal() {
  TreeNode n;
  n.id = 9;
  n.leaf = false;
  for (int i = 1; i <= 10; ++i) {
    Sum s;
    s.exact = -i;
    s.approx = -i * 1.5;
    n.children.push_back(Child{i * 1000, static_cast<std::uint64_t>(i) << 40, s, std::string(3, 'k')});
  }
  return n;
}

TEST(NodeCodec, RoundTripsEveryKind) {
  for (SumKind kind : {SumKind::None, SumKind::Exact, SumKind::Float}) {
    for (const TreeNode &n : {sample_leaf(), sample_internal()}) {
      std::string bytes = encode_node(n, kind);
      EXPECT_EQ(bytes.size(), encoded_size(n, kind));
      TreeNode back = decode_node(n.id, bytes, kind);
      EXPECT_EQ(encode_node(back, kind), bytes);
      ASSERT_EQ(back.leaf, n.leaf);
      if (kind == SumKind::Exact && n.leaf) {
        EXPECT_TRUE(back.entries[5].value.exact == n.entries[5].value.exact);
      }
    }
  }
}

TEST(NodeCodec, ExtremeSumsRoundTrip) {
  TreeNode n;
  n.leaf = true;
  Sum big, small;
  big.exact = static_cast<int128>(~static_cast<unsigned __int128>(0) >> 1);
  small.exact = -big.exact - 1;
  n.entries = {Entry{"a", big}, Entry{"b", small}};
  TreeNode back = decode_node(1, encode_node(n, SumKind::Exact), SumKind::Exact);
  EXPECT_TRUE(back.entries[0].value.exact == big.exact);
  EXPECT_TRUE(back.entries[1].value.exact == small.exact);
}

TEST(NodeCodec, RejectsTruncatedAndCorruptPayloads) {
  std::mt19937 rng(42);
  int rejected = 0, accepted = 0;
  for (SumKind kind : {SumKind::None, SumKind::Exact, SumKind::Float}) {
    for (const TreeNode &n : {sample_leaf(), sample_internal()}) {
      std::string good = encode_node(n, kind);
      for (std::size_t len = 0; len < good.size(); ++len)
        EXPECT_THROW(decode_node(1, std::string_view(good).substr(0, len), kind), CorruptNode) << len;
      for (int i = 0; i < 5000; ++i) {
        std::string bad = good;
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
        try {
          decode_node(1, bad, kind);
          ++accepted;  // a flip inside key bytes still decodes: fine
        } catch (const CorruptNode &) {
          ++rejected;
        }
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);
  EXPECT_THROW(decode_node(1, std::string("\x01\x01\xff\xff\xff\xff\x0f", 7), SumKind::None), CorruptNode);
}

std::string format1(const TreeNode &n, SumKind kind) {
  std::string bytes = encode_node(n, kind);
  bytes[0] = 1;  // the 1.0 format: the same node bytes, nothing after them
  return bytes;
}

bool same_entries(const std::vector<Entry> &a, const std::vector<Entry> &b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].key != b[i].key || !a[i].value.same_as(b[i].value)) return false;
  return true;
}

// Bytes PostgreSQL logs for a same-page update: what lies between the
// longest common prefix and the longest common suffix (heapam.c,
// log_heap_update).
std::size_t logged_bytes(const std::string &before, const std::string &after) {
  std::size_t prefix = 0, n = std::min(before.size(), after.size());
  while (prefix < n && before[prefix] == after[prefix]) ++prefix;
  std::size_t suffix = 0;
  while (suffix < n - prefix && before[before.size() - 1 - suffix] == after[after.size() - 1 - suffix]) ++suffix;
  return after.size() - prefix - suffix;
}

std::string key_of(int k) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08d", k);
  return buf;
}

TEST(NodeCodec, ReadsFormatOne) {
  for (SumKind kind : {SumKind::None, SumKind::Exact, SumKind::Float}) {
    for (const TreeNode &n : {sample_leaf(), sample_internal()}) {
      std::string old = format1(n, kind);
      EXPECT_EQ(encode_node(decode_node(n.id, old, kind), kind), encode_node(n, kind));
      EXPECT_THROW(decode_node(n.id, old + std::string(1, '\0'), kind),
                   CorruptNode);  // no padding in format 1
      std::string upgraded = encode_node_update(old, n, kind, 4000);
      EXPECT_EQ(upgraded[0], 2);
      EXPECT_EQ(encode_node(decode_node(n.id, upgraded, kind), kind), encode_node(n, kind));
    }
  }
}

// A leaf changed one entry at a time, against a std::map model: every
// payload decodes to exactly the model, keeps its length while its journal
// has room, and most single changes log only the op they append.
TEST(NodeCodec, JournaledLeafMatchesModel) {
  for (SumKind kind : {SumKind::None, SumKind::Exact, SumKind::Float}) {
    std::mt19937 rng(7 + static_cast<int>(kind));
    std::map<std::string, Sum> model;
    TreeNode node;
    node.id = 3;
    node.leaf = true;
    for (int k = 0; k < 100; k += 2) model[key_of(k)] = Sum{};
    auto to_node = [&] {
      node.entries.clear();
      for (auto &[k, v] : model) node.entries.push_back(Entry{k, v});
    };
    to_node();
    std::string payload = encode_new_node(node, kind, 4000);
    std::size_t small = 0, steps = 0, rewrites = 0;
    for (int step = 0; step < 5000; ++step) {
      int changes = rng() % 8 == 0 ? 1 + static_cast<int>(rng() % 5) : 1;
      for (int c = 0; c < changes; ++c) {
        std::string k = key_of(static_cast<int>(rng() % 200));
        if (model.count(k) && model.size() > 1 && rng() % 2) {
          model.erase(k);
        } else {
          Sum s;  // without a sum kind the payload holds keys only
          if (kind == SumKind::Exact) s.exact = static_cast<int128>(rng()) - (1LL << 31);
          if (kind == SumKind::Float) s.approx = static_cast<double>(rng() % 1000) / 8;
          model[k] = s;  // a new entry, or another value for this key
        }
      }
      to_node();
      std::string next = encode_node_update(payload, node, kind, 4000);
      TreeNode back = decode_node(node.id, next, kind);
      ASSERT_TRUE(back.leaf);
      ASSERT_TRUE(same_entries(back.entries, node.entries)) << "step " << step;
      if (next.size() != payload.size()) ++rewrites;
      if (changes == 1) {
        ++steps;
        if (logged_bytes(payload, next) <= encoded_entry_size(node.entries.front(), kind) + 12) ++small;
      }
      payload = std::move(next);
    }
    EXPECT_GT(small, steps * 8 / 10) << "single changes logging more than their op";
    EXPECT_LT(rewrites, 5000u / 10);
    // Corrupt journals are refused, not misread.
    std::string bad = payload;
    std::size_t end = bad.find_last_not_of('\0') + 1;
    ASSERT_LE(end + 3, bad.size());
    {
      bad[end] = 9;  // unknown op
      EXPECT_THROW(decode_node(node.id, bad, kind), CorruptNode);
      bad[end] = 2;  // delete past the end
      bad[end + 1] = static_cast<char>(0xff);
      bad[end + 2] = 0x7f;
      EXPECT_THROW(decode_node(node.id, bad, kind), CorruptNode);
      bad = payload;
      bad[end + 1] = 5;  // bytes after the end marker
      EXPECT_THROW(decode_node(node.id, bad, kind), CorruptNode);
    }
  }
}

// A key moved between two subtrees changes two children's counts, often
// far apart in the node: rewritten in place, every byte between them is
// logged (and a count crossing 127/128 shifts the rest of the node). The
// journal logs the two new counts instead. Checked against the node itself
// after every write, folds included, and against rewriting in place: less
// than half the bytes logged.
TEST(NodeCodec, InternalCountsJournaled) {
  for (SumKind kind : {SumKind::None, SumKind::Exact, SumKind::Float}) {
    std::mt19937_64 rng(77 + static_cast<int>(kind));
    TreeNode n;
    n.id = 3;
    n.leaf = false;
    for (int i = 0; i < 70; ++i)
      n.children.push_back(Child{100 + i, 100 + static_cast<std::uint64_t>(rng() % 60), Sum{}, std::string(10, 'a' + i % 26)});
    std::string payload = encode_new_node(n, kind, 1980);
    std::string in_place = payload;  // the same node, always rewritten whole at this length
    std::size_t journaled_bytes = 0, in_place_bytes = 0;
    for (int step = 0; step < 2000; ++step) {
      std::size_t from = rng() % n.children.size(), to = rng() % n.children.size();
      if (n.children[from].count == 0) continue;
      --n.children[from].count;
      ++n.children[to].count;
      if (kind == SumKind::Exact) n.children[to].sum.exact += static_cast<int128>(rng() % 100000);
      if (kind == SumKind::Float) n.children[to].sum.approx += 0.1;
      std::string next = encode_node_update(payload, n, kind, 1980);
      ASSERT_LE(next.size(), 1980u);  // the node stays under the capacity
      journaled_bytes += logged_bytes(payload, next);
      ASSERT_EQ(encode_node(decode_node(n.id, next, kind), kind), encode_node(n, kind)) << "step " << step;
      payload = std::move(next);
      std::string whole = encode_node(n, kind);
      whole.resize(std::max(whole.size(), in_place.size()), '\0');
      in_place_bytes += logged_bytes(in_place, whole);
      in_place = std::move(whole);
    }
    EXPECT_LT(journaled_bytes * 2, in_place_bytes) << "kind " << static_cast<int>(kind);
  }
}

// The base of a journaled internal node is what a write changes when the
// children themselves change (a split below adds one): written whole again.
TEST(NodeCodec, InternalJournalFoldsWhenChildrenChange) {
  TreeNode n = sample_internal();
  std::string payload = encode_new_node(n, SumKind::None, 4000);
  n.children[2].count += 5;
  payload = encode_node_update(payload, n, SumKind::None, 4000);
  Child extra = n.children[4];
  extra.id = 99999;
  extra.first_key = "kz";
  n.children.insert(n.children.begin() + 5, extra);
  std::string next = encode_node_update(payload, n, SumKind::None, 4000);
  EXPECT_EQ(encode_node(decode_node(n.id, next, SumKind::None), SumKind::None), encode_node(n, SumKind::None));
  // A journal op naming a child past the end, or an unknown op, is corrupt.
  TreeNode one = sample_internal();
  std::string base = encode_node(one, SumKind::None);
  EXPECT_THROW(decode_node(one.id, base + std::string("\x03\x0a\x01", 3), SumKind::None), CorruptNode);
  EXPECT_THROW(decode_node(one.id, base + std::string("\x01\x00\x00", 3), SumKind::None), CorruptNode);
  EXPECT_EQ(decode_node(one.id, base + std::string("\x03\x09\x07", 3), SumKind::None).children[9].count, 7u);
}

// A child's count changing by one logs one journal op (its index, count
// and sum), except when the journal is folded into the node again.
TEST(NodeCodec, InternalCountChangesInPlace) {
  for (SumKind kind : {SumKind::None, SumKind::Exact}) {
    TreeNode n = sample_internal();
    for (Child &c : n.children) c.count = 1000;
    std::string payload = encode_new_node(n, kind, 4000);
    std::size_t folds = 0;
    for (int step = 0; step < 200; ++step) {
      Child &c = n.children[static_cast<std::size_t>(step) % n.children.size()];
      c.count += step % 2 ? 1 : -1;
      if (kind == SumKind::Exact) c.sum.exact += 3;
      std::string next = encode_node_update(payload, n, kind, 4000);
      ASSERT_EQ(next.size(), payload.size());
      if (logged_bytes(payload, next) > (kind == SumKind::Exact ? 6u : 4u)) ++folds;
      ASSERT_EQ(encode_node(decode_node(n.id, next, kind), kind), encode_node(n, kind));
      payload = std::move(next);
    }
    EXPECT_LE(folds, 200u / 40) << "kind " << static_cast<int>(kind);
  }
}

}  // namespace
}  // namespace aggr
