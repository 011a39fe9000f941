// Row and TRUNCATE triggers: they only record ops; the flush does the work.
//
// Anyone who can create a trigger can attach these functions to any table
// with any argument. Before trusting the aggregate id they are given, they
// check they fire exactly as the trigger aggr_create made: AFTER, at its
// level, for its events, under its name, on the aggregate's own source table
// (as contrib/tcn and ri_triggers.c check how they are called).
#include <cstring>

#include "citus.hpp"
#include "maintenance.hpp"

using namespace aggr;
using namespace aggr::pg;

namespace {
enum class TriggerKind { Row, Truncate };

// The tgtype of the triggers aggr_create makes (AFTER is the absence of BEFORE / INSTEAD).
constexpr int16 kRowTriggerType = TRIGGER_TYPE_ROW | TRIGGER_TYPE_INSERT | TRIGGER_TYPE_DELETE | TRIGGER_TYPE_UPDATE;
constexpr int16 kTruncateTriggerType = TRIGGER_TYPE_TRUNCATE;

[[noreturn]] void protocol_violation(const char *function, const char *what) {
  ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                  errmsg("%s: %s", function, what),
                  errhint("The triggers of an aggregate are created by aggr_create; do not attach this function yourself.")));
  pg_unreachable();
}

// The aggregate id of a trigger argument: decimal digits only, positive.
int32 parse_aggregate_id(const char *arg, const char *function) {
  if (!arg || !*arg || std::strlen(arg) > 9) protocol_violation(function, "invalid aggregate id argument");
  int32 id = 0;
  for (const char *p = arg; *p; ++p) {
    if (*p < '0' || *p > '9') protocol_violation(function, "invalid aggregate id argument");
    id = id * 10 + (*p - '0');
  }
  if (id <= 0) protocol_violation(function, "invalid aggregate id argument");
  return id;
}

// Citus names the copy of a trigger on a shard <trigger>_<shard id>.
bool is_shard_copy_name(const char *name, const char *trigger) {
  std::size_t n = std::strlen(trigger);
  if (std::strncmp(name, trigger, n) != 0 || name[n] != '_' || name[n + 1] == '\0') return false;
  for (const char *p = name + n + 1; *p; ++p)
    if (*p < '0' || *p > '9') return false;
  return true;
}

// The trigger fires on a shard: Citus copied it there when the aggregate's
// table was distributed (create_distributed_table, create_reference_table,
// citus_add_local_table_to_metadata), with the aggregate id it names. No
// tree follows the shards, and that id names another aggregate, or none, on
// this node: the write is refused rather than lost or applied to it.
[[noreturn]] void refuse_citus_shard(TriggerData *td, const char *function) {
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("%s: table \"%s\" is a Citus shard of a table that had an aggregate when it was distributed",
                         function, RelationGetRelationName(td->tg_relation)),
                  errdetail("Citus copied trigger \"%s\" onto the shard; aggr_ext does not maintain aggregates over "
                            "distributed, reference or Citus local tables.",
                            td->tg_trigger->tgname),
                  errhint("On the coordinator, drop the aggregate with aggr_drop (the table's aggr_ext triggers go "
                          "with it); drop aggregates before distributing their table.")));
  pg_unreachable();
}

// Checks everything about the call that does not need the catalog; returns
// the aggregate id (0: the copy of a TRUNCATE trigger on a Citus shard,
// which does nothing). Reads no byte of the tuples.
int32 checked_trigger_call(FunctionCallInfo fcinfo, TriggerKind kind, const char *function) {
  int32 id = 0;
  pg_guard([&] {
    if (!CALLED_AS_TRIGGER(fcinfo)) protocol_violation(function, "not called as a trigger");
    TriggerData *td = (TriggerData *)fcinfo->context;
    const Trigger *trig = td->tg_trigger;
    TriggerEvent ev = td->tg_event;
    if (!TRIGGER_FIRED_AFTER(ev)) protocol_violation(function, "must be fired AFTER");
    if (kind == TriggerKind::Row) {
      if (!TRIGGER_FIRED_FOR_ROW(ev)) protocol_violation(function, "must be fired FOR EACH ROW");
      if (!TRIGGER_FIRED_BY_INSERT(ev) && !TRIGGER_FIRED_BY_UPDATE(ev) && !TRIGGER_FIRED_BY_DELETE(ev))
        protocol_violation(function, "must be fired by INSERT, UPDATE or DELETE");
      if (!td->tg_trigtuple || (TRIGGER_FIRED_BY_UPDATE(ev) && !td->tg_newtuple))
        protocol_violation(function, "fired without its row");
    } else {
      if (!TRIGGER_FIRED_FOR_STATEMENT(ev) || !TRIGGER_FIRED_BY_TRUNCATE(ev))
        protocol_violation(function, "must be fired FOR EACH STATEMENT by TRUNCATE");
    }
    // The trigger itself must be the one aggr_create made: exact events, no
    // column list, no WHEN clause, one argument.
    if (trig->tgtype != (kind == TriggerKind::Row ? kRowTriggerType : kTruncateTriggerType) || trig->tgnattr != 0 ||
        trig->tgqual != nullptr || trig->tgnargs != 1 || trig->tgoldtable || trig->tgnewtable)
      protocol_violation(function, "trigger is not defined as aggr_create defines it");
    if (trig->tgfoid != fcinfo->flinfo->fn_oid) protocol_violation(function, "trigger calls another function");
    id = parse_aggregate_id(trig->tgargs[0], function);
    char expected[NAMEDATALEN];
    snprintf(expected, sizeof(expected), kind == TriggerKind::Row ? "aggr_ext_%d" : "aggr_ext_%d_truncate", id);
    if (strcmp(trig->tgname, expected) != 0) {
      if (!is_shard_copy_name(trig->tgname, expected) || !citus_installed())
        protocol_violation(function, "trigger name does not match its aggregate");
      // Citus never drops the copies of TRUNCATE triggers on shards (it
      // believes shards have none), so they outlive aggr_drop: one does
      // nothing, touches no tree, and leaves TRUNCATE of the table working.
      if (kind == TriggerKind::Truncate) {
        id = 0;
        return;
      }
      refuse_citus_shard(td, function);
    }
  });
  return id;
}

// The aggregate must be defined on the very table the trigger fires on.
// With Citus installed, a trigger on another table is almost surely one
// that Citus copied, with the aggregate id it names, onto a shard when the
// table was distributed: ids are per node, so there it names another
// table's aggregate, or none. Refused either way, with the Citus remedy.
void check_fires_on_source(FunctionCallInfo fcinfo, Oid source, const char *function) {
  pg_guard([&] {
    TriggerData *td = (TriggerData *)fcinfo->context;
    if (RelationGetRelid(td->tg_relation) == source) return;
    if (citus_installed())
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("%s: table \"%s\" is not the source table of aggregate %s on this node", function,
                             RelationGetRelationName(td->tg_relation), td->tg_trigger->tgargs[0]),
                      errdetail("Citus copies a table's triggers onto its shards when it distributes the table; an "
                                "aggregate id names different aggregates on different nodes."),
                      errhint("Drop the aggregate with aggr_drop on the node where it was created, then distribute "
                              "or undistribute its table.")));
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("%s: table \"%s\" is not the source table of the aggregate named by this trigger", function,
                           RelationGetRelationName(td->tg_relation)),
                    errhint("The triggers of an aggregate are created by aggr_create; do not attach this function yourself.")));
  });
}

void record(CompiledAggregate &agg, bool insert, const CompiledAggregate::RowEntry &entry) {
  if (insert) agg.check_entry_size(entry.key);
  op_buffer().add(PendingOp{agg.def().id, insert, entry.ns, entry.key, entry.value});
}

void evaluate(CompiledAggregate &agg, HeapTuple tuple, CompiledAggregate::RowEntry &entry) {
  pg_guard([&] { agg.evaluate(tuple, entry); });
}
}  // namespace

AGGR_FUNCTION(aggr_ext_row_trigger) {
  int32 id = checked_trigger_call(fcinfo, TriggerKind::Row, "aggr_ext_row_trigger");
  TriggerData *td = (TriggerData *)fcinfo->context;
  CompiledAggregate *agg = compiled_aggregate(id);
  // Dropped in this transaction: the user's write goes on.
  if (!agg) return PointerGetDatum(nullptr);
  check_fires_on_source(fcinfo, agg->def().source, "aggr_ext_row_trigger");
  // Stale after ALTER TABLE (reads refuse it until it is re-created): the user's write goes on.
  if (agg->stale()) return PointerGetDatum(nullptr);
  TriggerEvent ev = td->tg_event;
  CompiledAggregate::RowEntry before, after;
  if (TRIGGER_FIRED_BY_INSERT(ev)) {
    evaluate(*agg, td->tg_trigtuple, after);
    record(*agg, true, after);
  } else if (TRIGGER_FIRED_BY_DELETE(ev)) {
    evaluate(*agg, td->tg_trigtuple, before);
    record(*agg, false, before);
  } else if (TRIGGER_FIRED_BY_UPDATE(ev)) {
    evaluate(*agg, td->tg_trigtuple, before);
    evaluate(*agg, td->tg_newtuple, after);
    // An update that changes nothing the aggregate holds costs no op.
    if (before.ns != after.ns || before.key != after.key || !before.value.same_as(after.value)) {
      record(*agg, false, before);
      record(*agg, true, after);
    }
  }
  return PointerGetDatum(nullptr);
}

AGGR_FUNCTION(aggr_ext_truncate_trigger) {
  int32 id = checked_trigger_call(fcinfo, TriggerKind::Truncate, "aggr_ext_truncate_trigger");
  if (id == 0) return PointerGetDatum(nullptr);
  AggregateDef def;
  if (!load_aggregate_by_id(id, def)) return PointerGetDatum(nullptr);
  check_fires_on_source(fcinfo, def.source, "aggr_ext_truncate_trigger");
  // Then the aggregate lock (a rebuild's swap holds it exclusively), and the
  // definition again under it: read before the wait, it would name the
  // generation the swap retired, and the new one would keep every row.
  pg_guard([&] { lock_aggregate(id, AccessExclusiveLock); });
  if (load_aggregate_by_id(id, def)) {
    op_buffer().flush();
    clear_trees(def, def.generation, nullptr);  // TRUNCATE empties the table: the aggregate is exact when empty
    // A job filling a new generation replays the TRUNCATE in order.
    if (def.build_generation != 0) append_truncate_marker(def.id);
  }
  return PointerGetDatum(nullptr);
}
