#include "node_codec.hpp"

#include <cstring>

namespace aggr {
namespace {

constexpr std::uint8_t kFormat = 1;
constexpr std::uint8_t kLeaf = 1;
constexpr std::uint8_t kInternal = 2;

std::size_t varint_size(unsigned __int128 v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

unsigned __int128 zigzag(int128 v) {
  return (static_cast<unsigned __int128>(v) << 1) ^ static_cast<unsigned __int128>(v >> 127);
}
int128 unzigzag(unsigned __int128 v) {
  return static_cast<int128>(v >> 1) ^ -static_cast<int128>(v & 1);
}

std::size_t sum_size(const Sum &s, SumKind kind) {
  switch (kind) {
    case SumKind::None: return 0;
    case SumKind::Exact: return varint_size(zigzag(s.exact));
    case SumKind::Float: return sizeof(double);
  }
  return 0;
}

class Writer {
 public:
  explicit Writer(std::size_t reserve) { out_.reserve(reserve); }
  void byte(std::uint8_t b) { out_.push_back(static_cast<char>(b)); }
  void varint(unsigned __int128 v) {
    while (v >= 0x80) {
      byte(static_cast<std::uint8_t>(v) | 0x80);
      v >>= 7;
    }
    byte(static_cast<std::uint8_t>(v));
  }
  void bytes(std::string_view s) {
    varint(s.size());
    out_.append(s.data(), s.size());
  }
  void sum(const Sum &s, SumKind kind) {
    if (kind == SumKind::Exact) varint(zigzag(s.exact));
    if (kind == SumKind::Float) {
      char raw[sizeof(double)];
      std::memcpy(raw, &s.approx, sizeof raw);
      out_.append(raw, sizeof raw);
    }
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint8_t byte() {
    need(1);
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  unsigned __int128 varint() {
    unsigned __int128 v = 0;
    for (int shift = 0; shift < 128; shift += 7) {
      std::uint8_t b = byte();
      v |= static_cast<unsigned __int128>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw CorruptNode("payload: varint too long");
  }
  std::uint64_t u64() {
    unsigned __int128 v = varint();
    if (v > UINT64_MAX) throw CorruptNode("payload: integer out of range");
    return static_cast<std::uint64_t>(v);
  }
  std::string bytes() {
    std::uint64_t n = u64();
    need(n);
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  Sum sum(SumKind kind) {
    Sum s;
    if (kind == SumKind::Exact) s.exact = unzigzag(varint());
    if (kind == SumKind::Float) {
      need(sizeof(double));
      std::memcpy(&s.approx, in_.data() + pos_, sizeof(double));
      pos_ += sizeof(double);
    }
    return s;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  void need(std::uint64_t n) const {
    if (n > in_.size() - pos_) throw CorruptNode("payload: truncated");
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace

std::size_t encoded_entry_size(const Entry &e, SumKind kind) {
  return varint_size(e.key.size()) + e.key.size() + sum_size(e.value, kind);
}

std::size_t encoded_child_size(const Child &c, SumKind kind) {
  return varint_size(static_cast<std::uint64_t>(c.id)) + varint_size(c.count) + sum_size(c.sum, kind) +
         varint_size(c.first_key.size()) + c.first_key.size();
}

std::size_t encoded_size(const TreeNode &node, SumKind kind) {
  std::size_t n = 2;
  if (node.leaf) {
    n += varint_size(node.entries.size());
    for (const Entry &e : node.entries) n += encoded_entry_size(e, kind);
  } else {
    n += varint_size(node.children.size());
    for (const Child &c : node.children) n += encoded_child_size(c, kind);
  }
  return n;
}

std::string encode_node(const TreeNode &node, SumKind kind) {
  Writer w(encoded_size(node, kind));
  w.byte(kFormat);
  w.byte(node.leaf ? kLeaf : kInternal);
  if (node.leaf) {
    w.varint(node.entries.size());
    for (const Entry &e : node.entries) {
      w.bytes(e.key);
      w.sum(e.value, kind);
    }
  } else {
    w.varint(node.children.size());
    for (const Child &c : node.children) {
      w.varint(static_cast<std::uint64_t>(c.id));
      w.varint(c.count);
      w.sum(c.sum, kind);
      w.bytes(c.first_key);
    }
  }
  return w.take();
}

namespace {
TreeNode decode_payload(NodeId id, std::string_view payload, SumKind kind) {
  Reader r(payload);
  if (r.byte() != kFormat) throw CorruptNode("payload: unknown format");
  TreeNode node;
  node.id = id;
  std::uint8_t type = r.byte();
  if (type != kLeaf && type != kInternal) throw CorruptNode("payload: unknown node type");
  node.leaf = type == kLeaf;
  std::uint64_t n = r.u64();
  // Every item takes at least one byte: reject counts the payload cannot hold
  // before reserving memory for them.
  if (n > payload.size()) throw CorruptNode("payload: item count exceeds payload");
  if (node.leaf) {
    node.entries.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      Entry e;
      e.key = r.bytes();
      e.value = r.sum(kind);
      node.entries.push_back(std::move(e));
    }
  } else {
    node.children.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      Child c;
      std::uint64_t cid = r.u64();
      if (cid == 0 || cid > static_cast<std::uint64_t>(INT64_MAX)) throw CorruptNode("payload: bad child id");
      if (static_cast<NodeId>(cid) == id) throw CorruptNode("payload: the node is its own child");
      c.id = static_cast<NodeId>(cid);
      c.count = r.u64();
      c.sum = r.sum(kind);
      c.first_key = r.bytes();
      node.children.push_back(std::move(c));
    }
  }
  if (!r.done()) throw CorruptNode("payload: trailing bytes");
  return node;
}
}  // namespace

TreeNode decode_node(NodeId id, std::string_view payload, SumKind kind) {
  try {
    return decode_payload(id, payload, kind);
  } catch (const CorruptNode &e) {  // the reader does not know which node it reads
    throw_corrupt(id, e.what());
  }
}

void throw_corrupt(NodeId id, const char *what) {
  throw CorruptNode("node " + std::to_string(id) + ": " + what);
}

InterruptCheck interrupt_check = nullptr;

bool Sum::same_as(const Sum &o) const {
  if (exact != o.exact) return false;
  if (approx != approx) return o.approx != o.approx;  // NaN
  return approx == o.approx;
}

}  // namespace aggr

// The core is server-independent: fail the build if a server header crept in.
#ifdef POSTGRES_H
#error "src/core must not include PostgreSQL headers"
#endif
