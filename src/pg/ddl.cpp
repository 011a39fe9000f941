// Partition DDL (aggr_ext_partition_ddl) keeps the aggregates of
// partitioned tables whole: see reconcile_parts.
//
// DDL that removes a source table (DROP TABLE, DROP SCHEMA ... CASCADE,
// DROP OWNED) removes its aggregates with it, as it removes its indexes: a
// sql_drop event trigger forgets every aggregate whose source was dropped.
#include <algorithm>

#include "definition.hpp"
#include "jobs.hpp"
#include "maintenance.hpp"

extern "C" {
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
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
  bool check_all = std::find(tables.begin(), tables.end(), InvalidOid) != tables.end();
  return aggregate_ids_where([&](int32, Oid source) {
    return check_all ? !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(source))
                     : std::find(tables.begin(), tables.end(), source) != tables.end();
  });
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

namespace {
// OIDs of the relations the current DDL command created or altered (at
// ddl_command_end).
std::vector<Oid> commanded_tables() {
  List *found = NIL;
  pg_guard([&] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    if (SPI_execute("SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands() "
                    "WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
                    true, 0) != SPI_OK_SELECT)
      elog(ERROR, "could not list the commanded objects");
    for (uint64 i = 0; i < SPI_processed; ++i) {
      bool isnull;
      Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
      if (!isnull) found = lappend_oid(found, DatumGetObjectId(d));
    }
    SPI_finish();
  });
  std::vector<Oid> out;
  ListCell *lc;
  foreach (lc, found) out.push_back(lfirst_oid(lc));
  return out;
}

// Whether `table` is `source` or one of its partitions at any depth. pg-side.
bool within(Oid table, Oid source) {
  if (table == source) return true;
  List *ancestors = get_partition_ancestors(table);
  return list_member_oid(ancestors, source);
}

// The aggregates of partitioned tables that the relations in `tables` belong to.
std::vector<AggregateDef> affected_parents(const std::vector<Oid> &tables) {
  std::vector<AggregateDef> out;
  for (int32 id : load_parent_ids()) {
    AggregateDef def;
    if (!load_aggregate_by_id(id, def)) continue;
    bool affected = false;
    for (Oid table : tables) pg_guard([&] { affected = affected || within(table, def.source); });
    if (affected) out.push_back(def);
  }
  return out;
}

// DETACH PARTITION ... CONCURRENTLY commits in two steps, between which
// the partition is gone for new snapshots of the partitioned table but its
// part would still be read: refused, with the alternatives.
void refuse_concurrent_detach(Node *parsetree) {
  if (!parsetree || !IsA(parsetree, AlterTableStmt)) return;
  AlterTableStmt *stmt = (AlterTableStmt *)parsetree;
  bool concurrent = false;
  ListCell *lc;
  foreach (lc, stmt->cmds) {
    AlterTableCmd *cmd = (AlterTableCmd *)lfirst(lc);
    if (cmd->subtype == AT_DetachPartition && cmd->def && IsA(cmd->def, PartitionCmd) && ((PartitionCmd *)cmd->def)->concurrent)
      concurrent = true;
  }
  if (!concurrent) return;
  Oid relid = InvalidOid;
  pg_guard([&] { relid = RangeVarGetRelid(stmt->relation, NoLock, true); });
  if (!OidIsValid(relid)) return;
  std::vector<AggregateDef> parents = affected_parents({relid});
  if (parents.empty()) return;
  throw UserError(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "DETACH PARTITION ... CONCURRENTLY is not supported on a table with aggregate \"" + parents[0].name + "\"",
                  "Detach it without CONCURRENTLY (the aggregate drops the partition's part in the same transaction), "
                  "or drop the aggregate first.");
}
}  // namespace

AGGR_FUNCTION(aggr_ext_partition_ddl) {
  bool as_event_trigger = false;
  pg_guard([&] { as_event_trigger = CALLED_AS_EVENT_TRIGGER(fcinfo); });
  if (!as_event_trigger)
    throw UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "aggr_ext_partition_ddl: not called as an event trigger");
  if (defining_parts() || !catalog_has_parent_column()) PG_RETURN_VOID();
  EventTriggerData *trigdata = (EventTriggerData *)fcinfo->context;
  if (strcmp(trigdata->event, "ddl_command_start") == 0) {
    refuse_concurrent_detach(trigdata->parsetree);
    PG_RETURN_VOID();
  }
  if (load_parent_ids().empty()) PG_RETURN_VOID();  // the common case: no aggregate on a partitioned table
  std::vector<AggregateDef> parents = affected_parents(commanded_tables());
  while_defining_parts([&] {
    for (const AggregateDef &parent : parents) reconcile_parts(parent);
  });
  PG_RETURN_VOID();
}
