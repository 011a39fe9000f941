// Citus catalog lookups (citus.hpp). Run at aggr_create, when an aggregate
// is compiled (once per invalidation of its table: Citus invalidates the
// relcache of a table whose pg_dist_partition row changes) and on the error
// path of a trigger; never on every read.
#include "citus.hpp"

#include <cstdlib>
#include <cstring>

namespace aggr::pg {
Oid installed_extension_schema(const char *name) {
  Relation rel = table_open(ExtensionRelationId, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ, CStringGetDatum(name));
  SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
  HeapTuple tup = systable_getnext(scan);
  Oid schema = HeapTupleIsValid(tup) ? ((Form_pg_extension)GETSTRUCT(tup))->extnamespace : InvalidOid;
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
  return schema;
}

namespace {
// A "char" column of a pg_dist_partition row; '\0' when the column is
// missing (another Citus version) or NULL.
char char_column(HeapTuple tup, TupleDesc desc, AttrNumber att) {
  if (att == InvalidAttrNumber || att > desc->natts) return '\0';
  bool isnull;
  Datum d = heap_getattr(tup, att, desc, &isnull);
  return isnull ? '\0' : DatumGetChar(d);
}

// pg_dist_partition.partmethod 'n' (no distribution column) is a reference
// table (repmodel 't', two-phase replicated to every node) or a Citus local
// table (colocationid 0) or a single-shard distributed table.
CitusTable kind_of(char partmethod, char repmodel, bool colocated) {
  if (partmethod != 'n') return CitusTable::Distributed;
  if (repmodel == 't') return CitusTable::Reference;
  return colocated ? CitusTable::Distributed : CitusTable::Local;
}
}  // namespace

bool citus_installed() { return OidIsValid(installed_extension_schema("citus")); }

CitusTable citus_table_kind(Oid relid) {
  Oid schema = installed_extension_schema("citus");
  if (!OidIsValid(schema)) return CitusTable::None;
  Oid catalog_oid = get_relname_relid("pg_dist_partition", schema);
  if (!OidIsValid(catalog_oid)) return CitusTable::None;
  AttrNumber relid_att = get_attnum(catalog_oid, "logicalrelid");
  if (relid_att == InvalidAttrNumber) return CitusTable::None;
  AttrNumber method_att = get_attnum(catalog_oid, "partmethod");
  AttrNumber repmodel_att = get_attnum(catalog_oid, "repmodel");
  AttrNumber colocation_att = get_attnum(catalog_oid, "colocationid");
  Relation catalog = table_open(catalog_oid, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, relid_att, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
  // A heap scan of a small catalog, done rarely (see above): no index name to trust.
  SysScanDesc scan = systable_beginscan(catalog, InvalidOid, false, NULL, 1, &key);
  CitusTable kind = CitusTable::None;
  HeapTuple tup = systable_getnext(scan);
  if (HeapTupleIsValid(tup)) {
    TupleDesc desc = RelationGetDescr(catalog);
    bool colocated = false;
    if (colocation_att != InvalidAttrNumber && colocation_att <= desc->natts) {
      bool isnull;
      Datum d = heap_getattr(tup, colocation_att, desc, &isnull);
      colocated = !isnull && DatumGetInt32(d) != 0;
    }
    kind = kind_of(char_column(tup, desc, method_att), char_column(tup, desc, repmodel_att), colocated);
  }
  systable_endscan(scan);
  table_close(catalog, AccessShareLock);
  return kind;
}

CitusTable citus_source_kind(Oid relid, const char *row_trigger) {
  CitusTable kind = citus_table_kind(relid);
  if (kind == CitusTable::None && citus_installed() && !OidIsValid(get_trigger_oid(relid, row_trigger, true)))
    kind = CitusTable::Shard;
  return kind;
}

Oid citus_shell_of_shard(Oid relid) {
  Oid schema = installed_extension_schema("citus");
  if (!OidIsValid(schema)) return InvalidOid;
  const char *name = get_rel_name(relid);
  const char *suffix = name ? strrchr(name, '_') : nullptr;
  if (!suffix || !suffix[1] || strspn(suffix + 1, "0123456789") != strlen(suffix + 1) || strlen(suffix + 1) > 18)
    return InvalidOid;
  int64 shard_id = strtoll(suffix + 1, nullptr, 10);
  Oid catalog_oid = get_relname_relid("pg_dist_shard", schema);
  if (!OidIsValid(catalog_oid)) return InvalidOid;
  AttrNumber relid_att = get_attnum(catalog_oid, "logicalrelid");
  AttrNumber shard_att = get_attnum(catalog_oid, "shardid");
  if (relid_att == InvalidAttrNumber || shard_att == InvalidAttrNumber) return InvalidOid;
  Relation catalog = table_open(catalog_oid, AccessShareLock);
  ScanKeyData key;
  ScanKeyInit(&key, shard_att, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(shard_id));
  SysScanDesc scan = systable_beginscan(catalog, InvalidOid, false, NULL, 1, &key);
  Oid shell = InvalidOid;
  HeapTuple tup = systable_getnext(scan);
  if (HeapTupleIsValid(tup)) {
    bool isnull;
    Datum d = heap_getattr(tup, relid_att, RelationGetDescr(catalog), &isnull);
    if (!isnull) shell = DatumGetObjectId(d);
  }
  systable_endscan(scan);
  table_close(catalog, AccessShareLock);
  // The shard is named after its shell, in the same schema.
  const char *shell_name = OidIsValid(shell) ? get_rel_name(shell) : nullptr;
  if (!shell_name || strlen(shell_name) != static_cast<std::size_t>(suffix - name) ||
      strncmp(shell_name, name, suffix - name) != 0 || get_rel_namespace(shell) != get_rel_namespace(relid))
    return InvalidOid;
  return shell;
}

const char *citus_table_text(CitusTable kind) {
  switch (kind) {
    case CitusTable::Distributed:
      return "distributed";
    case CitusTable::Reference:
      return "reference";
    case CitusTable::Local:
      return "local";
    case CitusTable::Shard:
      return "shard";
    case CitusTable::None:
      break;
  }
  return "plain";
}

}  // namespace aggr::pg
