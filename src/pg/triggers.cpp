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

void record(CompiledAggregate &agg, HeapTuple tuple, bool insert, CompiledAggregate::RowEntry &entry) {
  pg_guard([&] { agg.evaluate(tuple, entry); });
  if (insert && entry.key.size() > agg.tree_config().max_entry_bytes())
    throw UserError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    "key of aggregate \"" + agg.def().name + "\" is too large (" + std::to_string(entry.key.size()) +
                        " bytes, at most " + std::to_string(agg.tree_config().max_entry_bytes()) + ")",
                    "Index a prefix or a hash of long values.");
  op_buffer().add(PendingOp{agg.def().id, insert, entry.ns, entry.key, entry.value});
}
}  // namespace

AGGR_FUNCTION(aggr_ext_row_trigger) {
  TriggerData *td = trigger_data(fcinfo, "aggr_ext_row_trigger");
  CompiledAggregate *agg = compiled_aggregate(aggregate_id(td));
  if (!agg) return PointerGetDatum(nullptr);  // aggregate dropped in this transaction
  TriggerEvent ev = td->tg_event;
  CompiledAggregate::RowEntry before, after;
  if (TRIGGER_FIRED_BY_INSERT(ev)) {
    record(*agg, td->tg_trigtuple, true, after);
  } else if (TRIGGER_FIRED_BY_DELETE(ev)) {
    record(*agg, td->tg_trigtuple, false, before);
  } else if (TRIGGER_FIRED_BY_UPDATE(ev)) {
    pg_guard([&] {
      agg->evaluate(td->tg_trigtuple, before);
      agg->evaluate(td->tg_newtuple, after);
    });
    bool same = before.ns == after.ns && before.key == after.key && before.value.same_as(after.value);
    if (!same) {
      op_buffer().add(PendingOp{agg->def().id, false, before.ns, before.key, before.value});
      record(*agg, td->tg_newtuple, true, after);
    }
  }
  return PointerGetDatum(nullptr);
}

AGGR_FUNCTION(aggr_ext_truncate_trigger) {
  TriggerData *td = trigger_data(fcinfo, "aggr_ext_truncate_trigger");
  AggregateDef def;
  if (load_aggregate_by_id(aggregate_id(td), def)) {
    op_buffer().flush();
    clear_trees(def, nullptr);  // TRUNCATE empties the table: the aggregate is exact when empty
  }
  return PointerGetDatum(nullptr);
}
