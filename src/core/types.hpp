// Core vocabulary of the counted B+tree. Pure C++: no PostgreSQL headers.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace aggr {

using NodeId = std::int64_t;  // 0 means "no node"
using int128 = __int128;

// How an aggregate sums its values: not at all, exactly (integers, scaled
// decimals) or in double precision.
enum class SumKind : std::uint8_t { None = 0, Exact = 1, Float = 2 };

struct Sum {
  int128 exact = 0;
  double approx = 0.0;

  Sum &operator+=(const Sum &o) {
    exact += o.exact;
    approx += o.approx;
    return *this;
  }
  Sum &operator-=(const Sum &o) {
    exact -= o.exact;
    approx -= o.approx;
    return *this;
  }
  friend Sum operator+(Sum a, const Sum &b) { return a += b; }
  friend Sum operator-(Sum a, const Sum &b) { return a -= b; }
  // Bitwise-style equality: NaN sums compare equal to NaN sums.
  bool same_as(const Sum &o) const;
};

// One indexed row: its encoded (key, primary key) and its sum value.
struct Entry {
  std::string key;
  Sum value;
};

// A child reference kept in an internal node, with the aggregates of the
// child's subtree and the smallest entry key in it (the separator).
struct Child {
  NodeId id = 0;
  std::uint64_t count = 0;
  Sum sum;
  std::string first_key;
};

struct TreeNode {
  NodeId id = 0;
  bool leaf = true;
  std::vector<Entry> entries;   // leaf only
  std::vector<Child> children;  // internal only
};

// Total order of encoded entry keys (key columns, then primary key).
class Ordering {
 public:
  virtual ~Ordering() = default;
  virtual int compare(std::string_view a, std::string_view b) const = 0;
};

// A search position: compares itself with entry keys. Returns < 0 when the
// probe sorts before the entry, > 0 after it, 0 when it names that entry.
class Probe {
 public:
  virtual ~Probe() = default;
  virtual int compare_to(std::string_view entry_key) const = 0;
};

using NodeRef = std::shared_ptr<const TreeNode>;

// TreeNode persistence. The PostgreSQL binding stores nodes as heap rows.
// load() hands out an immutable node so that a store may keep decoded nodes
// across calls; the tree copies a node before changing it.
class NodeStore {
 public:
  virtual ~NodeStore() = default;
  virtual NodeRef load(NodeId id) = 0;
  // A private copy for the tree to change and save back; a store may move
  // its only cached copy out instead of copying it.
  virtual TreeNode load_for_update(NodeId id) { return *load(id); }
  virtual void save(TreeNode node, bool is_new) = 0;  // by value: callers move nodes in
  virtual void remove(NodeId id) = 0;
  virtual NodeId allocate() = 0;
};

// What the owner of a tree persists about it besides the nodes.
struct TreeMeta {
  NodeId root = 0;
  std::uint32_t height = 0;  // 0 empty, 1 a single leaf
  std::uint64_t count = 0;
  Sum sum;
  std::uint64_t nodes = 0;
};

struct TreeConfig {
  SumKind sum_kind = SumKind::None;
  std::size_t max_node_bytes = 3200;
  std::size_t min_node_bytes() const { return max_node_bytes / 4; }
  // Entries bigger than this could not be split around; callers reject them.
  std::size_t max_entry_bytes() const { return max_node_bytes / 4 - 64; }
};

// Bytes read from a store are untrusted: walks that find a structure no
// valid tree has (a bad payload, a node at the wrong level, an empty
// internal node, a count that indexes past a node) throw this, naming the node.
class CorruptNode : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
[[noreturn]] void throw_corrupt(NodeId id, const char *what);

// No valid tree is this tall (every internal node has two or more children
// but the root's single-child case, and counts are 64-bit): a taller
// recorded height is corruption. It also bounds every recursive walk.
constexpr std::uint32_t kMaxTreeHeight = 64;

// Called for every node a walk visits, so that a long walk over a corrupt
// (or huge) tree can be cancelled. The PostgreSQL binding sets it once at
// load to a function that honours query cancel and statement_timeout by
// throwing; the pure core leaves it null.
using InterruptCheck = void (*)();
extern InterruptCheck interrupt_check;
inline void check_interrupts() {
  if (interrupt_check) interrupt_check();
}

class InvariantViolation : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace aggr
