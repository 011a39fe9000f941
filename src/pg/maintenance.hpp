// Keeping trees in step with their tables: the per-transaction op buffer,
// its flush into the trees, clearing, and the bulk build.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "catalog.hpp"

namespace aggr::pg {

// A row change recorded by a trigger, applied at flush.
struct PendingOp {
  int32 aggr_id;
  bool insert;
  std::string ns, key;
  Sum value;
};

// Ops of the current transaction. Ops recorded inside a subtransaction
// are kept after a flush until it ends: if it aborts, its tree writes
// roll back and the ops flushed before it began must be applied again.
class OpBuffer {
 public:
  void add(PendingOp op);
  void flush();
  bool empty() const { return flushed_ == ops_.size(); }
  void subxact_start(SubTransactionId id);
  void subxact_commit(SubTransactionId id);
  void subxact_abort(SubTransactionId id);
  void reset();

 private:
  struct Level {
    SubTransactionId id;
    std::size_t start, flushed_at_start;
  };
  void forget_flushed_if_top_level();
  std::vector<PendingOp> ops_;
  std::size_t flushed_ = 0;
  std::size_t pending_bytes_ = 0;
  std::vector<Level> levels_;
};

OpBuffer &op_buffer();
void register_transaction_callbacks();

// Visits every row of the source table as (namespace, entry, sum), in
// aggregate order (namespace, key, primary key), through an SPI cursor.
void scan_in_order(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit);

// Empties the trees of an aggregate (one namespace when ns != nullptr).
void clear_trees(const AggregateDef &def, const std::string *ns);
// Clears, then builds every tree from an ordered scan of the source table.
// Returns the number of rows indexed.
std::uint64_t build_trees(const AggregateDef &def, const char *verb);

}  // namespace aggr::pg
