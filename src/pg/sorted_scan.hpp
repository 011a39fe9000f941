// The rows of an aggregate's table in aggregate order, for a build, sorted
// in memory when that is possible (see sorted_scan.cpp).
#pragma once
#include <cstdint>
#include <functional>

#include "catalog.hpp"
#include "keys.hpp"

namespace aggr::pg {

// Visits every row of the source table as scan_in_order does, in the same
// order, sorted in memory: when every key and primary key column is plain,
// the aggregate has no namespace and the entries fit in
// maintenance_work_mem and `max_rows`. Otherwise returns false, having
// visited nothing.
bool visit_sorted_in_memory(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit,
                            std::uint64_t max_rows = UINT64_MAX);
// Whether visit_sorted_in_memory may apply (it may still not fit).
bool sorts_in_memory(const CompiledAggregate &agg);

}  // namespace aggr::pg
