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

// pg-side. Appends deltas of one tree, in order; returns the last sequence number.
int64 append_deltas(int32 aggr_id, int32 generation, const std::string &ns, const std::vector<Delta> &deltas);
// The sequence number of the oldest delta of one tree (-1: none).
int64 oldest_pending_seq(int32 aggr_id, int32 generation, const std::string &ns);
// Writers fold a tree's deltas in themselves when this many were appended
// since its oldest pending one: the merger is behind, and reads get slower
// with every pending delta.
constexpr int64 kMergeBacklog = 50000;

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

// Folds pending deltas of the aggregate's live trees (or of one namespace)
// into them, up to 50,000 per tree; the number folded in. Takes the
// aggregate and tree locks.
int64 merge_deltas(int32 aggr_id, const std::string *only_ns = nullptr);
// merge_deltas of every tree as the owner of the aggregate's source table
// (owner_context.hpp): the merger, aggr_merge, aggr_set_write_mode. 0 when
// the aggregate is gone.
int64 merge_deltas_as_owner(int32 aggr_id);
// Starts the merger of this database unless one runs (checked once a second).
void ensure_merger();
extern bool merge_enabled;  // GUC aggr_ext.merge_deltas: off pauses the merger

}  // namespace aggr::pg
