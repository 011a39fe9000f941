#include "node_codec.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace aggr {
namespace {

// Format 1 (aggr_ext 1.0): exactly the node, nothing after it.
// Format 2: the node, then a journal applied in order, then zero padding up
// to the payload's capacity. A leaf's journal inserts and deletes entries; an
// internal node's sets a child's count and sum (its children, their ids and
// first keys stay as the base has them). See encode_node_update for why.
// Payloads written before internal nodes had journals read as journals of
// no ops: their padding starts with the end marker.
constexpr std::uint8_t kFormatExact = 1;
constexpr std::uint8_t kFormatJournaled = 2;
constexpr std::uint8_t kLeaf = 1;
constexpr std::uint8_t kInternal = 2;
constexpr std::uint8_t kOpEnd = 0;  // the padding's zero bytes read as "no more ops"
constexpr std::uint8_t kOpInsert = 1;
constexpr std::uint8_t kOpDelete = 2;
constexpr std::uint8_t kOpChild = 3;  // internal nodes: a child's new count and sum
// A journal longer than this is folded into the base on the next write: each
// op costs the decoder a vector insert or erase.
constexpr std::size_t kMaxJournalOps = 96;
// Items reserved before decoding them: a count in a corrupt payload (a big
// TOASTed row) must not reserve tens of bytes per payload byte up front.
constexpr std::uint64_t kReserveItems = 512;

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
int128 unzigzag(unsigned __int128 v) { return static_cast<int128>(v >> 1) ^ -static_cast<int128>(v & 1); }

std::size_t sum_size(const Sum &s, SumKind kind) {
  switch (kind) {
    case SumKind::None:
      return 0;
    case SumKind::Exact:
      return varint_size(zigzag(s.exact));
    case SumKind::Float:
      return sizeof(double);
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
  void pad_to(std::size_t size) {
    if (out_.size() < size) out_.append(size - out_.size(), '\0');
  }
  std::size_t size() const { return out_.size(); }
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
  std::string bytes() { return std::string(view()); }
  std::string_view view() {
    std::uint64_t n = u64();
    need(n);
    std::string_view s = in_.substr(pos_, n);
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
  std::size_t pos() const { return pos_; }
  // Zero padding to the end, as format 2 writes it.
  bool rest_is_zero() const {
    for (std::size_t i = pos_; i < in_.size(); ++i)
      if (in_[i] != 0) return false;
    return true;
  }

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

namespace {
void write_entry(Writer &w, const Entry &e, SumKind kind) {
  w.bytes(e.key);
  w.sum(e.value, kind);
}

void write_base(Writer &w, const TreeNode &node, SumKind kind) {
  w.byte(kFormatJournaled);
  w.byte(node.leaf ? kLeaf : kInternal);
  if (node.leaf) {
    w.varint(node.entries.size());
    for (const Entry &e : node.entries) write_entry(w, e, kind);
  } else {
    w.varint(node.children.size());
    for (const Child &c : node.children) {
      w.varint(static_cast<std::uint64_t>(c.id));
      w.varint(c.count);
      w.sum(c.sum, kind);
      w.bytes(c.first_key);
    }
  }
}

// Room left after a node's bytes for later writes to land in place (the
// journal). An internal node's ops are a few bytes (a child's new count),
// and its row stays small: internal nodes change on most writes, and under
// concurrent writers their page must hold several versions that pruning
// cannot remove yet (measured: a quarter more room tripled the nodes
// table's growth at 8 clients).
std::size_t slack_for(const TreeNode &node, std::size_t size) {
  return node.leaf ? std::max<std::size_t>(64, size / 2) : std::max<std::size_t>(128, size / 32);
}

std::size_t capacity_for(const TreeNode &node, std::size_t size, std::size_t max_capacity) {
  return std::max(size, std::min(size + slack_for(node, size), max_capacity));
}

// A leaf entry seen in place in a payload (no copy of its key).
struct EntryView {
  std::string_view key;
  Sum value;
};

Entry read_entry(Reader &r, SumKind kind) {
  Entry e;
  e.key = r.bytes();
  e.value = r.sum(kind);
  return e;
}

EntryView read_entry_view(Reader &r, SumKind kind) {
  EntryView e;
  e.key = r.view();
  e.value = r.sum(kind);
  return e;
}

// A child seen in place in a payload (no copy of its first key).
struct ChildView {
  NodeId id = 0;
  std::uint64_t count = 0;
  Sum sum;
  std::string_view first_key;
};

template <class C>
C read_child(Reader &r, NodeId self, SumKind kind) {
  C c;
  std::uint64_t cid = r.u64();
  if (cid == 0 || cid > static_cast<std::uint64_t>(INT64_MAX)) throw CorruptNode("payload: bad child id");
  if (static_cast<NodeId>(cid) == self) throw CorruptNode("payload: the node is its own child");
  c.id = static_cast<NodeId>(cid);
  c.count = r.u64();
  c.sum = r.sum(kind);
  if constexpr (std::is_same_v<C, ChildView>)
    c.first_key = r.view();
  else
    c.first_key = r.bytes();
  return c;
}

// Where a node's bytes end and how many journal ops it holds.
struct JournalTail {
  std::size_t used = 0;
  std::size_t ops = 0;
};

// The base items (`read` reads one), then, in format 2, the journal:
// `apply_op(op, reader, items)` applies each op in order, until the end
// marker (the padding's first zero byte) or the payload's end.
template <class T, class ReadItem, class ApplyOp>
JournalTail read_journaled(Reader &r, std::vector<T> &items, std::size_t payload_size, bool journaled, ReadItem read,
                           ApplyOp apply_op) {
  std::uint64_t n = r.u64();
  // Every item takes at least one byte: reject counts the payload cannot hold.
  if (n > payload_size) throw CorruptNode("payload: item count exceeds payload");
  items.reserve(std::min<std::uint64_t>(n, kReserveItems));
  for (std::uint64_t i = 0; i < n; ++i) items.push_back(read(r));
  JournalTail tail;
  if (!journaled) {
    if (!r.done()) throw CorruptNode("payload: trailing bytes");
    tail.used = r.pos();
    return tail;
  }
  while (!r.done()) {
    std::size_t at = r.pos();
    std::uint8_t op = r.byte();
    if (op == kOpEnd) {
      if (!r.rest_is_zero()) throw CorruptNode("payload: bytes after the end of the journal");
      tail.used = at;
      return tail;
    }
    apply_op(op, r, items);
    // Writers fold a journal into the base before it passes the cap: a
    // longer one is not ours, and each op may cost the reader a vector shift.
    if (++tail.ops > kMaxJournalOps) throw CorruptNode("payload: journal longer than any write makes");
  }
  tail.used = r.pos();
  return tail;
}

// A leaf: entries (`read` reads an Entry or an EntryView); its journal
// inserts and deletes entries.
template <class E, class ReadEntry>
JournalTail read_leaf(Reader &r, std::vector<E> &entries, std::size_t payload_size, bool journaled, ReadEntry read) {
  return read_journaled(r, entries, payload_size, journaled, read, [&](std::uint8_t op, Reader &in, std::vector<E> &items) {
    std::uint64_t index = in.u64();
    if (op == kOpInsert) {
      if (index > items.size()) throw CorruptNode("payload: journal inserts past the end");
      if (items.size() >= payload_size) throw CorruptNode("payload: item count exceeds payload");
      items.insert(items.begin() + static_cast<std::ptrdiff_t>(index), read(in));
    } else if (op == kOpDelete) {
      if (index >= items.size()) throw CorruptNode("payload: journal deletes past the end");
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(index));
    } else {
      throw CorruptNode("payload: unknown journal op");
    }
  });
}

// An internal node: children; its journal sets a child's count and sum.
template <class C>
JournalTail read_internal(Reader &r, NodeId self, std::vector<C> &children, std::size_t payload_size, bool journaled,
                          SumKind kind) {
  return read_journaled(
      r, children, payload_size, journaled, [&](Reader &in) { return read_child<C>(in, self, kind); },
      [&](std::uint8_t op, Reader &in, std::vector<C> &items) {
        if (op != kOpChild) throw CorruptNode("payload: unknown journal op");
        std::uint64_t index = in.u64();
        if (index >= items.size()) throw CorruptNode("payload: journal sets a child past the end");
        items[index].count = in.u64();
        items[index].sum = in.sum(kind);
      });
}

// Format byte and node type; throws on anything else.
std::uint8_t read_header(Reader &r, bool *leaf) {
  std::uint8_t format = r.byte();
  if (format != kFormatExact && format != kFormatJournaled) throw CorruptNode("payload: unknown format");
  std::uint8_t type = r.byte();
  if (type != kLeaf && type != kInternal) throw CorruptNode("payload: unknown node type");
  *leaf = type == kLeaf;
  return format;
}

TreeNode decode_payload(NodeId id, std::string_view payload, SumKind kind) {
  Reader r(payload);
  TreeNode node;
  node.id = id;
  std::uint8_t format = read_header(r, &node.leaf);
  if (node.leaf) {
    read_leaf(r, node.entries, payload.size(), format == kFormatJournaled,
              [kind](Reader &in) { return read_entry(in, kind); });
    return node;
  }
  read_internal(r, id, node.children, payload.size(), format == kFormatJournaled, kind);
  return node;
}

// Sums as the payload holds them (floats bit for bit).
bool same_sum(const Sum &a, const Sum &b, SumKind kind) {
  switch (kind) {
    case SumKind::None:
      return true;
    case SumKind::Exact:
      return a.exact == b.exact;
    case SumKind::Float:
      return std::memcmp(&a.approx, &b.approx, sizeof(double)) == 0;
  }
  return false;
}

// An entry as the payload holds it: the key and the sum of the tree's kind.
bool same_entry(const EntryView &a, const Entry &b, SumKind kind) { return a.key == b.key && same_sum(a.value, b.value, kind); }

// Appends to `w` ops that turn `before` into `after`; returns false once
// more than `budget` ops would be needed. Every op keeps the list equal to
// after[0, j) followed by before[i, end), so any choice of ops ends in
// exactly `after`; looking a few entries ahead only keeps the script short
// (both lists are in the tree's order, so shared entries line up).
bool journal_ops(const std::vector<EntryView> &before, const std::vector<Entry> &after, Writer &w, SumKind kind,
                 std::size_t budget) {
  constexpr std::size_t kLookahead = 8;
  std::size_t i = 0, j = 0, ops = 0;
  auto del = [&] {
    w.byte(kOpDelete);
    w.varint(j);
    ++i;
  };
  auto ins = [&] {
    w.byte(kOpInsert);
    w.varint(j);
    w.bytes(after[j].key);
    w.sum(after[j].value, kind);
    ++j;
  };
  while (i < before.size() || j < after.size()) {
    if (i < before.size() && j < after.size() && same_entry(before[i], after[j], kind)) {
      ++i, ++j;
      continue;
    }
    if (i == before.size()) {
      ins();
    } else if (j == after.size()) {
      del();
    } else {
      std::size_t dropped = 0, added = 0;  // how far the next shared entry is in each list
      for (std::size_t d = 1; d <= kLookahead && !dropped && !added; ++d) {
        if (i + d < before.size() && same_entry(before[i + d], after[j], kind)) dropped = d;
        if (j + d < after.size() && same_entry(before[i], after[j + d], kind)) added = d;
      }
      if (added && !dropped) {
        ins();
      } else if (dropped && !added) {
        del();
      } else {  // a changed entry (or nothing shared nearby): replace it
        del();
        ins();
        ++ops;
      }
    }
    if (++ops > budget) return false;
  }
  return true;
}

// Appends to `w` ops that set the counts and sums of `before`'s children to
// `after`'s; false when the children themselves differ (added, removed,
// another id or first key) or more than `budget` ops would be needed.
bool child_ops(const std::vector<ChildView> &before, const std::vector<Child> &after, Writer &w, SumKind kind,
               std::size_t budget) {
  if (before.size() != after.size()) return false;
  std::size_t ops = 0;
  for (std::size_t i = 0; i < after.size(); ++i) {
    const ChildView &b = before[i];
    const Child &a = after[i];
    if (b.id != a.id || b.first_key != a.first_key) return false;
    if (b.count == a.count && same_sum(b.sum, a.sum, kind)) continue;
    if (++ops > budget) return false;
    w.byte(kOpChild);
    w.varint(i);
    w.varint(a.count);
    w.sum(a.sum, kind);
  }
  return true;
}

// The old payload's internal node, seen in place: children (journal
// applied), where the bytes end, how many journal ops it holds. False when it
// is not a format 2 internal node.
bool scan_journaled_internal(std::string_view payload, NodeId id, SumKind kind, std::vector<ChildView> *children,
                             JournalTail *tail) {
  try {
    Reader r(payload);
    bool leaf = true;
    if (read_header(r, &leaf) != kFormatJournaled || leaf) return false;
    *tail = read_internal(r, id, *children, payload.size(), true, kind);
    return true;
  } catch (const CorruptNode &) {
    return false;  // rewritten whole: nothing to keep
  }
}

// The old payload's leaf, seen in place: entries, where the bytes end, how
// many ops its journal holds. False when it is not a format 2 leaf.
bool scan_journaled_leaf(std::string_view payload, SumKind kind, std::vector<EntryView> *entries, JournalTail *tail) {
  try {
    Reader r(payload);
    bool leaf = false;
    if (read_header(r, &leaf) != kFormatJournaled || !leaf) return false;
    *tail = read_leaf(r, *entries, payload.size(), true, [kind](Reader &in) { return read_entry_view(in, kind); });
    return true;
  } catch (const CorruptNode &) {
    return false;  // rewritten whole: nothing to keep
  }
}

bool is_journaled(std::string_view payload, bool leaf) {
  return payload.size() >= 2 && static_cast<std::uint8_t>(payload[0]) == kFormatJournaled &&
         static_cast<std::uint8_t>(payload[1]) == (leaf ? kLeaf : kInternal);
}
}  // namespace

namespace {
// The bytes PostgreSQL logs for a same-page update from `a` to `b` (same
// length): those between their longest common prefix and suffix.
std::size_t logged_span(std::string_view a, std::string_view b) {
  std::size_t n = std::min(a.size(), b.size()), prefix = 0, suffix = 0;
  while (prefix < n && a[prefix] == b[prefix]) ++prefix;
  while (suffix < n - prefix && a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) ++suffix;
  return std::max(a.size(), b.size()) - prefix - suffix;
}
}  // namespace

std::string encode_node(const TreeNode &node, SumKind kind) {
  Writer w(encoded_size(node, kind));
  write_base(w, node, kind);
  return w.take();
}

std::string encode_new_node(const TreeNode &node, SumKind kind, std::size_t max_capacity) {
  std::size_t size = encoded_size(node, kind);
  std::size_t capacity = capacity_for(node, size, max_capacity);
  Writer w(capacity);
  write_base(w, node, kind);
  w.pad_to(capacity);
  return w.take();
}

// PostgreSQL logs an update that stays on its heap page (HOT) as only the
// bytes between the longest common prefix and the longest common suffix of
// the old and new row. A payload that keeps its length and changes few bytes
// in place therefore costs a few bytes of WAL instead of the whole node:
// a leaf appends a journal op into its padding (the bytes before it are
// unchanged, the padding after it still zero), an internal node rewrites a
// child's count in place. When the journal is full or the node outgrows the
// payload, the node is written whole again with fresh room.
std::string encode_node_update(std::string_view old_payload, const TreeNode &node, SumKind kind,
                               std::size_t max_capacity) {
  // The journal's new ops go where the old journal ends: the bytes before
  // them are unchanged, the padding after them still zero.
  auto append_ops = [&](std::size_t used, Writer &ops) {
    std::string out;
    out.reserve(old_payload.size());
    out.append(old_payload.substr(0, used));
    out += ops.take();
    out.resize(old_payload.size(), '\0');
    return out;
  };
  JournalTail tail;
  Writer ops(64);
  if (node.leaf) {
    std::vector<EntryView> before;
    if (scan_journaled_leaf(old_payload, kind, &before, &tail) && tail.ops < kMaxJournalOps &&
        journal_ops(before, node.entries, ops, kind, kMaxJournalOps - tail.ops) &&
        tail.used + ops.size() <= old_payload.size())
      return append_ops(tail.used, ops);
  }
  // Rewritten whole in the same length where that leaves room: the prefix
  // up to the first changed byte and the padding still match.
  std::size_t size = encoded_size(node, kind);
  // A payload bigger than the node and its room (it shrank) is written anew,
  // smaller: bigger rows leave less of their page for the next versions.
  bool room = old_payload.size() >= size + slack_for(node, size) / 2;
  std::string rewritten;
  if (is_journaled(old_payload, node.leaf) && room && old_payload.size() <= capacity_for(node, size, max_capacity)) {
    Writer w(old_payload.size());
    write_base(w, node, kind);
    w.pad_to(old_payload.size());
    rewritten = w.take();
  }
  if (!node.leaf) {
    // An internal node's child count changing in place logs a byte or two,
    // but two changed children (an entry moved from one subtree to another)
    // log every byte between them, and a count that changes width shifts
    // the rest of the node: then the new counts go to the journal instead.
    std::vector<ChildView> before;
    if (scan_journaled_internal(old_payload, node.id, kind, &before, &tail) && tail.ops < kMaxJournalOps &&
        child_ops(before, node.children, ops, kind, kMaxJournalOps - tail.ops) &&
        tail.used + ops.size() <= old_payload.size() &&
        (rewritten.empty() || ops.size() < logged_span(old_payload, rewritten)))
      return append_ops(tail.used, ops);
  }
  return rewritten.empty() ? encode_new_node(node, kind, max_capacity) : rewritten;
}

TreeNode decode_node(NodeId id, std::string_view payload, SumKind kind) {
  try {
    return decode_payload(id, payload, kind);
  } catch (const CorruptNode &e) {  // the reader does not know which node it reads
    throw_corrupt(id, e.what());
  }
}

void throw_corrupt(NodeId id, const char *what) { throw CorruptNode("node " + std::to_string(id) + ": " + what); }

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
