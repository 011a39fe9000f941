// The security context of work done outside a user's own statement.
//
// The merger, background jobs and maintenance functions (verify, diff,
// repair, rebuild, merge, a build) evaluate an aggregate's key, sum and
// namespace expressions and its key type's comparators: user code. As
// PostgreSQL does for index expressions in REINDEX, VACUUM and ANALYZE
// (indexcmds.c, vacuum.c), that code runs as the source table's owner,
// under SECURITY_RESTRICTED_OPERATION, with search_path pinned to
// "pg_catalog, pg_temp" and every GUC change it makes rolled back. Never
// as the bootstrap superuser a worker connects as, nor as a superuser
// calling a maintenance function on another role's table.
#pragma once
#include <functional>

#include "guard.hpp"

namespace aggr::pg {

// The current owner of relation `relid` (pg_class.relowner, looked up now:
// ownership may have changed since anything was stored). Throws
// ERRCODE_UNDEFINED_TABLE when the relation is gone.
Oid table_owner(Oid relid);

// Runs `fn` as the owner of `relid` in the sandbox above, then restores the
// caller's user, security context and GUCs, on success and when `fn` throws
// (the exception then propagates; the caller aborts or rolls back). Needs a
// transaction. Nested calls are fine.
void run_as_table_owner(Oid relid, const std::function<void()> &fn);

// run_as_table_owner for the source table of aggregate `aggr_id`; false (fn
// not run) when the aggregate no longer exists.
bool run_as_aggregate_owner(int32 aggr_id, const std::function<void()> &fn);

}  // namespace aggr::pg
