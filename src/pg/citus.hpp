// Citus: which tables it manages. Citus keeps the rows of a distributed,
// reference or Citus local table in shards and writes them there, so the
// triggers of an aggregate on the table itself never see them. Nothing here
// needs Citus to build or to run: its catalog is looked up by name, only
// when the citus extension is installed.
#pragma once
#include <string>

#include "pg.hpp"

namespace aggr::pg {

// Shard: the table itself is not listed, but Citus renamed the aggregate's
// triggers on it: citus_add_local_table_to_metadata turns the table (same
// OID) into the shard of a new shell table, and renames its triggers
// <trigger>_<shard id>.
enum class CitusTable { None, Distributed, Reference, Local, Shard };

// pg-side (plain data only): how Citus manages the table (pg_dist_partition
// lists it); None when it does not, or when Citus is not installed.
CitusTable citus_table_kind(Oid relid);
// pg-side: as citus_table_kind, and Shard when Citus is installed and the
// table no longer has the trigger `row_trigger` of an aggregate.
CitusTable citus_source_kind(Oid relid, const char *row_trigger);
// pg-side: the table Citus made the shell of shard `relid` (named
// <shell>_<shard id>, listed in pg_dist_shard); InvalidOid when `relid` is
// not a shard or Citus is not installed.
Oid citus_shell_of_shard(Oid relid);
// The schema of the installed extension `name`; InvalidOid when it is not
// installed. pg-side.
Oid installed_extension_schema(const char *name);
// Whether the citus extension is installed in this database. pg-side.
bool citus_installed();
// "distributed", "reference", "local", "shard" (after "Citus ").
const char *citus_table_text(CitusTable kind);

}  // namespace aggr::pg
