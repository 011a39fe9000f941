// The rows of an aggregate's table in aggregate order, for a build, sorted
// in memory when that is possible (see sorted_scan.cpp).
#pragma once
#include <cstdint>
#include <functional>

#include "catalog.hpp"
#include "keys.hpp"

namespace aggr::pg {

// Visits every row of the source table as scan_in_order does, in the same
// order, sorted here: when every key and primary key column is plain and the
// aggregate has no namespace. Within maintenance_work_mem in memory; beyond
// it in sorted runs in temporary files, merged (`spill`), or not at all.
// Returns false, having visited nothing, when it does not apply or the table
// has more than `max_rows` rows (or does not fit and may not spill).
bool visit_sorted(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit,
                  std::uint64_t max_rows, bool spill);
// Whether visit_sorted may apply.
bool sorts_in_memory(const CompiledAggregate &agg);

}  // namespace aggr::pg
