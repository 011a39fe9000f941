// DDL that removes a source table (DROP TABLE, DROP SCHEMA ... CASCADE,
// DROP OWNED) removes its aggregates with it, as it removes its indexes: a
// sql_drop event trigger forgets every aggregate whose source was dropped.
#include <algorithm>

#include "jobs.hpp"
#include "maintenance.hpp"

extern "C" {
#include "commands/event_trigger.h"
}

using namespace aggr;
using namespace aggr::pg;

namespace {
// OIDs of the tables the current DDL command dropped.
std::vector<Oid> dropped_tables() {
  std::vector<Oid> out;
  Oid buffer[1024];
  uint64 n = 0;
  bool more = true;
  pg_guard([&] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    if (SPI_execute("SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
                    "WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
                    "AND objsubid OPERATOR(pg_catalog.=) 0",
                    true, 0) != SPI_OK_SELECT)
      elog(ERROR, "could not list the dropped objects");
    n = SPI_processed;
    more = n > lengthof(buffer);
    for (uint64 i = 0; i < n && i < lengthof(buffer); ++i) {
      bool isnull;
      buffer[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
    }
    SPI_finish();
  });
  out.assign(buffer, buffer + std::min<uint64>(n, lengthof(buffer)));
  if (more) out.push_back(InvalidOid);  // more than fit: look every aggregate's table up
  return out;
}

// Aggregates whose source is in `tables` (or, with InvalidOid in it, whose
// source no longer exists). The catalog is read directly: the dropping role
// need not be able to read it.
std::vector<int32> aggregates_of(const std::vector<Oid> &tables) {
  std::vector<int32> ids;
  bool check_all = std::find(tables.begin(), tables.end(), InvalidOid) != tables.end();
  List *found = NIL;
  pg_guard([&] {
    Relations r = internal_relations();
    Relation rel = table_open(r.aggregates, AccessShareLock);
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, GetLatestSnapshot(), 0, NULL);
    HeapTuple tup;
    while (HeapTupleIsValid(tup = systable_getnext(scan))) {
      bool isnull;
      int32 id = DatumGetInt32(heap_getattr(tup, 1, RelationGetDescr(rel), &isnull));
      Oid source = DatumGetObjectId(heap_getattr(tup, 3, RelationGetDescr(rel), &isnull));
      bool dropped = check_all ? !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(source))
                               : std::find(tables.begin(), tables.end(), source) != tables.end();
      if (dropped) found = lappend_int(found, id);
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
  });
  ListCell *lc;
  foreach (lc, found) ids.push_back(lfirst_int(lc));
  return ids;
}

// Removes an aggregate whose table is gone (its triggers went with it).
void forget_aggregate(int32 id) {
  // The lock first, then the definition it protects: a rebuild's swap that
  // committed meanwhile left a new version of the catalog row.
  lock_job_steps(id);  // before the aggregate lock: a swap step takes them in this order
  pg_guard([&] { lock_aggregate(id, AccessExclusiveLock); });
  AggregateDef def;
  if (!load_aggregate_by_id(id, def)) return;
  discard_job(def);
  drop_generations_except(def, -1, -1);
  delete_aggregate(def);
}
}  // namespace

AGGR_FUNCTION(aggr_ext_sql_drop) {
  bool as_event_trigger = false;
  pg_guard([&] { as_event_trigger = CALLED_AS_EVENT_TRIGGER(fcinfo); });
  if (!as_event_trigger)
    throw UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "aggr_ext_sql_drop: not called as an event trigger");
  std::vector<Oid> tables = dropped_tables();
  if (tables.empty()) PG_RETURN_VOID();
  // Ops still buffered for these aggregates are skipped at flush: their
  // definitions are gone.
  for (int32 id : aggregates_of(tables)) forget_aggregate(id);
  PG_RETURN_VOID();
}
