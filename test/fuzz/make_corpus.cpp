// Writes a seed corpus of valid nodes of every kind for the decoder fuzzer.
#include <fstream>

#include "../../src/core/node_codec.hpp"

int main(int argc, char **argv) {
  std::string dir = argc > 1 ? argv[1] : ".";
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
      std::ofstream out(dir + "/seed" + std::to_string(n++), std::ios::binary);
      out.put(static_cast<char>(k));
      out << aggr::encode_node(node, kind);
    }
  }
  return 0;
}
