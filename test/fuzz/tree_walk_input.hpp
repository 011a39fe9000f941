// The tree walk fuzzer's input format, shared with the corpus generator:
//   byte 0 sum kind (mod 3), byte 1 height, byte 2 root node (1-based),
//   bytes 3-4 entry count (LE), bytes 5-6 probe key, byte 7 start offset,
//   then per node: a 2-byte LE length and that many payload bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../../src/core/types.hpp"

namespace aggr::test {

struct TreeInput {
  SumKind kind = SumKind::None;
  TreeMeta meta;
  std::int64_t probe = 0;
  std::uint64_t offset = 0;
  std::vector<std::string> payloads;  // of nodes 1..n
};

constexpr std::size_t kTreeInputHeader = 8;

inline bool parse_tree_input(const std::uint8_t *data, std::size_t size, TreeInput &in) {
  if (size < kTreeInputHeader) return false;
  in.kind = static_cast<SumKind>(data[0] % 3);
  in.meta.height = data[1];
  in.meta.root = data[2];
  in.meta.count = static_cast<std::uint64_t>(data[3] | data[4] << 8);
  in.probe = static_cast<std::int64_t>(data[5] | data[6] << 8);
  in.offset = data[7];
  for (std::size_t pos = kTreeInputHeader; pos + 2 <= size && in.payloads.size() < 255;) {
    std::size_t len = static_cast<std::size_t>(data[pos] | data[pos + 1] << 8);
    pos += 2;
    if (len > size - pos) len = size - pos;
    in.payloads.emplace_back(reinterpret_cast<const char *>(data + pos), len);
    pos += len;
  }
  in.meta.nodes = in.payloads.size();
  return true;
}

inline std::string tree_input(SumKind kind, const TreeMeta &meta, const std::vector<std::string> &payloads,
                              std::int64_t probe) {
  std::string out;
  auto u16 = [&](std::uint64_t v) {
    out.push_back(static_cast<char>(v & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
  };
  out.push_back(static_cast<char>(kind));
  out.push_back(static_cast<char>(meta.height));
  out.push_back(static_cast<char>(meta.root));
  u16(meta.count);
  u16(static_cast<std::uint64_t>(probe));
  out.push_back(0);
  for (const std::string &p : payloads) {
    u16(p.size());
    out += p;
  }
  return out;
}

}  // namespace aggr::test
