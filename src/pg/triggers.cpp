// Row and TRUNCATE triggers: they only record ops; the flush does the work.
#include "maintenance.hpp"

using namespace aggr;
using namespace aggr::pg;

namespace {
TriggerData *trigger_data(FunctionCallInfo fcinfo, const char *name) {
  TriggerData *td = nullptr;
  pg_guard([&] {
    if (!CALLED_AS_TRIGGER(fcinfo))
      ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED), errmsg("%s: not called as a trigger", name)));
    td = (TriggerData *)fcinfo->context;
    if (td->tg_trigger->tgnargs < 1)
      ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED), errmsg("%s: missing aggregate id", name)));
  });
  return td;
}

int32 aggregate_id(TriggerData *td) { return static_cast<int32>(std::strtol(td->tg_trigger->tgargs[0], nullptr, 10)); }

void record(CompiledAggregate &agg, bool insert, const CompiledAggregate::RowEntry &entry) {
  if (insert) agg.check_entry_size(entry.key);
  op_buffer().add(PendingOp{agg.def().id, insert, entry.ns, entry.key, entry.value});
}

void evaluate(CompiledAggregate &agg, HeapTuple tuple, CompiledAggregate::RowEntry &entry) {
  pg_guard([&] { agg.evaluate(tuple, entry); });
}
}  // namespace

AGGR_FUNCTION(aggr_ext_row_trigger) {
  TriggerData *td = trigger_data(fcinfo, "aggr_ext_row_trigger");
  CompiledAggregate *agg = compiled_aggregate(aggregate_id(td));
  // Dropped in this transaction, or stale after ALTER TABLE (reads refuse it
  // until it is re-created): the user's write goes on.
  if (!agg || agg->stale()) return PointerGetDatum(nullptr);
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
  TriggerData *td = trigger_data(fcinfo, "aggr_ext_truncate_trigger");
  AggregateDef def;
  if (load_aggregate_by_id(aggregate_id(td), def)) {
    op_buffer().flush();
    clear_trees(def, def.generation, nullptr);  // TRUNCATE empties the table: the aggregate is exact when empty
    // A job filling a new generation replays the TRUNCATE in order.
    if (def.build_generation != 0) append_truncate_marker(def.id);
  }
  return PointerGetDatum(nullptr);
}
