// Serialization of nodes into the bytea payload of a node row.
#pragma once
#include "types.hpp"

namespace aggr {

// Exact size of encode(node, kind), without encoding.
std::size_t encoded_size(const TreeNode &node, SumKind kind);
std::size_t encoded_entry_size(const Entry &e, SumKind kind);
std::size_t encoded_child_size(const Child &c, SumKind kind);

std::string encode_node(const TreeNode &node, SumKind kind);
// Throws CorruptNode on any malformed or truncated payload.
TreeNode decode_node(NodeId id, std::string_view payload, SumKind kind);

}  // namespace aggr
