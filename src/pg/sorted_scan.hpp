// The rows of an aggregate's table in aggregate order, for a build: sorted
// in memory here when that is possible (see sorted_scan.cpp), else by the
// SQL ordered scan.
#pragma once
#include <functional>

#include "catalog.hpp"
#include "keys.hpp"

namespace aggr::pg {

// Visits every row of the source table as scan_in_order does, in the
// aggregate's entry order.
void scan_for_build(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit);

}  // namespace aggr::pg
