#include "owner_context.hpp"

#include "catalog.hpp"

namespace aggr::pg {

namespace {
// GUC_SAFE_SEARCH_PATH of PostgreSQL 17 (RestrictSearchPath).
constexpr const char *kSafeSearchPath = "pg_catalog, pg_temp";

// What the switch replaced; plain data, restored by leave_owner_context.
struct SavedContext {
  Oid user = InvalidOid;
  int sec_context = 0;
  int guc_level = 0;
};

SavedContext enter_owner_context(Oid owner) {
  SavedContext saved;
  pg_guard([&] {
    GetUserIdAndSecContext(&saved.user, &saved.sec_context);
    SetUserIdAndSecContext(owner, saved.sec_context | SECURITY_RESTRICTED_OPERATION);
    saved.guc_level = NewGUCNestLevel();
    (void)set_config_option("search_path", kSafeSearchPath, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                            false);
  });
  return saved;
}

// Rolls back every GUC change made since the switch (also the levels that
// an error left pushed by functions with SET clauses above ours), then the
// user and security context.
void leave_owner_context(const SavedContext &saved) {
  pg_guard([&] {
    AtEOXact_GUC(false, saved.guc_level);
    SetUserIdAndSecContext(saved.user, saved.sec_context);
  });
}
}  // namespace

Oid table_owner(Oid relid) {
  Oid owner = InvalidOid;
  pg_guard([&] {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tup))
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("source table (OID %u) of an aggregate no longer exists", relid),
                      errhint("Remove the aggregate with aggr_drop.")));
    owner = ((Form_pg_class)GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
  });
  return owner;
}

void run_as_table_owner(Oid relid, const std::function<void()> &fn) {
  Oid owner = table_owner(relid);
  SavedContext saved = enter_owner_context(owner);
  try {
    fn();
  } catch (...) {
    leave_owner_context(saved);
    throw;
  }
  leave_owner_context(saved);
}

bool run_as_aggregate_owner(int32 aggr_id, const std::function<void()> &fn) {
  AggregateDef def;
  if (!load_aggregate_by_id(aggr_id, def)) return false;
  run_as_table_owner(def.source, fn);
  return true;
}

}  // namespace aggr::pg
