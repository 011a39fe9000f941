// libFuzzer target: whole trees of untrusted node payloads. Every read path
// and apply must answer or throw CorruptNode (InvariantViolation from the
// checker), never read out of bounds (ASan) and never walk without bound:
// the interrupt hook traps past a budget of node visits per call.
//
// Input (see tree_walk_input.hpp): a header (sum kind, height, root, count,
// node count) and length-prefixed payloads of nodes 1..n.
#include <cstdint>
#include <string>

#include "../../src/core/pending.hpp"
#include "../unit/memory_store.hpp"
#include "tree_walk_input.hpp"

namespace {

constexpr std::uint64_t kMaxVisits = 200000;
std::uint64_t visits = 0;
void count_visit() {
  if (++visits > kMaxVisits) __builtin_trap();  // a walk that does not end
}

template <typename F>
void bounded(F &&f, bool invariant_ok = false) {
  visits = 0;
  try {
    f();
  } catch (const aggr::CorruptNode &) {
  } catch (const aggr::InvariantViolation &) {
    if (!invariant_ok) __builtin_trap();
  }
}

template <typename C>
void drain(C &&c, std::uint64_t bound) {
  for (std::uint64_t steps = 0; c.valid(); c.next())
    if (++steps > bound) __builtin_trap();  // more entries than the count allows
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace aggr;
  using namespace aggr::test;
  interrupt_check = count_visit;
  TreeInput in;
  if (!parse_tree_input(data, size, in)) return 0;
  MemoryStore store(in.kind);
  store.lenient = true;  // apply may reach a shared node twice, as PostgreSQL's store allows
  for (std::size_t i = 0; i < in.payloads.size(); ++i) store.put_payload(static_cast<NodeId>(i + 1), in.payloads[i]);
  BytesOrdering order;
  TreeConfig config;
  config.sum_kind = in.kind;
  config.max_node_bytes = 256;
  Tree tree(store, order, config, in.meta);
  std::uint64_t bound = std::min<std::uint64_t>(in.meta.count, 100000) + 1;

  KeyProbe lo(in.probe, false), hi(in.probe + 50, true);
  bounded([&] { tree.prefix_before(lo); });
  bounded([&] { tree.range(&lo, &hi); });
  bounded([&] { tree.range(nullptr, &hi); });
  bounded([&] { drain(Cursor(store, in.meta, in.offset % bound), bound); });
  bounded([&] { tree.check(); }, true);
  std::vector<Delta> deltas{Delta{make_key(in.probe, 1), Sum{}, 1}, Delta{make_key(in.probe + 9, 2), Sum{}, -1}};
  PendingChanges pending(deltas, order);
  bounded([&] { drain(MergedCursor(store, tree, order, pending, in.offset % bound), bound + 2); });
  std::vector<Op> ops;
  for (std::int64_t k = in.probe; k < in.probe + 60; k += 7)
    ops.push_back(Op{make_key(k, k), Sum{}, k % 2 ? Op::Action::Upsert : Op::Action::Remove, false});
  bounded([&] {
    tree.apply(ops);
    drain(Cursor(store, tree.meta(), 0), std::min<std::uint64_t>(tree.meta().count, 100000) + 1);
  });
  return 0;
}
