// Review of the format 2 payload (journaled leaves, internal nodes rewritten
// in place): whatever payload a write replaces (the right version, an older
// one, another node's, a leaf where an internal node now is, another sum
// kind's, format 1, garbage), the new payload decodes to exactly the node
// written, bit for bit (float sums included), and never grows past what the
// node and the capacity allow. Run under AddressSanitizer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "../../src/core/node_codec.hpp"

namespace aggr {
namespace {

bool same_bits(const Sum &a, const Sum &b, SumKind kind) {
  if (kind == SumKind::Exact) return a.exact == b.exact;
  if (kind == SumKind::Float) return std::memcmp(&a.approx, &b.approx, sizeof(double)) == 0;
  return true;
}

::testing::AssertionResult same_node(const TreeNode &want, const TreeNode &got, SumKind kind) {
  if (want.leaf != got.leaf) return ::testing::AssertionFailure() << "leaf flag differs";
  if (want.leaf) {
    if (want.entries.size() != got.entries.size())
      return ::testing::AssertionFailure() << want.entries.size() << " entries, decoded " << got.entries.size();
    for (std::size_t i = 0; i < want.entries.size(); ++i)
      if (want.entries[i].key != got.entries[i].key || !same_bits(want.entries[i].value, got.entries[i].value, kind))
        return ::testing::AssertionFailure() << "entry " << i << " differs";
  } else {
    if (want.children.size() != got.children.size()) return ::testing::AssertionFailure() << "child count differs";
    for (std::size_t i = 0; i < want.children.size(); ++i) {
      const Child &a = want.children[i], &b = got.children[i];
      if (a.id != b.id || a.count != b.count || a.first_key != b.first_key || !same_bits(a.sum, b.sum, kind))
        return ::testing::AssertionFailure() << "child " << i << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

Sum random_sum(std::mt19937_64 &rng) {
  Sum s;
  static const double specials[] = {0.0,
                                    -0.0,
                                    std::numeric_limits<double>::quiet_NaN(),
                                    -std::numeric_limits<double>::quiet_NaN(),
                                    std::numeric_limits<double>::infinity(),
                                    -std::numeric_limits<double>::infinity(),
                                    std::numeric_limits<double>::denorm_min(),
                                    1.0};
  switch (rng() % 4) {
    case 0:
      s.approx = specials[rng() % 8];
      break;
    case 1: {  // a NaN with some payload
      std::uint64_t bits = 0x7ff0000000000001ULL | (rng() & 0x000fffffffffffffULL);
      std::memcpy(&s.approx, &bits, sizeof bits);
      break;
    }
    default:
      s.approx = static_cast<double>(static_cast<std::int64_t>(rng() % 7) - 3);
  }
  static const int128 max = static_cast<int128>(~static_cast<unsigned __int128>(0) >> 1);
  switch (rng() % 4) {
    case 0:
      s.exact = rng() % 2 ? max : -max - 1;
      break;
    case 1:
      s.exact = 0;
      break;
    default:
      s.exact = static_cast<int128>(static_cast<std::int64_t>(rng() % 5)) - 2;
  }
  return s;
}

// Keys drawn from a small alphabet: duplicates, empty keys, keys that are
// prefixes of others, keys with zero bytes.
std::string random_key(std::mt19937_64 &rng) {
  std::size_t len = rng() % 5 == 0 ? 0 : rng() % 6;
  if (rng() % 20 == 0) len = 100 + rng() % 200;
  std::string k(len, '\0');
  for (char &c : k) c = static_cast<char>("\0ab\xff"[rng() % 4]);
  return k;
}

TreeNode random_node(std::mt19937_64 &rng, bool leaf, std::size_t max_items) {
  TreeNode n;
  n.id = 5;
  n.leaf = leaf;
  std::size_t items = rng() % (max_items + 1);
  if (!leaf && items == 0) items = 1;
  for (std::size_t i = 0; i < items; ++i) {
    if (leaf) {
      n.entries.push_back(Entry{random_key(rng), random_sum(rng)});
    } else {
      Child c;
      c.id = static_cast<NodeId>(6 + rng() % 1000000);
      c.count = rng() % 3 == 0 ? UINT64_MAX - rng() % 3 : rng() % 300;
      c.sum = random_sum(rng);
      c.first_key = random_key(rng);
      n.children.push_back(std::move(c));
    }
  }
  return n;
}

// A small random edit of a leaf: entries inserted, deleted, re-valued
// (same key, another sum), including at both ends and all at once.
void edit_leaf(std::mt19937_64 &rng, TreeNode &n) {
  int edits = rng() % 10 == 0 ? static_cast<int>(rng() % 40) : 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    std::size_t size = n.entries.size();
    switch (rng() % 4) {
      case 0:
        n.entries.insert(n.entries.begin() + static_cast<long>(size ? rng() % (size + 1) : 0),
                         Entry{random_key(rng), random_sum(rng)});
        break;
      case 1:
        if (size) n.entries.erase(n.entries.begin() + static_cast<long>(rng() % size));
        break;
      case 2:
        if (size) n.entries[rng() % size].value = random_sum(rng);
        break;
      default:
        if (size) {  // a duplicate of a neighbour, key and sum
          std::size_t at = rng() % size;
          n.entries.insert(n.entries.begin() + static_cast<long>(at), n.entries[at]);
        }
    }
  }
  if (rng() % 50 == 0) n.entries.clear();
}

void edit_internal(std::mt19937_64 &rng, TreeNode &n) {
  Child &c = n.children[rng() % n.children.size()];
  switch (rng() % 5) {
    case 3:  // an entry moved between two subtrees
      c.count -= 1;
      n.children[rng() % n.children.size()].count += 1;
      break;
    case 4:  // a count crossing a varint width
      c.count = c.count < 128 ? 128 + rng() % 3 : 126 + rng() % 2;
      break;
    case 0:
      c.count += rng() % 2 ? 1 : -1;
      break;
    case 1:
      c.sum = random_sum(rng);
      break;
    default: {
      Child extra = c;
      extra.id += 1;
      extra.first_key += "z";
      n.children.push_back(extra);
    }
  }
}

// Every write in a sequence replaces either the payload it should (the
// node's current one) or a random other payload from the history, and the
// result must always decode to the node written.
TEST(NodeCodecUpdate, DecodesToTheNodeWhateverItReplaced) {
  for (SumKind kind : {SumKind::None, SumKind::Exact, SumKind::Float}) {
    for (std::size_t max_capacity : {std::size_t{40}, std::size_t{1000}, std::size_t{1980}, std::size_t{8000}}) {
      std::mt19937_64 rng(1234 + static_cast<int>(kind) * 10 + max_capacity);
      std::vector<std::string> history;
      TreeNode node = random_node(rng, true, 30);
      std::string payload = encode_new_node(node, kind, max_capacity);
      for (int step = 0; step < 6000; ++step) {
        if (rng() % 200 == 0) node = random_node(rng, rng() % 3 != 0, 40);  // turns leaf or internal, same id
        if (node.leaf)
          edit_leaf(rng, node);
        else
          edit_internal(rng, node);
        std::string old = payload;
        switch (rng() % 12) {
          case 0:  // an older version, maybe another node's or another kind's
            if (!history.empty()) old = history[rng() % history.size()];
            break;
          case 1:  // format 1
            old = encode_node(random_node(rng, rng() % 2, 10), kind);
            old[0] = 1;
            break;
          case 2:  // garbage that starts like a journaled leaf
            old = std::string("\x02\x01", 2) + std::string(rng() % 60, static_cast<char>(rng()));
            break;
          case 3:
            old.clear();
            break;
          default:
            break;
        }
        std::string next = encode_node_update(old, node, kind, max_capacity);
        TreeNode back;
        try {
          back = decode_node(node.id, next, kind);
        } catch (const CorruptNode &e) {
          FAIL() << "step " << step << ": " << e.what();
        }
        ASSERT_TRUE(same_node(node, back, kind)) << "kind " << static_cast<int>(kind) << " step " << step;
        std::size_t size = encoded_size(node, kind);
        ASSERT_LE(next.size(), std::max({size, max_capacity, old.size()})) << "step " << step;
        if (history.size() < 64)
          history.push_back(next);
        else
          history[rng() % 64] = next;
        payload = std::move(next);
      }
    }
  }
}

// The journal is bounded by the encoder; a decoder fed a payload full of
// journal ops (a corrupt or hostile row of at most a heap page) must still
// finish quickly.
// Writers fold a journal into the base at 96 ops: a longer one (hand-made,
// each op a vector shift for the reader) is refused as corrupt, one of 96
// ops decodes.
TEST(NodeCodecUpdate, JournalsLongerThanWritersMakeAreRefused) {
  for (SumKind kind : {SumKind::None, SumKind::Float}) {
    auto payload = [&](int op_pairs) {
      std::string p("\x02\x01", 2);
      p += std::string("\xe8\x07", 2);  // 1,000 empty-key entries in the base
      for (int i = 0; i < 1000; ++i) {
        p += '\0';
        if (kind == SumKind::Float) p += std::string(8, '\0');
      }
      for (int i = 0; i < op_pairs; ++i) {  // insert at the front, delete it again
        p += std::string("\x01\x00\x00", 3);
        if (kind == SumKind::Float) p += std::string(8, '\0');
        p += std::string("\x02\x00", 2);
      }
      return p;
    };
    EXPECT_EQ(decode_node(1, payload(48), kind).entries.size(), 1000u);
    EXPECT_THROW(decode_node(1, payload(49), kind), CorruptNode);
    EXPECT_THROW(decode_node(1, payload(600), kind), CorruptNode);
  }
}

// The same bound for an internal node's journal (each op sets a child).
TEST(NodeCodecUpdate, InternalJournalsLongerThanWritersMakeAreRefused) {
  for (SumKind kind : {SumKind::None, SumKind::Float}) {
    auto payload = [&](int ops) {
      std::string p("\x02\x02\x01\x05\x01", 5);  // one child: id 5, count 1
      if (kind == SumKind::Float) p += std::string(8, '\0');
      p += '\0';  // empty first key
      for (int i = 0; i < ops; ++i) {
        p += std::string("\x03\x00\x02", 3);  // child 0: count 2
        if (kind == SumKind::Float) p += std::string(8, '\0');
      }
      return p + std::string(16, '\0');
    };
    EXPECT_EQ(decode_node(1, payload(96), kind).children[0].count, 2u);
    EXPECT_THROW(decode_node(1, payload(97), kind), CorruptNode);
    EXPECT_THROW(decode_node(1, payload(600), kind), CorruptNode);
  }
}

}  // namespace
}  // namespace aggr
