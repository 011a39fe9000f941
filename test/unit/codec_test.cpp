// The node decoder must reject any malformed payload without reading out of
// bounds (run under AddressSanitizer).
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace aggr
