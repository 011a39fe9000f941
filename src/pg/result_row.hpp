// pg-side: the one-row composite result of a function with OUT parameters.
#pragma once
#include "pg.hpp"

namespace aggr::pg {

inline Datum result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
  return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}

}  // namespace aggr::pg
