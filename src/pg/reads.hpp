// The read path as the planner's Custom Scan uses it (planner.cpp): one
// range of one aggregate, named by the definition the plan was made for,
// answered with the query's snapshot exactly as aggr_count / aggr_sum /
// aggr_min / aggr_max answer, or refused so that the normal plan runs.
#pragma once
#include <string>
#include <vector>

#include "keys.hpp"

namespace aggr::pg {

// A WHERE condition on the aggregate's leading key expression, as SQL
// means it (`key < value`, `key IS NULL`, ...).
enum class BoundOp { Lt, Le, Eq, Ge, Gt, IsNull, IsNotNull };
struct QueryBound {
  BoundOp op = BoundOp::Eq;
  KeyValue value;  // unused for IsNull / IsNotNull
};

// The aggregate a plan matched, with the stored definition it matched: a
// plan kept (a prepared statement) must not read an aggregate of the same
// name that was dropped and created again with another key.
struct PlannedAggregate {
  std::string name;
  Oid source = InvalidOid;
  std::string key_exprs, key_flags, sum_expr, ns_expr;
  Oid check_as = InvalidOid;  // the role privileges are checked as (a view's owner), or the current user
};

// percentile_disc(fraction) WITHIN GROUP (ORDER BY <leading key> [DESC]).
struct Percentile {
  double fraction = 0;  // within [0, 1]
  bool fraction_null = false;
  bool descending = false;
};

struct RangeQuery {
  std::vector<QueryBound> bounds;
  std::vector<Percentile> percentiles;
  bool has_ns = false;
  KeyValue ns;  // of the namespace expression's type
  bool want_sum = false, want_min = false, want_max = false;
};

// In the caller's memory context. sum: numeric (NULL when count is 0);
// min / max: of the leading key column's type, the smallest / largest
// non-NULL value in that type's order (NULL when none); percentile: what
// percentile_disc gives over the non-NULL leading keys.
struct RangeAnswer {
  std::uint64_t count = 0;
  Datum sum = 0;
  Datum min = 0, max = 0;
  bool min_null = true, max_null = true;
  std::vector<Datum> percentile;  // one per query.percentiles, of the key's type
  std::vector<bool> percentile_null;
};

// False, having read nothing, when the aggregate cannot answer exactly for
// this caller now: gone, redefined, not ready, stale, over an unlogged
// table, row-level security, or no table-level SELECT (a column grantee is
// left to the normal plan). Errors of the read itself (corruption) raise.
bool answer_range(const PlannedAggregate &planned, const RangeQuery &query, RangeAnswer &out);

// `limit` rows (all when negative) from the `offset`-th of the range, in
// aggregate order or its reverse: whole rows of the source table fetched
// by primary key with the query's snapshot (as aggr_page_rows), appended
// to `rows` (a tuplestore of the table's rows). False as answer_range.
struct RowsQuery {
  RangeQuery range;
  int64 offset = 0, limit = -1;
  bool reverse = false;
};
bool answer_rows(const PlannedAggregate &planned, const RowsQuery &query, Tuplestorestate *rows);

}  // namespace aggr::pg
