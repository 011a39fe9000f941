#include "definition.hpp"

#include <algorithm>

#include "citus.hpp"
#include "jobs.hpp"
#include "maintenance.hpp"
#include "owner_context.hpp"

extern "C" {
#include "catalog/pg_inherits.h"
}

namespace aggr::pg {

// aggr_create(build => 'auto') builds in the background from this many rows.
constexpr double kBackgroundBuildRows = 100000;

int partition_merge_rows = 256;

namespace {

// Citus keeps the rows of a distributed, reference or Citus local table in
// shards (on the workers, or in shard tables beside it) and writes them
// there: the triggers on this table would never see them, and the aggregate
// would answer from an empty or partial tree. Nothing is looked up without
// Citus. pg-side.
void refuse_citus_table(Relation rel) {
  CitusTable kind = citus_table_kind(RelationGetRelid(rel));
  if (kind != CitusTable::None)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("table \"%s\" is a Citus %s table", RelationGetRelationName(rel), citus_table_text(kind)),
                    errdetail("Citus writes its rows to shards, where the aggregate's triggers on this table never see them."),
                    errhint("Aggregates are supported on plain tables, not on Citus distributed, reference or local tables.")));
}
}  // namespace

namespace {
// DROP TRIGGER IF EXISTS, one statement per SPI call: Citus forwards a
// utility statement's whole query string to the shards, and refuses one
// with several commands. pg-side.
void drop_trigger_if_exists(const char *trigger, Oid table) {
  char *sql = psprintf("DROP TRIGGER IF EXISTS %s ON %s", quote_identifier(trigger),
                       quote_qualified_identifier(get_namespace_name(get_rel_namespace(table)), get_rel_name(table)));
  if (SPI_execute(sql, false, 0) < 0) elog(ERROR, "could not drop trigger \"%s\"", trigger);
}

// Drops the triggers of aggregate `id` from its table. With Citus they may
// also be on shards (it copies triggers when it distributes a table, as
// <trigger>_<shard id>): dropped from the Citus table, Citus drops them
// from its shards too, which it does for distributed and reference tables
// only under citus.enable_unsafe_triggers (dropping ours is safe). After
// citus_add_local_table_to_metadata the aggregate's table is itself the
// shard: they are dropped from its shell table. pg-side.
void drop_triggers(int32 id, Oid source) {
  Relation rel = table_open(source, ShareRowExclusiveLock);
  bool citus = citus_installed();
  Oid shell = citus ? citus_shell_of_shard(source) : InvalidOid;
  int level = NewGUCNestLevel();
  if (citus)
    (void)set_config_option("citus.enable_unsafe_triggers", "on", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                            false);
  char *triggers[] = {psprintf("aggr_ext_%d", id), psprintf("aggr_ext_%d_truncate", id)};
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  for (char *trigger : triggers) {
    if (OidIsValid(shell)) drop_trigger_if_exists(trigger, shell);
    drop_trigger_if_exists(trigger, source);
  }
  SPI_finish();
  AtEOXact_GUC(true, level);
  table_close(rel, NoLock);
}

// The checks every source table passes (a leaf partition too). pg-side.
void check_source_table(Relation rel, bool partitioned_ok) {
  const char *relname = RelationGetRelationName(rel);
  char kind = rel->rd_rel->relkind;
  if (kind != RELKIND_RELATION && !(partitioned_ok && kind == RELKIND_PARTITIONED_TABLE))
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE), errmsg("\"%s\" is not a table", relname),
                    errhint("Aggregates are supported on plain and partitioned tables (not views or foreign tables).")));
  refuse_citus_table(rel);
  // A temporary table's rows are this session's only: background jobs and
  // the merger cannot read it, and its end fires no sql_drop trigger.
  if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("table \"%s\" is temporary", relname),
                    errdetail("Other sessions (background jobs, the merger) cannot read it, and the aggregate would "
                              "outlive it."),
                    errhint("Use a regular table.")));
  // Crash recovery empties an unlogged table without firing a trigger;
  // the WAL-logged trees would keep every row.
  if (rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("table \"%s\" is unlogged", relname),
                    errdetail("After a crash the table is emptied without firing triggers; the aggregate would keep its rows."),
                    errhint("ALTER TABLE ... SET LOGGED first.")));
  if (rel->rd_rel->relrowsecurity)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("table \"%s\" has row-level security enabled", relname),
                    errdetail("An aggregate would count rows that some readers may not see.")));
  if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
    ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION), errmsg("table \"%s\" has no primary key", relname),
                    errhint("Aggregate entries are identified by the primary key: ALTER TABLE %s ADD PRIMARY KEY (...).",
                            quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)), relname))));
}

// Attaches the maintenance triggers of aggregate `id` to `source`. pg-side.
void create_triggers(int32 id, Oid source, const char *name) {
  Oid fnschema_oid = installed_extension_schema("aggr_ext");
  const char *fnschema = quote_identifier(get_namespace_name(fnschema_oid));
  char *qualified = quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)), get_rel_name(source));
  char *row_trigger = psprintf("aggr_ext_%d", id);
  char *truncate_trigger = psprintf("aggr_ext_%d_truncate", id);
  // Maintenance triggers fire ALWAYS: also under session_replication_role = replica.
  char *sql = psprintf(
      "CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s.aggr_ext_row_trigger('%d');"
      "CREATE TRIGGER %s AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s.aggr_ext_truncate_trigger('%d');"
      "ALTER TABLE %s ENABLE ALWAYS TRIGGER %s, ENABLE ALWAYS TRIGGER %s;",
      row_trigger, qualified, fnschema, id, truncate_trigger, qualified, fnschema, id, qualified, row_trigger,
      truncate_trigger);
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  if (SPI_execute(sql, false, 0) < 0) elog(ERROR, "could not create the triggers of aggregate \"%s\"", name);
  SPI_finish();
  // DROP EXTENSION removes the triggers with it.
  Oid ext = get_extension_oid("aggr_ext", true);
  if (OidIsValid(ext)) {
    ObjectAddress extaddr, trigaddr;
    ObjectAddressSet(extaddr, ExtensionRelationId, ext);
    for (char *trig : {row_trigger, truncate_trigger}) {
      ObjectAddressSet(trigaddr, TriggerRelationId, get_trigger_oid(source, trig, false));
      recordDependencyOn(&trigaddr, &extaddr, DEPENDENCY_AUTO);
    }
  }
  CommandCounterIncrement();
}

// The name of the part of aggregate `parent` on leaf partition `leaf`:
// "parent:schema.partition" (as it was named when the part was made).
std::string part_name(const std::string &parent, Oid leaf) {
  std::string name;
  pg_guard([&] { name = parent + ":" + get_namespace_name(get_rel_namespace(leaf)) + "." + get_rel_name(leaf); });
  return name;
}

void refuse_without_parent_column(const char *relname) {
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("\"%s\" is a partitioned table, and the aggr_ext schema of this database is not updated", relname),
                  errdetail("Aggregates on partitioned tables need the 1.1 catalog."),
                  errhint("Run ALTER EXTENSION aggr_ext UPDATE.")));
}
}  // namespace

std::vector<Oid> leaf_partitions(Oid parent, LOCKMODE mode) {
  std::vector<Oid> leaves;
  List *found = NIL;
  pg_guard([&] {
    List *all = find_all_inheritors(parent, mode, NULL);
    ListCell *lc;
    foreach (lc, all) {
      Oid relid = lfirst_oid(lc);
      char kind = get_rel_relkind(relid);
      if (kind == RELKIND_FOREIGN_TABLE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("partition \"%s\" of \"%s\" is a foreign table", get_rel_name(relid), get_rel_name(parent)),
                        errdetail("Rows written to a foreign table fire no trigger of the aggregate's on this server."),
                        errhint("Aggregates on partitioned tables need every leaf partition to be a plain table.")));
      if (kind == RELKIND_RELATION) found = lappend_oid(found, relid);
    }
  });
  ListCell *lc;
  foreach (lc, found) leaves.push_back(lfirst_oid(lc));
  return leaves;
}

namespace {
int defining_depth = 0;
}  // namespace

bool defining_parts() { return defining_depth > 0; }

void while_defining_parts(const std::function<void()> &fn) {
  ++defining_depth;
  try {
    fn();
  } catch (...) {
    --defining_depth;
    throw;
  }
  --defining_depth;
}

int32 define_aggregate(const std::string &name, Oid source, const char *key, const char *sum, const char *ns,
                       int32 parent) {
  AggregateDef existing;
  if (load_aggregate_by_name(name, existing, true))
    throw UserError(ERRCODE_DUPLICATE_OBJECT, "aggregate \"" + name + "\" already exists");
  bool has_parent_column = catalog_has_parent_column();
  int32 id = 0;
  bool partitioned = false;
  const char *key_text = key, *sum_text = sum, *ns_text = ns;
  pg_guard([&] {
    // Ownership first, without a lock: a stranger's SHARE ROW EXCLUSIVE
    // request queued behind a writer would block every later writer (as
    // CREATE INDEX checks in RangeVarGetRelidExtended's callback).
    if (!pg_class_ownercheck(source, GetUserId())) {
      const char *name_now = get_rel_name(source);
      aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, name_now ? name_now : "?");
    }
    Relation rel = table_open(source, ShareRowExclusiveLock);  // as CREATE TRIGGER: no writes while we build
    const char *relname = RelationGetRelationName(rel);
    // Again under the lock: the owner may have changed while we waited.
    if (!pg_class_ownercheck(source, GetUserId())) aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, relname);
    partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
    if (partitioned && !has_parent_column) refuse_without_parent_column(relname);
    if (partitioned && parent != 0) elog(ERROR, "a part of an aggregate must be on a leaf partition");
    check_source_table(rel, true);
    ParsedDefinition parsed = parse_definition(rel, key, sum, ns);
    self_contained_specs(rel, parsed, &key_text, &sum_text, &ns_text);
    id = insert_aggregate(name, source, key_text, sum_text, ns_text, parsed, parent);
    table_close(rel, NoLock);  // ALTER TABLE (ENABLE ALWAYS TRIGGER) refuses a relation this function still holds open
    if (!partitioned) create_triggers(id, source, name.c_str());
  });
  if (!partitioned) return id;
  // The partitioned table's own row holds no trees: it is ready as soon as
  // its parts are (reads check each part).
  AggregateDef def;
  if (!load_aggregate_by_id(id, def)) throw std::logic_error("aggregate vanished while being created");
  update_aggregate_state(def, "ready");
  while_defining_parts([&] {
    for (Oid leaf : leaf_partitions(source, ShareRowExclusiveLock))
      define_aggregate(part_name(name, leaf), leaf, key_text, sum_text, ns_text, id);
  });
  return id;
}

bool is_partitioned_aggregate(const AggregateDef &def) {
  char kind = 0;
  pg_guard([&] { kind = get_rel_relkind(def.source); });
  return kind == RELKIND_PARTITIONED_TABLE;
}

void build_aggregate(const AggregateDef &def, BuildMode mode) {
  if (mode == BuildMode::Auto) {
    std::vector<Oid> tables{def.source};
    if (is_partitioned_aggregate(def)) tables = leaf_partitions(def.source, AccessShareLock);
    double estimate = 0;
    for (Oid table : tables)
      pg_guard([&] {
        Relation rel = table_open(table, AccessShareLock);
        estimate += rel->rd_rel->reltuples >= 0 ? rel->rd_rel->reltuples : RelationGetNumberOfBlocks(rel) * 100.0;
        table_close(rel, AccessShareLock);
      });
    mode = estimate >= kBackgroundBuildRows ? BuildMode::Background : BuildMode::Now;
  }
  if (is_partitioned_aggregate(def)) {
    for (const AggregateDef &part : load_children(def.id)) build_aggregate(part, mode);
    return;
  }
  if (mode == BuildMode::Background)
    start_job(def, "backfill", kDefaultJobBatchRows, true);
  else
    run_as_table_owner(def.source, [&] { build_trees(def, "aggr_create"); });
}

void drop_aggregate(const AggregateDef &given) {
  AggregateDef def = given;
  lock_job_steps(def.id);  // before the aggregate lock: a swap step takes them in this order
  pg_guard([&] { lock_aggregate(def.id, AccessExclusiveLock); });
  // Again under the lock: a rebuild's swap may have committed a new version
  // of the definition while we waited.
  int32 id = def.id;
  if (!load_aggregate_by_id(id, def))
    throw UserError(ERRCODE_UNDEFINED_OBJECT, "aggregate \"" + def.name + "\" was dropped concurrently");
  // The partitioned table's own row has no triggers (its parts hold them).
  bool has_triggers = false;
  pg_guard([&] {
    char kind = get_rel_relkind(def.source);
    has_triggers = kind != '\0' && kind != RELKIND_PARTITIONED_TABLE;
  });
  if (has_triggers) {
    Oid source = def.source;
    pg_guard([&] { drop_triggers(id, source); });
  }
  discard_job(def);
  drop_generations_except(def, -1, -1);
  delete_aggregate(def);
}

void refuse_part(const AggregateDef &def, const char *what) {
  if (def.parent == 0) return;
  AggregateDef parent;
  std::string parent_name = load_aggregate_by_id(def.parent, parent) ? parent.name : "?";
  throw UserError(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                  "aggregate \"" + def.name + "\" is the part of a partition of aggregate \"" + parent_name +
                      "\": it cannot be " + what + " on its own",
                  "Drop the partitioned table's aggregate (SELECT aggr_drop(" + sql_literal(parent_name) +
                      ")), or detach or drop the partition.");
}

int reconcile_parts(const AggregateDef &parent) {
  // Listed under a light lock: the partitions that get or lose a part are
  // locked by the DDL itself and by CREATE / DROP TRIGGER.
  std::vector<Oid> leaves = leaf_partitions(parent.source, AccessShareLock);
  std::vector<AggregateDef> parts = load_children(parent.id);
  int changed = 0;
  for (const AggregateDef &part : parts)
    if (std::find(leaves.begin(), leaves.end(), part.source) == leaves.end()) {
      drop_aggregate(part);  // detached (a dropped table's part went with it: sql_drop)
      ++changed;
    }
  for (Oid leaf : leaves) {
    bool has_part = std::any_of(parts.begin(), parts.end(), [&](const AggregateDef &p) { return p.source == leaf; });
    if (has_part) continue;
    int32 id = define_aggregate(part_name(parent.name, leaf), leaf, parent.key_spec.c_str(),
                                parent.sum_spec.empty() ? nullptr : parent.sum_spec.c_str(),
                                parent.ns_spec.empty() ? nullptr : parent.ns_spec.c_str(), parent.id);
    AggregateDef def;
    if (!load_aggregate_by_id(id, def)) throw std::logic_error("aggregate vanished while being created");
    build_aggregate(def, BuildMode::Now);  // exact before the command ends: reads never see a missing part
    ++changed;
  }
  return changed;
}

}  // namespace aggr::pg
