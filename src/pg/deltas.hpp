// The deferred write path: writers of a deferred-mode aggregate append
// signed deltas (aggr_internal.deltas) instead of rewriting tree nodes, so
// they never wait for each other; reads add the deltas their snapshot sees;
// a merger (background worker, or aggr_merge) folds them into the trees and
// deletes them in one transaction.
#pragma once
#include <functional>

#include "../core/pending.hpp"
#include "catalog.hpp"

namespace aggr::pg {

// pg-side. Appends deltas of one tree, in order.
void append_deltas(int32 aggr_id, int32 generation, const std::string &ns, const std::vector<Delta> &deltas);

// The deltas of one tree `snap` sees, in sequence order (at most `limit`).
struct DeltaRows {
  std::vector<Delta> deltas;
  std::vector<ItemPointerData> tids;
};
DeltaRows load_deltas(int32 aggr_id, int32 generation, const std::string &ns, Snapshot snap,
                      std::size_t limit = SIZE_MAX);
// Netted pending changes of one tree as `snap` sees them (empty unless deferred).
PendingChanges pending_changes(const AggregateDef &def, const std::string &ns, const Ordering &order, Snapshot snap);
// Namespaces of a generation that have deltas `snap` sees.
std::vector<std::string> pending_namespaces(int32 aggr_id, int32 generation, Snapshot snap);
// pg-side. Deletes the deltas of an aggregate for which `doomed(generation, ns)`.
void delete_deltas(int32 aggr_id, const std::function<bool(int32, const std::string &)> &doomed);

// Folds every pending delta of the aggregate's live trees into them; the
// number of deltas folded in. Takes the aggregate and tree locks.
int64 merge_deltas(int32 aggr_id);
// Starts the merger of this database unless one runs (checked once a second).
void ensure_merger();
extern bool merge_enabled;  // GUC aggr_ext.merge_deltas: off pauses the merger

}  // namespace aggr::pg
