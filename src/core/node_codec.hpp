// Serialization of nodes into the bytea payload of a node row.
#pragma once
#include "types.hpp"

namespace aggr {

// Exact size of encode(node, kind), without encoding.
std::size_t encoded_size(const TreeNode &node, SumKind kind);
std::size_t encoded_entry_size(const Entry &e, SumKind kind);
std::size_t encoded_child_size(const Child &c, SumKind kind);

// The node alone (format 2 without room): what encoded_size measures.
std::string encode_node(const TreeNode &node, SumKind kind);
// A node row's payload: the node followed by zero padding (room for later
// changes in place), at most max_capacity bytes unless the node needs more.
std::string encode_new_node(const TreeNode &node, SumKind kind, std::size_t max_capacity);
// The payload that replaces `old_payload` (any format, even corrupt) by
// `node`, changing as few bytes as it can (see node_codec.cpp).
std::string encode_node_update(std::string_view old_payload, const TreeNode &node, SumKind kind,
                               std::size_t max_capacity);
// Decodes formats 1 and 2. Throws CorruptNode on any malformed or truncated payload.
TreeNode decode_node(NodeId id, std::string_view payload, SumKind kind);

}  // namespace aggr
