// Test doubles: an in-memory node store that round-trips every node through
// the codec, and a memcmp ordering over fixed-width (key, id) encodings.
#pragma once
#include <cstring>
#include <map>

#include "../../src/core/node_codec.hpp"
#include "../../src/core/tree.hpp"

namespace aggr::test {

class MemoryStore : public NodeStore {
 public:
  explicit MemoryStore(SumKind kind) : kind_(kind) {}
  // Lenient: save and remove by id whatever the store holds, as the
  // PostgreSQL store does (for writes into corrupt trees, which may reach a
  // node twice). Strict by default, to catch the tree's own mistakes.
  bool lenient = false;
  std::size_t max_payload = 4000;
  // Hands out the same decoded node until it is saved or removed, as the
  // PostgreSQL store's cache does.
  NodeRef load(NodeId id) override {
    ++loads;
    auto it = nodes_.find(id);
    // A child id naming no node is corruption (the PostgreSQL store says so
    // too).
    if (it == nodes_.end()) throw CorruptNode("node " + std::to_string(id) + " is missing");
    NodeRef &ref = decoded_[id];
    if (!ref) ref = std::make_shared<const TreeNode>(decode_node(id, it->second, kind_));
    return ref;
  }
  void save(TreeNode node, bool is_new) override {
    ++saves;
    bool exists = nodes_.count(node.id) > 0;
    if (exists == is_new && !lenient) throw std::runtime_error("save: is_new does not match store state");
    // As the PostgreSQL store writes rows: padded, journaled in place.
    auto it = nodes_.find(node.id);
    nodes_[node.id] = it == nodes_.end() ? encode_new_node(node, kind_, max_payload)
                                         : encode_node_update(it->second, node, kind_, max_payload);
    decoded_.erase(node.id);
  }
  void remove(NodeId id) override {
    if (nodes_.erase(id) != 1 && !lenient) throw std::runtime_error("remove of missing node");
    decoded_.erase(id);
  }
  NodeId allocate() override { return ++next_; }
  std::size_t size() const { return nodes_.size(); }
  // Stored payloads, for tests that corrupt them.
  const std::map<NodeId, std::string> &payloads() const { return nodes_; }
  void put_payload(NodeId id, std::string payload) {
    nodes_[id] = std::move(payload);
    decoded_.erase(id);
  }
  std::uint64_t loads = 0, saves = 0;

 private:
  SumKind kind_;
  std::map<NodeId, std::string> nodes_;
  std::map<NodeId, NodeRef> decoded_;
  NodeId next_ = 0;
};

// Entry key: big-endian sign-flipped int64 key, then int64 id, then optional
// padding bytes (to exercise variable-length entries).
inline std::string make_key(std::int64_t key, std::int64_t id, std::size_t pad = 0) {
  std::string s(16 + pad, 'p');
  auto put = [&](std::size_t at, std::int64_t v) {
    std::uint64_t u = static_cast<std::uint64_t>(v) ^ (1ULL << 63);
    for (int i = 7; i >= 0; --i) {
      s[at + static_cast<std::size_t>(i)] = static_cast<char>(u & 0xff);
      u >>= 8;
    }
  };
  put(0, key);
  put(8, id);
  return s;
}

// A key too short to hold (key, id) is corrupt, as the binding's key
// decoder reports it.
inline void check_key_size(std::string_view key, std::size_t need) {
  if (key.size() < need) throw CorruptNode("entry key of " + std::to_string(key.size()) + " bytes is truncated");
}

class BytesOrdering : public Ordering {
 public:
  int compare(std::string_view a, std::string_view b) const override {
    check_key_size(a, 16);
    check_key_size(b, 16);
    int c = std::memcmp(a.data(), b.data(), 16);  // padding never decides
    return c;
  }
};

// Before (or after) every entry whose key equals `key`.
class KeyProbe : public Probe {
 public:
  KeyProbe(std::int64_t key, bool after) : prefix_(make_key(key, 0).substr(0, 8)), after_(after) {}
  int compare_to(std::string_view entry) const override {
    check_key_size(entry, 8);
    int c = std::memcmp(prefix_.data(), entry.data(), 8);
    if (c != 0) return c;
    return after_ ? 1 : -1;
  }

 private:
  std::string prefix_;
  bool after_;
};

}  // namespace aggr::test
