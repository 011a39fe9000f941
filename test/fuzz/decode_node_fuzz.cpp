// libFuzzer target: the node decoder must reject any byte string it cannot
// read, with CorruptNode, and never read out of bounds (built with ASan).
// What it accepts must re-encode to the same bytes.
#include <cstdint>
#include <string>

#include "../../src/core/node_codec.hpp"

// Not a child id of the seeds: a node listing itself as a child is rejected.
constexpr aggr::NodeId kNodeId = INT64_MAX;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size == 0) return 0;
  aggr::SumKind kind = static_cast<aggr::SumKind>(data[0] % 3);
  std::string_view payload(reinterpret_cast<const char *>(data + 1), size - 1);
  try {
    aggr::TreeNode node = aggr::decode_node(kNodeId, payload, kind);
    std::string again = aggr::encode_node(node, kind);
    aggr::TreeNode back = aggr::decode_node(kNodeId, again, kind);
    if (aggr::encode_node(back, kind) != again) __builtin_trap();
  } catch (const aggr::CorruptNode &) {
  }
  return 0;
}
