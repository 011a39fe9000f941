// Writes seed corpora of valid inputs: single nodes of every kind for the
// decoder fuzzer (into argv[1]) and whole trees for the tree walk fuzzer
// (into argv[2], when given).
#include <fstream>

#include "../../src/core/node_codec.hpp"
#include "../unit/memory_store.hpp"
#include "tree_walk_input.hpp"

namespace {

void write(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

void node_seeds(const std::string &dir) {
  int n = 0;
  for (int k = 0; k < 3; ++k) {
    auto kind = static_cast<aggr::SumKind>(k);
    for (bool leaf : {true, false}) {
      aggr::TreeNode node;
      node.leaf = leaf;
      for (int i = 0; i < 5; ++i) {
        aggr::Sum s;
        s.exact = i * 1000 - 2000;
        s.approx = i * 0.25;
        if (leaf)
          node.entries.push_back(aggr::Entry{std::string(static_cast<std::size_t>(i + 1), static_cast<char>('a' + i)), s});
        else
          node.children.push_back(aggr::Child{i + 1, static_cast<std::uint64_t>(i) * 77, s, std::string(3, 'k')});
      }
      write(dir + "/seed" + std::to_string(n++), std::string(1, static_cast<char>(k)) + aggr::encode_node(node, kind));
    }
  }
}

// Valid trees one to three levels deep, built as the tree builds them.
void tree_seeds(const std::string &dir) {
  using namespace aggr;
  int n = 0;
  for (int k = 0; k < 3; ++k) {
    for (int rows : {1, 12, 60, 300}) {
      auto kind = static_cast<SumKind>(k);
      test::MemoryStore store(kind);
      test::BytesOrdering order;
      TreeConfig config;
      config.sum_kind = kind;
      config.max_node_bytes = 256;
      BulkBuilder b(store, order, config);
      for (int i = 0; i < rows; ++i) {
        Sum s;
        s.exact = i;
        s.approx = i;
        b.add(Entry{test::make_key(i * 2, i), s});
      }
      TreeMeta meta = b.finish();
      std::vector<std::string> payloads;
      for (auto &[id, p] : store.payloads()) payloads.push_back(p);
      write(dir + "/tree" + std::to_string(n++), test::tree_input(kind, meta, payloads, rows / 2));
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  node_seeds(argc > 1 ? argv[1] : ".");
  if (argc > 2) tree_seeds(argv[2]);
  return 0;
}
